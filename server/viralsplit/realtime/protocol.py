"""Frames of the realtime protocol (docs/protocol.md), with no I/O.

This module turns client messages into typed commands, builds the server's frames as plain
MessagePack-ready values, and keeps the per-connection state that does not need a socket:
the handshake, subscriptions and roles, the command rate limit and the malformed-frame count.
The hub and the connection call it; the Python client uses the same constants and decoders.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import msgpack

from viralsplit.media.progress import Progress

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})

# Close codes. RFC 6455 section 7.4.2 leaves 4000-4999 to applications: 4000-4099 tell the
# client to reconnect and resync, 4400-4499 tell it not to reconnect.
CLOSE_RESYNC = 4000
CLOSE_SHUTDOWN = 4001
CLOSE_HEARTBEAT_TIMEOUT = 4002
CLOSE_PROTOCOL_ERRORS = 4400
CLOSE_UNSUPPORTED_VERSION = 4406
CLOSE_HELLO_TIMEOUT = 4408
# RFC 6455 section 7.4.1: 1009 is "message too big", 1011 "unexpected condition".
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
RECONNECT_CLOSE_CODES = frozenset(range(4000, 4100)) | {1001, 1006, 1011, 1012, 1013}
FINAL_CLOSE_CODES = frozenset(range(4400, 4500)) | {1008, 1009}

# Error codes of `error` frames.
BAD_FRAME = "bad_frame"
UNKNOWN_TYPE = "unknown_type"
HELLO_REQUIRED = "hello_required"
UNSUPPORTED_VERSION = "unsupported_version"
UNAUTHORIZED = "unauthorized"
NOT_SUBSCRIBED = "not_subscribed"
PERMISSION_DENIED = "permission_denied"
NOT_FOUND = "not_found"
INVALID_STATE = "invalid_state"
TOO_MANY_REQUESTS = "too_many_requests"
INTERNAL = "internal"
# Only these count toward Limits.max_errors: they mean the client does not speak the protocol.
MALFORMED_CODES = frozenset({BAD_FRAME, UNKNOWN_TYPE, HELLO_REQUIRED})

# Compact frame type codes (first element of an array frame).
HEARTBEAT = 0
PROGRESS = 1
DOWNLOAD = 2

STAGE_CODES = {"probe": 1, "plan": 2, "render": 3, "thumbnail": 4}
STAGE_NAMES = {code: name for name, code in STAGE_CODES.items()}

MAX_NAME_CHARS = 40
MAX_TOKENS = 32
MAX_ID = 2**32 - 1
MAX_PRIORITY = 100


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-connection limits; the values are sent to the client in `welcome`."""

    max_frame_bytes: int = 65536
    commands_per_s: float = 10.0
    command_burst: int = 20
    max_errors: int = 10
    max_subscriptions: int = 16
    max_depth: int = 8
    max_container_len: int = 256
    # Frames other than progress that may wait in one connection's outbound queue.
    max_queued_frames: int = 256
    hello_timeout_s: float = 10.0
    # Seconds one write to a socket may take before the connection is closed with 4000.
    write_deadline_s: float = 10.0

    def to_json(self) -> dict[str, Any]:
        return {
            "max_frame_bytes": self.max_frame_bytes,
            "commands_per_s": self.commands_per_s,
            "command_burst": self.command_burst,
            "max_errors": self.max_errors,
            "max_subscriptions": self.max_subscriptions,
        }


