"""A small HTTP/1.1 server on 127.0.0.1 for ingest tests: routes, hit log, throttling.

    server = await MediaServer.start()
    server.file("/clip.mp4", path, content_type="video/mp4")
    server.html("/page.html", '<video src="/clip.mp4"></video>')
    ...
    assert server.hits == ["/page.html", "/clip.mp4"]
    await server.close()

Each response is one request per connection (`Connection: close`), which is what yt-dlp's
urllib handler asks for. The server only answers; everything it sends is bounded in size and
time, so a test that forgets to close it still ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

Handler = Callable[[asyncio.StreamWriter], Awaitable[None]]


@dataclasses.dataclass
class Hit:
    method: str
    path: str


class MediaServer:
    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.hit_log: list[Hit] = []
        # Body bytes written per path, to show what a client read before it gave up.
        self.body_bytes: dict[str, int] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def start(cls) -> MediaServer:
        server = cls()
        server._server = await asyncio.start_server(server._handle, host="127.0.0.1", port=0)
        return server

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def allowlist_entry(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def hits(self) -> list[str]:
        return [hit.path for hit in self.hit_log]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # Routes.

    def file(self, path: str, source: Path, content_type: str = "video/mp4", *, chunk_bytes: int = 0, chunk_delay_s: float = 0.0) -> None:
        """Serve a file with its Content-Length; with chunk_delay_s, throttled chunk by chunk."""
        data = source.read_bytes()

        async def handler(writer: asyncio.StreamWriter) -> None:
            await self._send_head(writer, 200, "OK", {"Content-Type": content_type, "Content-Length": str(len(data))})
            size = chunk_bytes or len(data)
            for start in range(0, len(data), size):
                await self._send_body(writer, path, data[start : start + size])
                if chunk_delay_s:
                    await asyncio.sleep(chunk_delay_s)

        self.routes[path] = handler

    def directory(self, prefix: str, folder: Path) -> None:
        """Serve every file in folder under prefix, typed by suffix (HLS and DASH output)."""
        types = {".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t", ".mpd": "application/dash+xml", ".m4s": "video/iso.segment"}
        for source in sorted(folder.iterdir()):
            self.file(f"{prefix}/{source.name}", source, types.get(source.suffix, "application/octet-stream"))

    def html(self, path: str, body: str) -> None:
        self.bytes(path, body.encode(), "text/html; charset=utf-8")

    def bytes(self, path: str, body: bytes, content_type: str) -> None:
        async def handler(writer: asyncio.StreamWriter) -> None:
            await self._send_head(writer, 200, "OK", {"Content-Type": content_type, "Content-Length": str(len(body))})
            await self._send_body(writer, path, body)

        self.routes[path] = handler

    def error(self, path: str, status: int, phrase: str) -> None:
        body = f"{phrase}\n".encode()

        async def handler(writer: asyncio.StreamWriter) -> None:
            await self._send_head(writer, status, phrase, {"Content-Type": "text/plain", "Content-Length": str(len(body))})
            await self._send_body(writer, path, body)

        self.routes[path] = handler

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        async def handler(writer: asyncio.StreamWriter) -> None:
            await self._send_head(writer, status, "Found", {"Location": location, "Content-Length": "0"})

        self.routes[path] = handler

    def announce_then_stall(self, path: str, content_length: int, stall_s: float = 30.0) -> None:
        """Send video headers announcing content_length bytes, then no body for stall_s."""

        async def handler(writer: asyncio.StreamWriter) -> None:
            await self._send_head(writer, 200, "OK", {"Content-Type": "video/mp4", "Content-Length": str(content_length)})
            await asyncio.sleep(stall_s)

        self.routes[path] = handler

    def endless(self, path: str, max_bytes: int, chunk_bytes: int = 64 * 1024) -> None:
        """Stream a video of unknown length (no Content-Length), stopping after max_bytes."""

        async def handler(writer: asyncio.StreamWriter) -> None:
            await self._send_head(writer, 200, "OK", {"Content-Type": "video/mp4"})
            sent = 0
            while sent < max_bytes:
                await self._send_body(writer, path, b"\0" * chunk_bytes)
                sent += chunk_bytes
                await asyncio.sleep(0.005)

        self.routes[path] = handler

    def silent(self, path: str, stall_s: float = 30.0) -> None:
        """Accept the request and send nothing for stall_s."""

        async def handler(writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(stall_s)

        self.routes[path] = handler

    # Connection handling.

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            path = target.split("?", 1)[0]
            if path.startswith("http://"):
                path = "/" + path.split("/", 3)[-1]
            self.hit_log.append(Hit(method, path))
            handler = self.routes.get(path)
            if handler is None:
                body = b"not found\n"
                await self._send_head(writer, 404, "Not Found", {"Content-Type": "text/plain", "Content-Length": str(len(body))})
                writer.write(body)
            else:
                await handler(writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    @staticmethod
    async def _send_head(writer: asyncio.StreamWriter, status: int, phrase: str, headers: dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {status} {phrase}", *(f"{name}: {value}" for name, value in headers.items()), "Connection: close"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()

    async def _send_body(self, writer: asyncio.StreamWriter, path: str, chunk: bytes) -> None:
        writer.write(chunk)
        await writer.drain()
        self.body_bytes[path] = self.body_bytes.get(path, 0) + len(chunk)


class ThreadedMediaServer:
    """A MediaServer on its own event loop thread, for tests that block (httpx, subprocesses)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: MediaServer = self.call(MediaServer.start())

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def close(self) -> None:
        self.call(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
