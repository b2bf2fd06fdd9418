"""Helpers for engine tests: run `viralsplit split` as a user would and check what it wrote."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import check_output  # noqa: E402

from viralsplit.media.presets import PRESETS  # noqa: E402

# Seconds one `viralsplit split` run may take in these tests.
SPLIT_TIMEOUT_S = 180


@dataclasses.dataclass
class SplitRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def outputs(self) -> list[dict[str, Any]]:
        assert self.returncode == 0, f"exit {self.returncode}: {self.stderr}"
        return json.loads(self.stdout)["outputs"]


def split_command(source: Path | str, *args: str) -> list[str]:
    return [sys.executable, "-m", "viralsplit", "split", str(source), *args]


def run_split(source: Path | str, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> SplitRun:
    """Run `viralsplit split`; on timeout, SIGTERM lets it stop its own ffmpeg before the test fails."""
    process = subprocess.Popen(
        split_command(source, *args),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env={**os.environ, **(env or {})},
    )
    try:
        stdout, stderr = process.communicate(timeout=SPLIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        raise AssertionError(f"viralsplit split {source} did not finish within {SPLIT_TIMEOUT_S} s") from None
    return SplitRun(process.returncode, stdout, stderr)


def frame_seconds(path: Path) -> float:
    """Duration of one frame of the first video stream of `path`."""
    from checks import ffprobe

    video = next(s for s in ffprobe(path)["streams"] if s["codec_type"] == "video")
    return float(1 / Fraction(video["avg_frame_rate"]))


def check_all(outputs: list[dict[str, Any]], duration_s: float | None) -> None:
    """Check every output of one run against all output rules and the JSON fields."""
    assert outputs, "no outputs"
    for output in outputs:
        assert set(output) == {"platform", "part", "parts", "path", "thumbnail", "width", "height", "duration_s", "size_bytes"}
        preset = PRESETS[output["platform"]]
        assert (output["width"], output["height"]) == (preset.width, preset.height)
        path = Path(output["path"])
        assert output["size_bytes"] == path.stat().st_size
        expected = duration_s if output["parts"] == 1 else None
        check_output(
            path, width=preset.width, height=preset.height, duration_s=expected,
            frame_s=frame_seconds(path), thumbnail=Path(output["thumbnail"]),
        )


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "clips"
