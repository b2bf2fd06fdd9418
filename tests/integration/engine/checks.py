"""One checker for every rendered file: each output rule is its own assert.

It reads ffprobe's JSON and the MP4 atoms itself, independent of the engine's verify step,
so a bug there cannot hide a broken output here.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


AAC_FRAME_S = 1024 / 48000


def ffprobe(path: Path, *extra: str) -> dict[str, Any]:
    command = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", *extra, str(path)]
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def top_level_atoms(path: Path) -> list[str]:
    atoms = []
    with path.open("rb") as file:
        data_size = path.stat().st_size
        offset = 0
        while offset + 8 <= data_size:
            file.seek(offset)
            header = file.read(16)
            size = int.from_bytes(header[:4], "big")
            if size == 1:
                size = int.from_bytes(header[8:16], "big")
            elif size == 0:
                size = data_size - offset
            atoms.append(header[4:8].decode("latin-1"))
            if size < 8:
                break
            offset += size
    return atoms


def check_output(
    path: Path,
    *,
    width: int,
    height: int,
    duration_s: float | None = None,
    frame_s: float | None = None,
    thumbnail: Path | None = None,
) -> dict[str, Any]:
    """Assert every output rule on `path` and return its ffprobe JSON."""
    assert path.is_file(), f"{path} missing"
    assert path.stat().st_size > 0, f"{path} is empty"
    data = ffprobe(path)
    streams = data["streams"]
    kinds = [stream["codec_type"] for stream in streams]
    assert sorted(kinds) == ["audio", "video"], f"{path.name}: streams {kinds}"
    video = next(s for s in streams if s["codec_type"] == "video")
    audio = next(s for s in streams if s["codec_type"] == "audio")

    assert (video["width"], video["height"]) == (width, height), f"{path.name}: size {video['width']}x{video['height']}"
    assert video["width"] % 2 == 0
    assert video["height"] % 2 == 0
    assert video.get("sample_aspect_ratio", "1:1") == "1:1", f"{path.name}: SAR {video.get('sample_aspect_ratio')}"
    assert video["codec_name"] == "h264"
    assert video["profile"] == "High", f"{path.name}: profile {video['profile']}"
    assert video["pix_fmt"] == "yuv420p"
    assert video.get("bits_per_raw_sample", "8") == "8"
    assert video.get("color_primaries") == "bt709"
    assert video.get("color_transfer") == "bt709"
    assert video.get("color_space") == "bt709"
    assert not any("rotation" in item for item in video.get("side_data_list", [])), f"{path.name}: rotation flag"
    assert "rotate" not in video.get("tags", {})
    assert video.get("disposition", {}).get("attached_pic", 0) == 0

    assert audio["codec_name"] == "aac"
    assert audio["channels"] == 2
    assert audio["sample_rate"] == "48000"

    atoms = top_level_atoms(path)
    assert "moov" in atoms
    assert "mdat" in atoms
    assert atoms.index("moov") < atoms.index("mdat"), f"{path.name}: not faststart: {atoms}"

    if duration_s is not None:
        assert frame_s is not None
        video_duration = float(video["duration"])
        assert abs(video_duration - duration_s) <= frame_s + 1e-3, f"{path.name}: video {video_duration} s, planned {duration_s} s"
        # The container may hold one more AAC frame (1024 samples) where a part was cut.
        measured = float(data["format"]["duration"])
        assert abs(measured - duration_s) <= frame_s + AAC_FRAME_S + 1e-3, f"{path.name}: duration {measured} s, planned {duration_s} s"
    if thumbnail is not None:
        assert thumbnail.is_file()
        assert thumbnail.read_bytes()[:3] == b"\xff\xd8\xff", f"{thumbnail.name} is not a JPEG"
    return data
