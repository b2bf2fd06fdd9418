"""One WebSocket connection: a reader that executes commands and a writer with its own queue.

The ASGI server's `send` waits while the socket's buffer is full and has no timeout of its
own (Hypercorn 0.18), so nothing but this connection's writer task ever waits on it: the hub
only queues. The queue is bounded. A newer progress frame of a job replaces an older one that
is still waiting, and other frames are never dropped. A connection whose queue overflows or
whose write misses the deadline is closed with the "reconnect and resync" code.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from viralsplit import __version__
from viralsplit.errors import NotFoundError, PermissionDeniedError, StateError, ViralSplitError
from viralsplit.realtime import protocol
from viralsplit.realtime.hub import Frame, Hub
from viralsplit.realtime.protocol import ProtocolError

log = logging.getLogger(__name__)

# Dead-peer detection: a connection silent for this many heartbeat intervals is closed.
SILENT_HEARTBEATS = 3
CLOSE_TIMEOUT_S = 2.0
WATCHDOG_MAX_INTERVAL_S = 1.0


class Watchdog:
    """One task per event loop that checks every connection's deadlines.

    A timer per write or per read would cost a heap operation for every frame of every
    socket. Checking all connections once a second costs one pass, and each deadline is
    still met within a quarter of its length, at most 1 s late.
    """

    _instances: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Watchdog] = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self.connections: set[Connection] = set()
        self.task: asyncio.Task[None] | None = None

    @classmethod
    def for_running_loop(cls) -> Watchdog:
        loop = asyncio.get_running_loop()
        watchdog = cls._instances.get(loop)
        if watchdog is None:
            watchdog = cls._instances[loop] = cls()
        return watchdog

    def add(self, connection: Connection) -> None:
        self.connections.add(connection)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name="ws-watchdog")

    def remove(self, connection: Connection) -> None:
        self.connections.discard(connection)

    async def _run(self) -> None:
        while self.connections:
            await asyncio.sleep(min(c.check_interval for c in self.connections))
            for connection in list(self.connections):
                try:
                    connection.check(connection.clock())
                except Exception:
                    log.exception("connection %s: deadline check failed", connection.id)


class Transport(Protocol):
    async def receive(self) -> bytes | str: ...

    async def send(self, data: bytes) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class Backend(Protocol):
    """Server operations a socket calls; api/realtime.py adapts the app's services to it."""

    async def authenticate(self, project_id: str, token: str) -> str | None:
        """Return "editor" or "viewer" for a token of the project, None otherwise."""

    async def snapshot(self, project_id: str) -> dict[str, Any]: ...

    async def cancel(self, project_id: str, job_id: str | None, name: str, role: str) -> None: ...

    async def set_priority(self, project_id: str, job_id: str, priority: int, name: str, role: str) -> None: ...

    async def retry(self, project_id: str, job_id: str, name: str, role: str) -> None: ...


# Key of replayed entries in OutboundQueue.
_REPLAY = ("replay",)


class OutboundQueue:
    """Bytes waiting to be written, in order; progress entries with the same key replace each other."""

    def __init__(self, max_frames: int) -> None:
        self.max_frames = max_frames
        # Each entry is [data, replace_key]; a replaced progress entry has its data set to None.
        self._entries: collections.deque[list[Any]] = collections.deque()
        self._progress: dict[tuple[int, int], list[Any]] = {}
        self._others = 0
        self._replays = 0
        self.ready = asyncio.Event()

    def __len__(self) -> int:
        return self._others + self._replays + len(self._progress)

    def push(self, data: bytes, replace_key: tuple[int, int] | None = None, *, replay: bool = False) -> bool:
        """Queue data; return False, queuing nothing, when max_frames other frames already wait.

        Replayed frames (the missed frames of a resume) are never replaced and do not count
        toward max_frames, because the client must get each of them and history bounds them.
        """
        if replay:
            self._replays += 1
            self._entries.append([data, _REPLAY])
            self.ready.set()
            return True
        if replace_key is None:
            if self._others >= self.max_frames:
                return False
            self._others += 1
        else:
            older = self._progress.get(replace_key)
            if older is not None:
                older[0] = None
        entry = [data, replace_key]
        if replace_key is not None:
            self._progress[replace_key] = entry
        self._entries.append(entry)
        if len(self._entries) > 2 * (self.max_frames + len(self._progress)) + self._replays:
            self._entries = collections.deque(e for e in self._entries if e[0] is not None)
        self.ready.set()
        return True

    def pop(self) -> bytes | None:
        while self._entries:
            data, key = entry = self._entries.popleft()
            if data is None:
                continue
            if key is None:
                self._others -= 1
            elif key is _REPLAY:
                self._replays -= 1
            elif self._progress.get(key) is entry:
                del self._progress[key]
            return data  # type: ignore[no-any-return]
        self.ready.clear()
        return None

    def clear(self) -> None:
        self._entries.clear()
        self._progress.clear()
        self._others = 0
        self._replays = 0


