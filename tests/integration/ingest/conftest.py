from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mediagen import MediaFactory, VideoSpec  # noqa: E402
from mediaserver import MediaServer, ThreadedMediaServer  # noqa: E402


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaFactory:
    return MediaFactory(tmp_path_factory.mktemp("ingest-media"))


@pytest.fixture(scope="session")
def clip(media: MediaFactory) -> Path:
    """A 2-second 320x240 H.264/AAC MP4 at 10 fps."""
    return media.video(VideoSpec(width=320, height=240, duration_s=2.0, fps=10))


@pytest.fixture
async def media_server() -> AsyncIterator[MediaServer]:
    server = await MediaServer.start()
    yield server
    await server.close()


@pytest.fixture
async def other_server() -> AsyncIterator[MediaServer]:
    """A second local server that is never allowlisted; tests check that nothing reached it."""
    server = await MediaServer.start()
    yield server
    await server.close()


@pytest.fixture
def threaded_media_server() -> Iterator[MediaServer]:
    """A MediaServer on its own thread, for tests that block on subprocesses or httpx."""
    threaded = ThreadedMediaServer()
    yield threaded.server
    threaded.close()