class ProtocolError(Exception):
    """A client frame that gets an `error` reply: `code` from the list above."""

    def __init__(self, code: str, message: str, request_id: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


# Client commands ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Hello:
    id: int
    versions: tuple[int, ...]
    name: str
    tokens: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Subscribe:
    id: int
    project: str
    token: str | None = None
    seq: int | None = None
    epoch: str | None = None


@dataclasses.dataclass(frozen=True)
class Unsubscribe:
    id: int
    project: str


@dataclasses.dataclass(frozen=True)
class Cancel:
    id: int
    project: str
    job: str | None


@dataclasses.dataclass(frozen=True)
class SetPriority:
    id: int
    project: str
    job: str
    priority: int


@dataclasses.dataclass(frozen=True)
class Retry:
    id: int
    project: str
    job: str


@dataclasses.dataclass(frozen=True)
class Ping:
    id: int


Command = Hello | Subscribe | Unsubscribe | Cancel | SetPriority | Retry | Ping
# Commands that change jobs and need the editor role.
ACTING_COMMANDS = (Cancel, SetPriority, Retry)


def encode(value: Any) -> bytes:
    """Encode one frame value as MessagePack."""
    return msgpack.packb(value, use_bin_type=True)


def decode(data: bytes, limits: Limits = Limits()) -> Any:
    """Decode one MessagePack value within the size and nesting limits; raise ProtocolError(bad_frame)."""
    if len(data) > limits.max_frame_bytes:
        raise ProtocolError(BAD_FRAME, f"frame of {len(data)} bytes exceeds {limits.max_frame_bytes}")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_str_len=limits.max_frame_bytes,
            max_bin_len=limits.max_frame_bytes,
            max_array_len=limits.max_container_len,
            max_map_len=limits.max_container_len,
            max_ext_len=0,
        )
    except (ValueError, TypeError) as exc:
        # msgpack's errors (FormatError, StackError, ExtraData, limits, bad UTF-8) are ValueErrors.
        raise ProtocolError(BAD_FRAME, f"invalid MessagePack: {exc or type(exc).__name__}") from None
    _check_depth(value, limits.max_depth)
    return value


