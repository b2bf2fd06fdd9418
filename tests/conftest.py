"""Fixtures shared by every test folder: generated media and fast encoder settings."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mediagen import MediaFactory  # noqa: E402
from servers import ServerFactory  # noqa: E402

# Every test encode uses libx264's fastest preset unless a test sets another one.
os.environ.setdefault("VIRALSPLIT_X264_PRESET", "ultrafast")


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaFactory:
    """Media generated once per test session; folders may override it with their own."""
    return MediaFactory(tmp_path_factory.mktemp("media"))


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start `viralsplit serve` processes on demand; every one still running is stopped afterwards."""
    factory = ServerFactory(tmp_path)
    yield factory
    factory.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the browser tests last.

    Playwright's sync API keeps an event loop running in the main thread until its session
    fixture ends, and pytest-asyncio cannot start a loop while one runs, so every asyncio test
    must come before the first browser test.
    """
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)
