"""Realtime routes: the WebSocket at /api/ws and the server-sent events fallback.

Both follow docs/protocol.md. `install(app, services)` makes the hub the app's EventSink and
registers the routes; app.py calls it before the app starts serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from quart import Blueprint, Quart, Response, current_app, request, websocket

from viralsplit.api.common import MISSING_TOKEN, INVALID_TOKEN, bearer_token
from viralsplit.auth import Actor, Role
from viralsplit.errors import NotFoundError
from viralsplit.realtime import protocol
from viralsplit.realtime.connection import Connection
from viralsplit.realtime.hub import Frame, Hub
from viralsplit.services import Services, get_services

log = logging.getLogger(__name__)

blueprint = Blueprint("realtime", __name__)

HUB_KEY = "viralsplit.hub"
# Frames one SSE stream may have waiting before it is ended, after which the client resumes.
# It is more than the hub's history, so a resume that replays all of it fits.
SSE_MAX_QUEUED = 2048
# Milliseconds an EventSource waits before reconnecting (the "retry:" field).
SSE_RETRY_MS = 2000


def install(app: Quart, services: Services) -> Hub:
    """Create the hub, make it the services' EventSink and register the realtime routes."""
    decline_permessage_deflate()
    hub = Hub(output_urls=_output_urls, presence_interval_s=services.config.presence_interval_s)
    services.events = hub
    app.extensions[HUB_KEY] = hub
    app.register_blueprint(blueprint)

    @app.after_serving
    async def close_connections() -> None:
        hub.shutdown()

    return hub


def decline_permessage_deflate() -> None:
    """Make Hypercorn decline permessage-deflate (RFC 7692) offers, which browsers always send.

    Measured with bench/ws_fanout.py (docs/benchmarks.md), compression cost about 155 KiB of
    server memory per connection and half again the CPU per delivered frame, for progress
    frames of about 20 bytes that do not get smaller. Hypercorn 0.18 has no setting for it:
    its handshake accepts every extension of a list built from the module-level name
    `PerMessageDeflate`, so that name is pointed at a subclass that accepts no offer.
    """
    from hypercorn.protocol import ws_stream
    from wsproto.extensions import PerMessageDeflate

    class DeclinedPerMessageDeflate(PerMessageDeflate):
        def accept(self, offer: str) -> None:  # type: ignore[override]
            return None

    # NOTE: this relies on Hypercorn's internals; test_handshake checks the result.
    if getattr(ws_stream, "PerMessageDeflate", None) is PerMessageDeflate:
        ws_stream.PerMessageDeflate = DeclinedPerMessageDeflate  # type: ignore[misc]


def get_hub(app: Quart) -> Hub:
    hub: Hub = app.extensions[HUB_KEY]
    return hub


def _output_urls(project_id: str, output_id: str) -> dict[str, str]:
    # Same paths as the snapshot's outputs (services.output_json).
    return {"url": f"/api/outputs/{output_id}", "thumbnail_url": f"/api/outputs/{output_id}/thumbnail"}


class ServicesBackend:
    """Connection.Backend over the app's store and scheduler."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def authenticate(self, project_id: str, token: str) -> str | None:
        role = self.services.store.authenticate(project_id, token)
        return role.value if role is not None else None

    async def snapshot(self, project_id: str) -> dict[str, Any]:
        return await self.services.snapshot(project_id)

    async def _check_job(self, project_id: str, job_id: str) -> None:
        job = await self.services.store.find_job(job_id)
        if job is None or job.project_id != project_id:
            raise NotFoundError(f"job {job_id} not found in project {project_id}")

    async def cancel(self, project_id: str, job_id: str | None, name: str, role: str) -> None:
        actor = Actor(name, Role(role))
        if job_id is None:
            await self.services.scheduler.cancel_project(project_id, actor)
            return
        await self._check_job(project_id, job_id)
        await self.services.scheduler.cancel_job(job_id, actor)

    async def set_priority(self, project_id: str, job_id: str, priority: int, name: str, role: str) -> None:
        await self._check_job(project_id, job_id)
        await self.services.scheduler.set_priority(job_id, priority, Actor(name, Role(role)))

    async def retry(self, project_id: str, job_id: str, name: str, role: str) -> None:
        await self._check_job(project_id, job_id)
        await self.services.scheduler.retry_job(job_id, Actor(name, Role(role)))


class QuartTransport:
    """Connection.Transport over Quart's websocket of the current request."""

    def __init__(self) -> None:
        # The object behind the context-local proxy, so each send skips the proxy lookup.
        self.websocket = websocket._get_current_object()
        # NOTE: Quart 0.22's Websocket.send runs `await asyncio.sleep(0)` before every message,
        # one extra event-loop pass per frame and socket (a third of the CPU per frame in
        # bench/ws_fanout.py). After accept() it only calls `_send`, a private attribute,
        # so it is used directly when present.
        self._send = getattr(self.websocket, "_send", None) or self.websocket.send

    async def receive(self) -> bytes | str:
        data = await self.websocket.receive()
        # Quart 0.22 returns None for an empty binary message ("bytes" or "text" of the ASGI event).
        return b"" if data is None else data

    async def send(self, data: bytes) -> None:
        await self._send(data)

    async def close(self, code: int, reason: str) -> None:
        await self.websocket.close(code, reason)


