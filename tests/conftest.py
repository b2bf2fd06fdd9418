"""Fixtures shared by every test folder: generated media and fast encoder settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mediagen import MediaFactory  # noqa: E402

# Every test encode uses libx264's fastest preset unless a test sets another one.
os.environ.setdefault("VIRALSPLIT_X264_PRESET", "ultrafast")


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaFactory:
    """Media generated once per test session; folders may override it with their own."""
    return MediaFactory(tmp_path_factory.mktemp("media"))
