"""`viralsplit split URL` as a user runs it: a subprocess with the allowlist in its environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mediaserver import MediaServer


def run_split(url: str, out_dir: Path, allowlist: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, VIRALSPLIT_X264_PRESET="ultrafast", VIRALSPLIT_URL_ALLOWLIST=allowlist)
    command = [sys.executable, "-m", "viralsplit", "split", url, "--platform", "x", "--out", str(out_dir), "--json"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=180, stdin=subprocess.DEVNULL)


def test_split_url_renders(threaded_media_server: MediaServer, clip: Path, tmp_path: Path) -> None:
    threaded_media_server.file("/clip.mp4", clip)

    result = run_split(f"{threaded_media_server.origin}/clip.mp4", tmp_path / "clips", threaded_media_server.allowlist_entry)

    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout)["outputs"]
    assert [(output["platform"], output["width"], output["height"]) for output in outputs] == [("x", 1280, 720)]
    assert Path(outputs[0]["path"]).is_file()
    assert not list(tmp_path.rglob("*.part"))


def test_split_url_rejected_without_allowlist(threaded_media_server: MediaServer, clip: Path, tmp_path: Path) -> None:
    threaded_media_server.file("/clip.mp4", clip)

    result = run_split(f"{threaded_media_server.origin}/clip.mp4?sig=s3cret", tmp_path / "clips")

    assert result.returncode == 2
    assert "loopback address" in result.stderr
    assert "sig=REDACTED" in result.stderr
    assert "s3cret" not in result.stderr
    assert threaded_media_server.hits == []
    assert not (tmp_path / "clips").exists()
