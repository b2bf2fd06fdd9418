"""Phone footage stored sideways with a display rotation comes out upright."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from checks import ffprobe
from conftest import check_all, run_split
from mediagen import MediaFactory, VideoSpec


def ssim(first: Path, second: Path, *, second_args: tuple[str, ...] = (), second_filter: str = "null") -> float:
    """SSIM of the first frames of two images or videos, both scaled to 540x960 grey."""
    result = subprocess.run(
        ["ffmpeg", "-v", "info", "-i", str(first), *second_args, "-i", str(second), "-filter_complex",
         f"[0:v]scale=540:960,format=gray[a];[1:v]{second_filter},scale=540:960,format=gray[b];[a][b]ssim",
         "-frames:v", "1", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )
    return float(re.search(r"All:([0-9.]+)", result.stderr).group(1))


def test_rotated_phone_clip_upright(media: MediaFactory, out_dir: Path, tmp_path: Path) -> None:
    source = media.video(VideoSpec(width=1920, height=1080, duration_s=1.0, fps=5, rotation=90), name="phone.mp4")
    stream = ffprobe(source)["streams"][0]
    assert (stream["width"], stream["height"]) == (1920, 1080)
    assert any("rotation" in item for item in stream.get("side_data_list", []))

    # The reference is what a player shows: ffmpeg applying the display matrix.
    upright = tmp_path / "upright.png"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(source), "-frames:v", "1", str(upright)], check=True)
    assert ffprobe(upright)["streams"][0]["height"] == 1920

    run = run_split(source, "--platform", "tiktok", "--out", str(out_dir), "--json")
    outputs = run.outputs
    check_all(outputs, duration_s=1.0)
    output = Path(outputs[0]["path"])
    assert ssim(output, upright) >= 0.9
    # Controls: upside down, or the stored frame stretched to portrait, would not match.
    assert ssim(output, upright, second_filter="hflip,vflip") < 0.8
    assert ssim(output, source, second_args=("-noautorotate",)) < 0.8