def origin_allowed(origin: str | None, scheme: str, host: str, allowed: tuple[str, ...]) -> bool:
    """Accept no Origin (not a browser), the server's own origin, or one listed in `allowed`."""
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    if origin in {entry.strip().rstrip("/").lower() for entry in allowed}:
        return True
    parts = urlsplit(origin)
    own_scheme = "https" if scheme in ("wss", "https") else "http"
    return parts.scheme == own_scheme and parts.netloc == host.lower()


@blueprint.websocket("/api/ws")
async def socket() -> Response | None:
    services = get_services(current_app)
    origin = websocket.headers.get("Origin")
    if not origin_allowed(origin, websocket.scheme, websocket.host, services.config.allowed_origins):
        log.info("rejected WebSocket from origin %r", origin[:100] if origin else origin)
        # Sent instead of the upgrade (Hypercorn supports the websocket.http.response extension).
        return Response("origin not allowed: set VIRALSPLIT_ALLOWED_ORIGINS to admit it", status=403)
    await websocket.accept()
    connection = Connection(
        get_hub(current_app),
        ServicesBackend(services),
        QuartTransport(),
        heartbeat_s=services.config.heartbeat_interval_s,
    )
    await connection.run()
    return None


class SSEStream:
    """hub.Subscriber for one server-sent events response."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Frame | None] = asyncio.Queue()
        self.ended = False

    def deliver(self, frame: Frame, replay: bool = False) -> None:
        if self.ended:
            return
        if self.queue.qsize() >= SSE_MAX_QUEUED:
            self.end()
            return
        self.queue.put_nowait(frame)

    def shutdown(self) -> None:
        self.end()

    def end(self) -> None:
        self.ended = True
        self.queue.put_nowait(None)


def parse_last_event_id(value: str | None) -> tuple[str | None, int | None]:
    """Split "EPOCH:SEQ" into its parts; a bare number is a seq of an unknown epoch."""
    if not value:
        return None, None
    epoch, _, seq = value.strip().rpartition(":")
    if not seq.isdigit():
        return None, None
    return (epoch or None), int(seq)


def format_event(frame: Frame, epoch: str) -> str:
    return f"event: {frame.kind}\nid: {epoch}:{frame.seq}\ndata: {frame.json()}\n\n"


@blueprint.get("/api/projects/<project_id>/events")
async def events(project_id: str) -> Response:
    services = get_services(current_app)
    token = bearer_token(allow_query=True)
    if token is None:
        raise MISSING_TOKEN
    if services.store.authenticate(project_id, token) is None:
        raise INVALID_TOKEN
    hub = get_hub(current_app)
    epoch, seq = parse_last_event_id(request.headers.get("Last-Event-ID"))
    stream = SSEStream()
    heartbeat_s = services.config.heartbeat_interval_s

    async def body() -> AsyncIterator[bytes]:
        try:
            yield f"retry: {SSE_RETRY_MS}\n\n".encode()
            await hub.subscribe(project_id, stream, services.snapshot, seq=seq, epoch=epoch)
            while True:
                try:
                    async with asyncio.timeout(heartbeat_s):
                        frame = await stream.queue.get()
                except TimeoutError:
                    yield b": heartbeat\n\n"
                    continue
                if frame is None:
                    return
                yield format_event(frame, hub.epoch).encode()
        finally:
            hub.unsubscribe(project_id, stream)

    response = Response(body(), content_type="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    # A stream lasts as long as the client watches; Quart's default body timeout would end it.
    response.timeout = None
    return response
