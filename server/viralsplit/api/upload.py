"""PUT /api/projects/{id}/source as ASGI middleware, so an upload streams to disk with backpressure.

Quart's request body collects whatever the server receives without waiting for the handler,
so a fast client and a slow disk would grow it without bound. Here the handler calls ASGI
`receive()` only after the previous chunk is written, so Hypercorn stops reading the socket
while the disk catches up, and memory stays at one write buffer per upload.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from typing import Any
from urllib.parse import parse_qs

import aiofiles
import aiofiles.os

from viralsplit.api.common import MAX_NAME_LENGTH, NAME_HEADER
from viralsplit.auth import Actor, Role
from viralsplit.services import Services
from viralsplit.storage import safe_name

log = logging.getLogger(__name__)

UPLOAD_PATH = re.compile(r"/api/projects/([A-Za-z0-9_-]{1,64})/source")
# Received chunks are gathered into writes of this many bytes.
WRITE_BUFFER_BYTES = 1024 * 1024
# After a body is found too large, at most this many more bytes are read and discarded (for
# at most DRAIN_TIMEOUT_S) before the 413 is sent, so that a client which writes its whole
# body before reading the response still sees the 413 instead of a reset connection.
DRAIN_MAX_BYTES = 256 * 1024 * 1024
DRAIN_TIMEOUT_S = 30.0

Scope = dict[str, Any]


class UploadMiddleware:
    def __init__(self, app: Any, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "PUT":
            match = UPLOAD_PATH.fullmatch(scope["path"])
            if match:
                await Upload(self.services, match.group(1), scope, receive, send).run()
                return
        await self.app(scope, receive, send)


class Upload:
    def __init__(self, services: Services, project_id: str, scope: Scope, receive: Any, send: Any) -> None:
        self.services = services
        self.project_id = project_id
        self.scope = scope
        self.receive = receive
        self.send = send
        self.headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        self.query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        # Set once receive() has been called: from then on the client may be sending the body.
        self.body_started = False

    async def run(self) -> None:
        rejection = await self._check()
        if rejection is not None:
            status, code, message = rejection
            await self._drain(DRAIN_MAX_BYTES)
            await self._respond(status, {"error": {"code": code, "message": message}})
            return

        svc = self.services
        svc.uploads_in_progress.add(self.project_id)
        try:
            await self._receive_file()
        finally:
            svc.uploads_in_progress.discard(self.project_id)

    async def _check(self) -> tuple[int, str, str] | None:
        """Return (status, code, message) when the upload must be rejected before reading the body."""
        token = _bearer(self.headers.get("authorization", ""))
        if token is None:
            return 401, "unauthorized", "missing token: send the header Authorization: Bearer TOKEN"
        role = self.services.store.authenticate(self.project_id, token)
        if role is None:
            return 403, "forbidden", "the token is not valid for this resource"
        if role != Role.EDITOR:
            return 403, "forbidden", "a viewer token can only watch; use the editor link to act"
        project = await self.services.store.get_project(self.project_id)
        if project.source_kind is not None or self.project_id in self.services.uploads_in_progress:
            return 409, "conflict", "the project already has a source; create a new project for another video"
        declared = self.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return 400, "bad_request", "invalid Content-Length header"
            if int(declared) > self.services.config.max_upload_bytes:
                return 413, "request_entity_too_large", self._too_large_message()
        return None

    def _too_large_message(self) -> str:
        limit = self.services.config.max_upload_bytes
        return (
            f"upload larger than the limit of {limit} bytes ({limit / 1024**2:.0f} MiB); "
            "the server's VIRALSPLIT_MAX_UPLOAD_BYTES setting raises it"
        )

    async def _receive_file(self) -> None:
        svc = self.services
        limit = svc.config.max_upload_bytes
        name = safe_name((self.query.get("name") or ["upload"])[0], default="upload")
        temp = await asyncio.to_thread(svc.storage.new_upload_file, self.project_id)
        started = time.monotonic()
        size = 0
        completed = False
        too_large = False
        try:
            async with aiofiles.open(temp, "wb") as file:
                buffer = bytearray()
                self.body_started = True
                while True:
                    message = await self.receive()
                    if message["type"] == "http.disconnect":
                        log.info("upload to project %s stopped by the client after %d bytes", self.project_id, size)
                        return
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    svc.upload_bytes_total += len(chunk)
                    if size > limit:
                        too_large = True
                        break
                    buffer += chunk
                    more = message.get("more_body", False)
                    if len(buffer) >= WRITE_BUFFER_BYTES or (not more and buffer):
                        await file.write(buffer)
                        buffer.clear()
                    if not more:
                        break
                if not too_large:
                    await file.flush()
                    await asyncio.to_thread(os.fsync, file.fileno())
            if too_large:
                await aiofiles.os.remove(temp)
                log.info("upload to project %s rejected: over %d bytes", self.project_id, limit)
                await self._drain(DRAIN_MAX_BYTES)
                await self._respond(413, {"error": {"code": "request_entity_too_large", "message": self._too_large_message()}})
                return
            if size == 0:
                await aiofiles.os.remove(temp)
                await self._respond(422, {"error": {"code": "invalid_input", "message": f"{name}: the upload is empty"}})
                return
            source = await asyncio.to_thread(svc.storage.commit_source, self.project_id, temp, name)
            completed = True
        finally:
            if not completed:
                await asyncio.to_thread(svc.storage.remove_file, temp)

        await svc.store.set_source(
            self.project_id, kind="upload", name=name, size=size, path=svc.storage.relative(source)
        )
        elapsed = time.monotonic() - started
        log.info("upload to project %s complete: %d bytes in %.1f s", self.project_id, size, elapsed)
        uploader = " ".join(self.headers.get(NAME_HEADER.lower(), "").split())[:MAX_NAME_LENGTH] or "an editor"
        await svc.scheduler.record_activity(
            self.project_id, Actor(uploader, Role.EDITOR), "upload", f"{uploader} uploaded {name} ({_human_size(size)})"
        )
        project = await svc.store.get_project(self.project_id)
        job_id = await svc.scheduler.submit_ingest(self.project_id, project.priority)
        await self._respond(202, {"project_id": self.project_id, "ingest_job_id": job_id, "size_bytes": size})

    async def _drain(self, max_bytes: int) -> None:
        """Read and discard the rest of the body, up to `max_bytes` and DRAIN_TIMEOUT_S."""
        if self.headers.get("expect", "").lower() == "100-continue" and not self.body_started:
            # The client waits for "100 Continue" before it sends the body, so there is
            # nothing to discard and the rejection can go out at once.
            return
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        drained = 0
        try:
            while drained <= max_bytes:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                message = await asyncio.wait_for(self.receive(), remaining)
                if message["type"] != "http.request":
                    return
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return
        except asyncio.TimeoutError:
            return

    async def _respond(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode("utf-8")
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode("ascii")),
            (b"cache-control", b"no-store"),
        ]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": payload, "more_body": False})


def _bearer(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _human_size(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return f"{size} bytes"
