"""Fixtures for realtime tests: a real server subprocess, projects with media, socket peers.

Peers use the `websockets` library directly (not viralsplit.client), so these tests check the
wire protocol as any client would see it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mediagen import MediaFactory, VideoSpec  # noqa: E402
from servers import ServerFactory, ServerProcess  # noqa: E402

# Short media keeps encodes cheap; SLOW_ENV makes a render last long enough to act on it.
QUICK_VIDEO = VideoSpec(width=320, height=240, duration_s=2.0, fps=10)
SLOW_VIDEO = VideoSpec(width=640, height=360, duration_s=8.0, fps=15)
SLOW_ENV = {"VIRALSPLIT_X264_PRESET": "veryslow"}


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaFactory:
    return MediaFactory(tmp_path_factory.mktemp("realtime-media"))


@pytest.fixture
def server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory.start()


class Project:
    def __init__(self, server: ServerProcess, data: dict[str, Any]) -> None:
        self.server = server
        self.id: str = data["id"]
        self.editor: str = data["editor_token"]
        self.viewer: str = data["viewer_token"]

    def upload(self, path: Path) -> dict[str, Any]:
        response = httpx.put(
            f"{self.server.url}/api/projects/{self.id}/source",
            params={"name": path.name},
            content=path.read_bytes(),
            headers={"Authorization": f"Bearer {self.editor}"},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        return response.json()


def create_project(server: ServerProcess, platforms: list[str]) -> Project:
    response = httpx.post(f"{server.url}/api/projects", json={"title": "clip", "platforms": platforms}, timeout=10)
    assert response.status_code == 201, response.text
    return Project(server, response.json())


def ws_url(server: ServerProcess) -> str:
    return server.url.replace("http://", "ws://") + "/api/ws"


class Peer:
    """One socket; a reader task records every frame so tests can wait for what they need."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: list[Any] = []
        self.raw: list[bytes] = []
        self.changed = asyncio.Event()
        self.close_code: int | None = None
        self.reader = asyncio.create_task(self._read())
        self._ids = iter(range(100, 10**9))

    @classmethod
    async def open(cls, server: ServerProcess, name: str = "peer", tokens: list[str] | None = None, **connect: Any) -> Peer:
        ws = await websockets.connect(ws_url(server), **connect)
        peer = cls(ws)
        await peer.ws.send(msgpack.packb({"t": "hello", "id": 1, "versions": [1], "name": name, "tokens": tokens or []}))
        await peer.wait_for(lambda f: isinstance(f, dict) and f.get("t") == "welcome")
        return peer

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                self.raw.append(data)
                self.frames.append(msgpack.unpackb(data))
                self.changed.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code or 1006
            self.changed.set()

    async def wait_for(self, predicate: Callable[[Any], bool], timeout: float = 20.0, start: int = 0) -> Any:
        """Return the first frame from index `start` on that matches; raise TimeoutError."""
        async def scan() -> Any:
            index = start
            while True:
                while index < len(self.frames):
                    frame = self.frames[index]
                    index += 1
                    if predicate(frame):
                        return frame
                if self.close_code is not None:
                    raise ConnectionError(f"closed with {self.close_code} before the frame arrived")
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(scan(), timeout)

    async def request(self, frame: dict[str, Any], timeout: float = 20.0) -> dict[str, Any]:
        request_id = next(self._ids)
        start = len(self.frames)
        await self.ws.send(msgpack.packb({**frame, "id": request_id}))
        return await self.wait_for(
            lambda f: isinstance(f, dict) and f.get("t") in ("ack", "error") and f.get("id") == request_id,
            timeout,
            start,
        )

    async def subscribe(self, project: str, **fields: Any) -> dict[str, Any]:
        reply = await self.request({"t": "subscribe", "project": project, **fields})
        assert reply["t"] == "ack", reply
        return reply

    def project_frames(self) -> list[Any]:
        return [f for f in self.frames if _seq(f) is not None]

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.wait_for(self.reader, 5)


def _seq(frame: Any) -> int | None:
    if isinstance(frame, dict):
        return frame.get("seq") if frame.get("t") != "snapshot" else None
    if isinstance(frame, list) and frame and frame[0] in (1, 2):
        return int(frame[2])
    return None


def is_job(state: str, job: str | None = None) -> Callable[[Any], bool]:
    return lambda f: isinstance(f, dict) and f.get("t") == "job" and f["state"] == state and (job is None or f["job"] == job)


def is_type(kind: str) -> Callable[[Any], bool]:
    return lambda f: isinstance(f, dict) and f.get("t") == kind


@pytest.fixture
async def peers() -> AsyncIterator[list[Peer]]:
    """Peers appended here are closed after the test."""
    opened: list[Peer] = []
    yield opened
    for peer in opened:
        if peer.close_code is None:
            await peer.close()


def child_processes(pid: int, name: str = "ffmpeg") -> list[int]:
    """PIDs of the direct children of `pid` whose command name is `name`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                stat = file.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if comm == name and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def process_nice(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as file:
        stat = file.read()
    # Field 19 of /proc/PID/stat is the nice value; fields after the ")" start at field 3.
    return int(stat[stat.rindex(")") + 2 :].split()[16])
