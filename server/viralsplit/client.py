"""Asyncio client of the realtime protocol (docs/protocol.md), built on the `websockets` library.

    async with RealtimeClient("http://127.0.0.1:8000", name="ci", tokens=[token]) as client:
        await client.subscribe(project_id)
        async for frame in client.frames():
            ...
        await client.cancel(project_id, job_id)      # returns the ack or raises ServerError

The client reconnects after a lost connection or a close code of the "reconnect" range, with
exponential backoff and full jitter. It resubscribes with each project's last seq and epoch,
so `frames()` continues with exactly the missed frames or with a fresh snapshot.
`ProjectState` folds those frames into the current state of a project.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import msgpack
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from viralsplit.realtime import protocol

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0
# A connection that stayed open this long resets the backoff.
STABLE_AFTER_S = 60.0
REQUEST_TIMEOUT_S = 30.0


class ServerError(Exception):
    """An `error` frame in reply to a command."""

    def __init__(self, code: str, message: str, request_id: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id


class ConnectionEnded(Exception):
    """The connection ended for good: a "do not reconnect" close code, or close() was called."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"connection closed with code {code}: {reason}" if code else "connection closed")
        self.code = code
        self.reason = reason


def websocket_url(server: str) -> str:
    """Turn a server base URL (http://host:port) into its WebSocket URL; ws:// URLs pass through."""
    server = server.rstrip("/")
    if server.startswith(("ws://", "wss://")):
        return server
    if server.startswith("https://"):
        return "wss://" + server[len("https://"):] + "/api/ws"
    if server.startswith("http://"):
        return "ws://" + server[len("http://"):] + "/api/ws"
    raise ValueError(f"invalid server URL {server!r}: use http://HOST:PORT or https://HOST")


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before reconnect attempt `attempt` (1, 2, ...): full jitter on capped doubling."""
    cap = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
    return (rng or random).uniform(0, cap)


class _Subscription:
    def __init__(self, project: str, token: str | None) -> None:
        self.project = project
        self.token = token
        self.seq: int | None = None
        self.epoch: str | None = None
        self.ch: int | None = None
        self.role: str | None = None


class RealtimeClient:
    """One realtime connection that survives reconnects; use as an async context manager."""

    def __init__(
        self,
        server: str,
        *,
        name: str | None = None,
        tokens: Iterable[str] = (),
        reconnect: bool = True,
        open_timeout: float = 10.0,
    ) -> None:
        self.url = websocket_url(server)
        self.name = name
        self.tokens = list(tokens)
        self.reconnect = reconnect
        self.open_timeout = open_timeout
        self.welcome: dict[str, Any] = {}
        self.reconnects = 0
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._subscriptions: dict[str, _Subscription] = {}
        self._by_ch: dict[int, _Subscription] = {}
        self._frames: asyncio.Queue[Any] = asyncio.Queue()
        self._ws: Any = None
        self._connected = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._ended: ConnectionEnded | None = None

    async def __aenter__(self) -> RealtimeClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # Connection --------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the socket and exchange hello and welcome; raise on the first failure."""
        await self._open()
        self._runner = asyncio.create_task(self._run(), name="viralsplit-client")

    async def _open(self) -> None:
        ws = await websockets.connect(self.url, open_timeout=self.open_timeout, max_size=None, compression=None)
        hello: dict[str, Any] = {"t": "hello", "id": 0, "versions": sorted(protocol.SUPPORTED_VERSIONS)}
        if self.name:
            hello["name"] = self.name
        if self.tokens:
            hello["tokens"] = self.tokens
        await ws.send(protocol.encode(hello))
        async with asyncio.timeout(self.open_timeout):
            reply = msgpack.unpackb(await ws.recv())
        if reply.get("t") != "welcome":
            await ws.close()
            raise ServerError(reply.get("code", "unknown"), reply.get("message", "no welcome from the server"))
        self.welcome = reply
        self._ws = ws
        self._connected.set()

    async def close(self) -> None:
        self._ended = self._ended or ConnectionEnded(1000, "closed by the client")
        # Closing the socket first ends the runner's receive loop, and _ended stops it from
        # reconnecting. A runner cancelled inside asyncio.wait_for hung in tests on Python 3.11.7.
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            try:
                async with asyncio.timeout(5.0):
                    await asyncio.shield(self._runner)
            except TimeoutError:
                self._runner.cancel()
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - the runner is over either way
                pass
        self._fail_pending(self._ended)
        self._frames.put_nowait(None)

    async def _run(self) -> None:
        attempt = 0
        while True:
            opened_at = time.monotonic()
            code, reason = await self._serve_socket()
            self._connected.clear()
            if self._ended is not None:
                return
            self._fail_pending(ConnectionError(f"connection lost (code {code})"))
            if not self.reconnect or code in protocol.FINAL_CLOSE_CODES:
                self._ended = ConnectionEnded(code, reason)
                self._frames.put_nowait(None)
                return
            attempt = 1 if time.monotonic() - opened_at >= STABLE_AFTER_S else attempt + 1
            while True:
                delay = 0.0 if code == protocol.CLOSE_RESYNC and attempt == 1 else backoff_delay(attempt)
                log.info("reconnecting in %.1f s (attempt %d, close code %s)", delay, attempt, code)
                await asyncio.sleep(delay)
                try:
                    await self._open()
                    self.reconnects += 1
                    await self._resubscribe()
                    break
                except (OSError, TimeoutError, ConnectionClosed, InvalidStatus, ServerError) as exc:
                    log.info("reconnect attempt %d failed: %s", attempt, exc)
                    attempt += 1

    async def _resubscribe(self) -> None:
        # Sent without waiting for replies: the reader is not running yet, and the acks arrive in
        # order. Channel numbers may differ in a new epoch, so the acks map them afresh.
        self._by_ch.clear()
        for sub in self._subscriptions.values():
            frame = self._subscribe_frame(next(self._ids), sub)
            await self._ws.send(protocol.encode(frame))

    async def _serve_socket(self) -> tuple[int | None, str]:
        ws = self._ws
        heartbeat_s = float(self.welcome.get("heartbeat_s", 15.0))
        pinger = asyncio.create_task(self._ping_loop(ws, heartbeat_s))
        try:
            while True:
                async with asyncio.timeout(protocol_silence(heartbeat_s)):
                    data = await ws.recv()
                self._handle(msgpack.unpackb(data, raw=False))
        except TimeoutError:
            await ws.close()
            return 1006, "no frame from the server within the heartbeat timeout"
        except ConnectionClosed as exc:
            received = exc.rcvd
            return (received.code, received.reason) if received else (1006, "connection lost")
        finally:
            pinger.cancel()

    async def _ping_loop(self, ws: Any, heartbeat_s: float) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(heartbeat_s)
                await ws.send(protocol.encode({"t": "ping", "id": next(self._ids)}))

    def _handle(self, frame: Any) -> None:
        kind = protocol.frame_type(frame)
        if kind == "heartbeat":
            return
        if kind in ("ack", "error"):
            future = self._pending.pop(frame.get("id"), None)
            if kind == "ack" and "ch" in frame and frame.get("project") in self._subscriptions:
                sub = self._subscriptions[frame["project"]]
                sub.ch, sub.role = frame["ch"], frame.get("role")
                self._by_ch[frame["ch"]] = sub
            if future is not None and not future.done():
                if kind == "ack":
                    future.set_result(frame)
                else:
                    future.set_exception(ServerError(frame.get("code", "unknown"), frame.get("message", ""), frame.get("id")))
            elif kind == "error":
                log.warning("server error %s: %s", frame.get("code"), frame.get("message"))
            return
        seq = protocol.frame_seq(frame)
        ch = frame.get("ch") if isinstance(frame, dict) else frame[1]
        sub = self._by_ch.get(ch)
        if sub is None or seq is None:
            return
        if kind == "snapshot":
            sub.epoch = frame["epoch"]
        sub.seq = seq
        self._frames.put_nowait(frame)

    def _fail_pending(self, exc: BaseException) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)
        self._pending.clear()

    # Commands ----------------------------------------------------------------------------

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send a command and return its ack; raise ServerError for an error reply."""
        if self._ended is not None:
            raise self._ended
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            await self._connected.wait()
            request_id = next(self._ids)
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending[request_id] = future
            await self._ws.send(protocol.encode({**frame, "id": request_id}))
            return await future

    def _subscribe_frame(self, request_id: int, sub: _Subscription) -> dict[str, Any]:
        frame: dict[str, Any] = {"t": "subscribe", "id": request_id, "project": sub.project}
        if sub.token:
            frame["token"] = sub.token
        if sub.seq is not None and sub.epoch is not None:
            frame["seq"] = sub.seq
            frame["epoch"] = sub.epoch
        return frame

    async def subscribe(self, project: str, token: str | None = None) -> dict[str, Any]:
        sub = self._subscriptions.get(project) or _Subscription(project, token)
        self._subscriptions[project] = sub
        frame = self._subscribe_frame(0, sub)
        try:
            return await self.request(frame)
        except ServerError:
            self._subscriptions.pop(project, None)
            raise

    async def unsubscribe(self, project: str) -> dict[str, Any]:
        sub = self._subscriptions.pop(project, None)
        if sub is not None and sub.ch is not None:
            self._by_ch.pop(sub.ch, None)
        return await self.request({"t": "unsubscribe", "project": project})

    async def cancel(self, project: str, job: str | None = None) -> dict[str, Any]:
        frame: dict[str, Any] = {"t": "cancel", "project": project}
        if job is not None:
            frame["job"] = job
        return await self.request(frame)

    async def set_priority(self, project: str, job: str, priority: int) -> dict[str, Any]:
        return await self.request({"t": "set_priority", "project": project, "job": job, "priority": priority})

    async def retry(self, project: str, job: str) -> dict[str, Any]:
        return await self.request({"t": "retry", "project": project, "job": job})

    async def ping(self) -> dict[str, Any]:
        return await self.request({"t": "ping"})

    def project_of(self, frame: Any) -> str | None:
        """Return the id of the project a frame belongs to, found by its channel number."""
        ch = frame.get("ch") if isinstance(frame, dict) else frame[1]
        sub = self._by_ch.get(ch)
        return sub.project if sub is not None else None

    async def frames(self) -> AsyncIterator[Any]:
        """Project frames of every subscription, in arrival order, across reconnects."""
        while True:
            frame = await self._frames.get()
            if frame is None:
                if self._ended is not None and self._ended.code not in (None, 1000):
                    raise self._ended
                return
            yield frame


def protocol_silence(heartbeat_s: float) -> float:
    """Seconds without any frame after which the client treats the server as gone."""
    return 3 * heartbeat_s


class ProjectState:
    """The current state of one project, built from a snapshot and the frames after it."""

    def __init__(self) -> None:
        self.project: dict[str, Any] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.numbers: dict[int, str] = {}
        self.outputs: list[dict[str, Any]] = []
        self.activity: list[dict[str, Any]] = []
        self.presence: list[dict[str, Any]] = []
        self.seq = 0
        self.epoch: str | None = None

    def apply(self, frame: Any) -> None:
        kind = protocol.frame_type(frame)
        seq = protocol.frame_seq(frame)
        if kind != "snapshot" and seq is not None and seq <= self.seq:
            return
        if seq is not None:
            self.seq = seq
        if kind == "snapshot":
            self._apply_snapshot(frame)
        elif kind in ("progress", "download"):
            job_id = self.numbers.get(frame[3])
            if job_id in self.jobs:
                self.jobs[job_id]["progress"] = protocol.progress_fields(frame)
        elif kind in ("job", "job_added"):
            job = self.jobs.setdefault(frame["job"], {"id": frame["job"], "state": "queued"})
            self.numbers[frame["n"]] = frame["job"]
            for key in ("state", "error", "priority", "attempt", "kind", "label"):
                if key in frame:
                    job[key] = frame[key]
            job["progress"] = None
        elif kind == "priority":
            self.numbers[frame["n"]] = frame["job"]
            if frame["job"] in self.jobs:
                self.jobs[frame["job"]]["priority"] = frame["priority"]
            for position, job_id in enumerate(frame["queue"]):
                if job_id in self.jobs:
                    self.jobs[job_id]["queue_position"] = position
        elif kind == "output":
            self.outputs.append(frame["output"])
        elif kind == "source":
            self.project["info"] = frame["info"]
        elif kind == "presence":
            self.presence = frame["viewers"]
        elif kind == "activity":
            self.activity.append(frame["activity"])

    def _apply_snapshot(self, frame: dict[str, Any]) -> None:
        state = frame["state"]
        self.epoch = frame["epoch"]
        self.project = dict(state.get("project") or {})
        self.jobs = {job["id"]: dict(job) for job in state.get("jobs") or []}
        self.numbers = {job["n"]: job["id"] for job in self.jobs.values() if "n" in job}
        self.outputs = list(state.get("outputs") or [])
        self.activity = list(state.get("activity") or [])
        self.presence = list(frame.get("presence") or [])

    @property
    def all_ended(self) -> bool:
        """True when the project has jobs and every one of them has ended."""
        return bool(self.jobs) and all(job.get("state") in ("succeeded", "failed", "cancelled") for job in self.jobs.values())
