from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from servers import ServerFactory


def test_serve_answers_healthz(server_factory: ServerFactory) -> None:
    server = server_factory.start()

    response = httpx.get(server.url + "/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_serve_stops_on_sigterm(server_factory: ServerFactory) -> None:
    server = server_factory.start()

    code = server.stop()

    assert code == 0


def test_serve_refuses_without_ffmpeg(tmp_path: Path) -> None:
    # A PATH with only the virtual environment hides Debian's ffmpeg and ffprobe.
    result = subprocess.run(
        [sys.executable, "-m", "viralsplit", "serve", "--port", "0", "--data-dir", str(tmp_path / "data")],
        env={**os.environ, "PATH": str(Path(sys.executable).parent)},
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )

    assert result.returncode == 1
    assert "cannot start: missing: ffmpeg, ffprobe" in result.stderr
    assert "apt-get install ffmpeg" in result.stderr
    assert "listening on" not in result.stderr