def _check_depth(value: Any, max_depth: int) -> None:
    # Iterative, so a deep value cannot exhaust Python's recursion limit.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > max_depth:
                raise ProtocolError(BAD_FRAME, f"frame nests deeper than {max_depth} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def parse_command(value: Any) -> Command:
    """Turn a decoded client frame into a Command; raise ProtocolError naming the bad field."""
    if not isinstance(value, dict):
        raise ProtocolError(BAD_FRAME, "a client frame must be a map with keys \"t\" and \"id\"")
    request_id = value.get("id")
    if not _is_int(request_id) or not 0 <= request_id <= MAX_ID:
        raise ProtocolError(BAD_FRAME, "\"id\" must be an integer from 0 to 2^32-1")
    kind = value.get("t")
    if not isinstance(kind, str):
        raise ProtocolError(BAD_FRAME, "\"t\" must be a string naming the frame type", request_id)
    parser = _PARSERS.get(kind)
    if parser is None:
        raise ProtocolError(UNKNOWN_TYPE, f"unknown frame type {kind[:40]!r}", request_id)
    return parser(value, request_id)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _string(frame: Mapping[str, Any], key: str, request_id: int, *, required: bool = True, max_len: int = 200) -> Any:
    value = frame.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise ProtocolError(BAD_FRAME, f"\"{key}\" must be a non-empty string of at most {max_len} characters", request_id)
    return value


def _parse_hello(frame: Mapping[str, Any], request_id: int) -> Hello:
    versions = frame.get("versions")
    if not isinstance(versions, list) or not versions or not all(_is_int(v) for v in versions):
        raise ProtocolError(BAD_FRAME, "\"versions\" must be a non-empty array of integers", request_id)
    name = frame.get("name")
    if name is None:
        name = "anonymous"
    if not isinstance(name, str):
        raise ProtocolError(BAD_FRAME, "\"name\" must be a string", request_id)
    tokens = frame.get("tokens") or []
    if (
        not isinstance(tokens, list)
        or len(tokens) > MAX_TOKENS
        or not all(isinstance(t, str) and 0 < len(t) <= 200 for t in tokens)
    ):
        raise ProtocolError(BAD_FRAME, f"\"tokens\" must be an array of at most {MAX_TOKENS} strings", request_id)
    return Hello(request_id, tuple(versions), clean_name(name), tuple(tokens))


def clean_name(name: str) -> str:
    """Remove control characters and surrounding spaces, cut at MAX_NAME_CHARS; "anonymous" if empty."""
    printable = "".join(ch for ch in name if ch.isprintable()).strip()
    return printable[:MAX_NAME_CHARS] or "anonymous"


def _parse_subscribe(frame: Mapping[str, Any], request_id: int) -> Subscribe:
    project = _string(frame, "project", request_id)
    token = _string(frame, "token", request_id, required=False)
    seq = frame.get("seq")
    if seq is not None and (not _is_int(seq) or not 0 <= seq < 2**63):
        raise ProtocolError(BAD_FRAME, "\"seq\" must be a non-negative integer", request_id)
    epoch = _string(frame, "epoch", request_id, required=False, max_len=64)
    return Subscribe(request_id, project, token, seq, epoch)


def _parse_unsubscribe(frame: Mapping[str, Any], request_id: int) -> Unsubscribe:
    return Unsubscribe(request_id, _string(frame, "project", request_id))


def _parse_cancel(frame: Mapping[str, Any], request_id: int) -> Cancel:
    project = _string(frame, "project", request_id)
    return Cancel(request_id, project, _string(frame, "job", request_id, required=False))


def _parse_set_priority(frame: Mapping[str, Any], request_id: int) -> SetPriority:
    project = _string(frame, "project", request_id)
    job = _string(frame, "job", request_id)
    priority = frame.get("priority")
    if not _is_int(priority) or not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
        raise ProtocolError(BAD_FRAME, f"\"priority\" must be an integer from -{MAX_PRIORITY} to {MAX_PRIORITY}", request_id)
    return SetPriority(request_id, project, job, priority)


def _parse_retry(frame: Mapping[str, Any], request_id: int) -> Retry:
    return Retry(request_id, _string(frame, "project", request_id), _string(frame, "job", request_id))


def _parse_ping(frame: Mapping[str, Any], request_id: int) -> Ping:
    return Ping(request_id)


_PARSERS = {
    "hello": _parse_hello,
    "subscribe": _parse_subscribe,
    "unsubscribe": _parse_unsubscribe,
    "cancel": _parse_cancel,
    "set_priority": _parse_set_priority,
    "retry": _parse_retry,
    "ping": _parse_ping,
}


# Server frames -----------------------------------------------------------------------------


def welcome_frame(request_id: int, version: int, server_version: str, conn_id: str, heartbeat_s: float, limits: Limits) -> dict[str, Any]:
    return {
        "t": "welcome",
        "id": request_id,
        "version": version,
        "server": server_version,
        "conn": conn_id,
        "heartbeat_s": heartbeat_s,
        "limits": limits.to_json(),
    }


def ack_frame(request_id: int, **fields: Any) -> dict[str, Any]:
    return {"t": "ack", "id": request_id, **fields}


def error_frame(request_id: int | None, code: str, message: str) -> dict[str, Any]:
    return {"t": "error", "id": request_id, "code": code, "message": message}


HEARTBEAT_FRAME = [HEARTBEAT]
HEARTBEAT_BYTES = encode(HEARTBEAT_FRAME)


def _scaled(value: float | None, factor: float) -> int | None:
    if value is None or not math.isfinite(value):
        return None
    return max(0, round(value * factor))


def _eta(value: float | None) -> int | None:
    if value is None or not math.isfinite(value):
        return None
    return max(0, math.ceil(value))


def progress_frame(ch: int, seq: int, n: int, progress: Progress) -> list[Any]:
    """Build the compact progress array: type 2 for downloads, type 1 for every other stage."""
    fraction = None if progress.fraction is None else min(10000, _scaled(progress.fraction, 10000) or 0)
    if progress.stage == "download":
        return [
            DOWNLOAD,
            ch,
            seq,
            n,
            fraction,
            max(0, progress.bytes_done or 0),
            progress.bytes_total if progress.bytes_total is None else max(0, progress.bytes_total),
            _scaled(progress.bytes_per_s, 1),
            _eta(progress.eta_s),
        ]
    return [
        PROGRESS,
        ch,
        seq,
        n,
        STAGE_CODES.get(progress.stage, 0),
        fraction,
        _scaled(progress.fps, 10),
        _scaled(progress.speed, 100),
        _eta(progress.eta_s),
    ]


def progress_fields(frame: list[Any]) -> dict[str, Any]:
    """Read a progress array (type 1 or 2) back into named fields in natural units."""
    kind = frame[0]
    if kind == DOWNLOAD:
        _, _, _, _, fraction, done, total, rate, eta = frame
        return {
            "stage": "download",
            "fraction": None if fraction is None else fraction / 10000,
            "bytes_done": done,
            "bytes_total": total,
            "bytes_per_s": rate,
            "eta_s": eta,
        }
    _, _, _, _, stage, fraction, fps, speed, eta = frame
    return {
        "stage": STAGE_NAMES.get(stage, "unknown"),
        "fraction": None if fraction is None else fraction / 10000,
        "fps": None if fps is None else fps / 10,
        "speed": None if speed is None else speed / 100,
        "eta_s": eta,
    }


def progress_to_json(progress: Progress) -> dict[str, Any]:
    """Build the snapshot's `jobs[].progress` map: the compact frame's values by name."""
    return progress_fields(progress_frame(0, 0, 0, progress))


def frame_type(value: Any) -> str:
    """Name of a decoded server frame: the map's "t", or the compact array's type."""
    if isinstance(value, dict):
        return str(value.get("t"))
    if isinstance(value, list) and value:
        return {HEARTBEAT: "heartbeat", PROGRESS: "progress", DOWNLOAD: "download"}.get(value[0], "unknown")
    return "unknown"


def frame_seq(value: Any) -> int | None:
    """Return the `seq` of a project frame, None for connection frames."""
    if isinstance(value, dict):
        seq = value.get("seq")
        return seq if isinstance(seq, int) else None
    if isinstance(value, list) and len(value) > 2 and value[0] in (PROGRESS, DOWNLOAD):
        return int(value[2])
    return None


# Per-connection state ----------------------------------------------------------------------


class TokenBucket:
    """Rate limit: `rate` tokens per second, at most `burst` saved; `now` is monotonic seconds."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclasses.dataclass
class Subscription:
    project: str
    ch: int
    role: str


class ConnectionState:
    """What one connection has agreed on so far, and the checks that need no I/O.

    `receive` turns raw message data into a Command or raises ProtocolError; after an error
    the caller replies with `error_frame` and closes with `close_code` when that is set.
    """

    def __init__(self, conn_id: str, limits: Limits, now: float) -> None:
        self.conn_id = conn_id
        self.limits = limits
        self.version: int | None = None
        self.name = "anonymous"
        self.tokens: tuple[str, ...] = ()
        self.subscriptions: dict[str, Subscription] = {}
        self.errors = 0
        self.close_code: int | None = None
        self.bucket = TokenBucket(limits.commands_per_s, limits.command_burst, now)

    @property
    def greeted(self) -> bool:
        return self.version is not None

    def receive(self, data: bytes | str, now: float) -> Command:
        try:
            return self._receive(data, now)
        except ProtocolError as exc:
            self.count_error(exc.code)
            raise

    def count_error(self, code: str) -> None:
        if code in MALFORMED_CODES:
            self.errors += 1
            if self.errors >= self.limits.max_errors:
                self.close_code = CLOSE_PROTOCOL_ERRORS

    def _receive(self, data: bytes | str, now: float) -> Command:
        if isinstance(data, str):
            raise ProtocolError(BAD_FRAME, "frames must be binary WebSocket messages containing MessagePack")
        value = decode(data, self.limits)
        request_id = value.get("id") if isinstance(value, dict) and _is_int(value.get("id")) else None
        if not self.bucket.take(now):
            raise ProtocolError(TOO_MANY_REQUESTS, "too many requests: send at most "
                                f"{self.limits.commands_per_s:g} frames per second", request_id)
        command = parse_command(value)
        if isinstance(command, Hello):
            return self._hello(command)
        if not self.greeted:
            raise ProtocolError(HELLO_REQUIRED, "send hello first", command.id)
        if isinstance(command, Subscribe):
            if command.project not in self.subscriptions and len(self.subscriptions) >= self.limits.max_subscriptions:
                raise ProtocolError(TOO_MANY_REQUESTS, f"too many subscriptions: at most {self.limits.max_subscriptions}", command.id)
        elif isinstance(command, ACTING_COMMANDS):
            self.check_may_act(command)
        return command

    def _hello(self, command: Hello) -> Hello:
        if self.greeted:
            raise ProtocolError(INVALID_STATE, "hello was already received on this connection", command.id)
        common = SUPPORTED_VERSIONS.intersection(command.versions)
        if not common:
            self.close_code = CLOSE_UNSUPPORTED_VERSION
            spoken = ", ".join(str(v) for v in sorted(SUPPORTED_VERSIONS))
            raise ProtocolError(UNSUPPORTED_VERSION, f"unsupported protocol version: this server speaks {spoken}", command.id)
        self.version = max(common)
        self.name = command.name
        self.tokens = command.tokens
        return command

    def check_may_act(self, command: Cancel | SetPriority | Retry) -> None:
        subscription = self.subscriptions.get(command.project)
        if subscription is None:
            raise ProtocolError(NOT_SUBSCRIBED, "subscribe to the project before sending commands for it", command.id)
        if subscription.role != "editor":
            raise ProtocolError(PERMISSION_DENIED, "permission denied: viewer links can only watch", command.id)

    def candidate_tokens(self, command: Subscribe) -> list[str]:
        """Tokens to try for a subscription: its own first, then the hello tokens."""
        tokens = [command.token] if command.token else []
        tokens.extend(t for t in self.tokens if t != command.token)
        return tokens