class Connection:
    """Serves one socket until either side closes it; implements hub.Subscriber."""

    def __init__(
        self,
        hub: Hub,
        backend: Backend,
        transport: Transport,
        *,
        limits: protocol.Limits = protocol.Limits(),
        heartbeat_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hub = hub
        self.backend = backend
        self.transport = transport
        self.limits = limits
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        self.id = "c_" + secrets.token_hex(4)
        self.state = protocol.ConnectionState(self.id, limits, clock())
        self.queue = OutboundQueue(limits.max_queued_frames)
        self.close_code: int | None = None
        self.close_reason = ""
        self._writer: asyncio.Task[None] | None = None
        self.opened = self.last_receive = self.last_write = clock()
        # When the write in progress started, None between writes.
        self.sending_since: float | None = None

    # Subscriber --------------------------------------------------------------------------

    def deliver(self, frame: Frame, replay: bool = False) -> None:
        if self.close_code is not None:
            return
        if not self.queue.push(frame.data, frame.replace_key, replay=replay):
            log.info("closing connection %s: outbound queue full (%d frames)", self.id, len(self.queue))
            self.close(protocol.CLOSE_RESYNC, "client fell behind: reconnect and resync", flush=False)

    def shutdown(self) -> None:
        self.close(protocol.CLOSE_SHUTDOWN, "server shutting down", flush=False)

    # Lifecycle ---------------------------------------------------------------------------

    def send_value(self, value: Any) -> None:
        """Queue a connection frame (welcome, ack, error)."""
        if self.close_code is None and not self.queue.push(protocol.encode(value)):
            self.close(protocol.CLOSE_RESYNC, "client fell behind: reconnect and resync", flush=False)

    def close(self, code: int, reason: str, *, flush: bool) -> None:
        """Close after the queued frames (flush) or at once; the first request wins."""
        if self.close_code is not None:
            return
        self.close_code = code
        self.close_reason = reason
        if not flush:
            self.queue.clear()
            if self._writer is not None:
                # The writer may be stuck in send on a full socket buffer.
                self._writer.cancel()
        self.queue.ready.set()

    async def run(self) -> None:
        self.hub.register(self)
        watchdog = Watchdog.for_running_loop()
        watchdog.add(self)
        self._writer = asyncio.create_task(self._write_loop(), name=f"ws-writer-{self.id}")
        reader = asyncio.create_task(self._read_loop(), name=f"ws-reader-{self.id}")
        try:
            await asyncio.wait({self._writer})
        finally:
            reader.cancel()
            self._writer.cancel()
            self.hub.unregister(self)
            watchdog.remove(self)
            await asyncio.gather(reader, self._writer, return_exceptions=True)
        if self.close_code is None:
            self.close_code = 1000
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self.transport.close(self.close_code, self.close_reason)
        except Exception as exc:  # noqa: BLE001 - the peer may be gone; nothing is left to tell it
            log.debug("connection %s: close failed: %r", self.id, exc)

    async def _write_loop(self) -> None:
        # Deadlines and heartbeats are checked by the Watchdog, so a write costs no timer here.
        while True:
            data = self.queue.pop()
            if data is None:
                if self.close_code is not None:
                    return
                await self.queue.ready.wait()
                continue
            self.sending_since = self.clock()
            try:
                await self.transport.send(data)
            except Exception as exc:  # noqa: BLE001 - any transport failure ends this connection
                log.debug("connection %s: send failed: %r", self.id, exc)
                self.close(1006, "", flush=False)
                return
            finally:
                self.sending_since = None
            self.last_write = self.clock()

    def check(self, now: float) -> None:
        """Enforce the write deadline, the hello and heartbeat timeouts, and send heartbeats."""
        if self.sending_since is not None and now - self.sending_since > self.limits.write_deadline_s:
            if self.close_code is None:
                log.info("closing connection %s: a write took over %.0f s", self.id, self.limits.write_deadline_s)
                self.close(protocol.CLOSE_RESYNC, "client fell behind: reconnect and resync", flush=False)
            elif self._writer is not None:
                self._writer.cancel()
            return
        if self.close_code is not None:
            return
        if not self.state.greeted:
            if now - self.opened > self.limits.hello_timeout_s:
                self.close(protocol.CLOSE_HELLO_TIMEOUT, "no hello within the time limit", flush=True)
            return
        if now - self.last_receive > SILENT_HEARTBEATS * self.heartbeat_s:
            self.close(protocol.CLOSE_HEARTBEAT_TIMEOUT, "no frame received within the heartbeat timeout", flush=True)
            return
        if self.sending_since is None and len(self.queue) == 0 and now - self.last_write >= self.heartbeat_s:
            self.queue.push(protocol.HEARTBEAT_BYTES)

    @property
    def check_interval(self) -> float:
        """Seconds between checks that keep every deadline within a quarter of its length."""
        shortest = min(self.heartbeat_s, self.limits.hello_timeout_s, self.limits.write_deadline_s)
        return max(0.01, min(WATCHDOG_MAX_INTERVAL_S, shortest / 4))

    async def _read_loop(self) -> None:
        try:
            while self.close_code is None:
                if not await self._read_one():
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a receive failure means the peer went away
            log.debug("connection %s: receive failed: %r", self.id, exc)
            self.close(1006, "", flush=False)

    async def _read_one(self) -> bool:
        """Receive and handle one frame; return False once the connection is closing."""
        data = await self.transport.receive()
        self.last_receive = self.clock()
        if len(data) > self.limits.max_frame_bytes:
            self.close(protocol.CLOSE_TOO_BIG, f"frame over {self.limits.max_frame_bytes} bytes", flush=False)
            return False
        try:
            command = self.state.receive(data, self.clock())
            await self._execute(command)
        except ProtocolError as exc:
            self.send_value(protocol.error_frame(exc.request_id, exc.code, exc.message))
            if self.state.close_code is not None:
                self.close(self.state.close_code, exc.message[:120], flush=True)
                return False
        return True

    # Commands ----------------------------------------------------------------------------

    async def _execute(self, command: protocol.Command) -> None:
        try:
            await self._dispatch(command)
        except ProtocolError:
            raise
        except NotFoundError as exc:
            raise ProtocolError(protocol.NOT_FOUND, str(exc), command.id) from None
        except StateError as exc:
            raise ProtocolError(protocol.INVALID_STATE, str(exc), command.id) from None
        except PermissionDeniedError as exc:
            raise ProtocolError(protocol.PERMISSION_DENIED, str(exc), command.id) from None
        except ViralSplitError as exc:
            raise ProtocolError(protocol.INVALID_STATE, str(exc), command.id) from None
        except Exception:
            log.exception("connection %s: %s failed", self.id, type(command).__name__)
            raise ProtocolError(protocol.INTERNAL, "internal server error; the server logged it", command.id) from None

    async def _dispatch(self, command: protocol.Command) -> None:
        if isinstance(command, protocol.Hello):
            self.send_value(
                protocol.welcome_frame(command.id, self.state.version or protocol.PROTOCOL_VERSION, __version__, self.id, self.heartbeat_s, self.limits)
            )
        elif isinstance(command, protocol.Ping):
            self.send_value(protocol.ack_frame(command.id))
        elif isinstance(command, protocol.Subscribe):
            await self._subscribe(command)
        elif isinstance(command, protocol.Unsubscribe):
            self.hub.unsubscribe(command.project, self)
            self.state.subscriptions.pop(command.project, None)
            self.send_value(protocol.ack_frame(command.id))
        elif isinstance(command, protocol.Cancel):
            await self.backend.cancel(command.project, command.job, self.state.name, "editor")
            self.send_value(protocol.ack_frame(command.id))
        elif isinstance(command, protocol.SetPriority):
            await self.backend.set_priority(command.project, command.job, command.priority, self.state.name, "editor")
            self.send_value(protocol.ack_frame(command.id))
        elif isinstance(command, protocol.Retry):
            await self.backend.retry(command.project, command.job, self.state.name, "editor")
            self.send_value(protocol.ack_frame(command.id))

    async def _subscribe(self, command: protocol.Subscribe) -> None:
        role = None
        for token in self.state.candidate_tokens(command):
            role = await self.backend.authenticate(command.project, token)
            if role is not None:
                break
        if role is None:
            raise ProtocolError(protocol.UNAUTHORIZED, "unauthorized: no token grants access to this project", command.id)
        # The old subscription ends now, so a failed read below leaves the connection unsubscribed.
        self.state.subscriptions.pop(command.project, None)

        def acknowledge(ch: int, resumed: bool) -> None:
            self.state.subscriptions[command.project] = protocol.Subscription(command.project, ch, role)
            self.send_value(protocol.ack_frame(command.id, project=command.project, ch=ch, role=role, resumed=resumed))

        await self.hub.subscribe(
            command.project,
            self,
            self.backend.snapshot,
            presence={"conn": self.id, "name": self.state.name, "role": role},
            seq=command.seq,
            epoch=command.epoch,
            before_frames=acknowledge,
        )
