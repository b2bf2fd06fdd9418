"""Check a rendered file against the output rules with ffprobe before it counts as an output.

Rules: the exact preset size with square pixels, H.264 High in 8-bit yuv420p with BT.709
tags and no rotation, AAC stereo at 48 kHz, exactly those two streams, the moov atom before
the media data (+faststart), a non-empty file, and a duration within one frame of the plan.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from viralsplit.errors import VerifyError
from viralsplit.media.ffmpeg import run_checked

BT709 = "bt709"
AAC_FRAME_S = 1024 / 48000


@dataclasses.dataclass(frozen=True)
class Expected:
    width: int
    height: int
    # Planned duration in seconds; None skips the duration check.
    duration_s: float | None
    # Allowed difference from `duration_s`, normally one frame.
    tolerance_s: float


@dataclasses.dataclass(frozen=True)
class Measured:
    duration_s: float
    size_bytes: int


async def probe_output(path: Path) -> dict[str, Any]:
    result = await run_checked(
        ["ffprobe", "-hide_banner", "-v", "error", "-protocol_whitelist", "file",
         "-print_format", "json", "-show_format", "-show_streams", "file:" + str(path)],
        context=f"{path.name}: check failed",
    )
    return json.loads(result.stdout)


async def verify_output(path: Path, expected: Expected, name: str | None = None) -> Measured:
    """Probe `path` and raise VerifyError naming the output (`name`, default the file name) and every broken rule."""
    name = name or path.name
    size = path.stat().st_size if path.exists() else 0
    if size == 0:
        raise VerifyError(f"{name}: output check failed: the file is missing or empty")
    data = await probe_output(path)
    problems = check_probe(data, expected)
    if not moov_before_mdat(path):
        problems.append("the moov atom is not before the media data (+faststart missing)")
    if problems:
        raise VerifyError(f"{name}: output check failed: {'; '.join(problems)}")
    return Measured(duration_s=float(data["format"]["duration"]), size_bytes=size)


def check_probe(data: dict[str, Any], expected: Expected) -> list[str]:
    """List every output rule that ffprobe's JSON for one file breaks; empty when it conforms."""
    problems: list[str] = []
    streams = data.get("streams") or []
    videos = [s for s in streams if s.get("codec_type") == "video"]
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    if len(videos) != 1 or len(audios) != 1 or len(streams) != 2:
        kinds = ", ".join(s.get("codec_type", "?") for s in streams)
        problems.append(f"expected one video and one audio stream, found: {kinds or 'none'}")
    if videos:
        problems += _check_video(videos[0], expected)
    if audios:
        problems += _check_audio(audios[0])
    duration = _float(data.get("format", {}).get("duration"))
    video_duration = _float(videos[0].get("duration")) if videos else None
    if duration is None or video_duration is None:
        problems.append("duration unknown")
    elif expected.duration_s is not None:
        # The video must match the plan within one frame; the file as a whole may also hold
        # up to one more AAC frame of audio (1024 samples at 48 kHz), where a cut falls.
        if abs(video_duration - expected.duration_s) > expected.tolerance_s + 1e-3:
            problems.append(f"video duration {video_duration:.3f} s, planned {expected.duration_s:.3f} s")
        if abs(duration - expected.duration_s) > expected.tolerance_s + AAC_FRAME_S + 1e-3:
            problems.append(f"duration {duration:.3f} s, planned {expected.duration_s:.3f} s")
    return problems


def _check_video(video: dict[str, Any], expected: Expected) -> list[str]:
    problems = []
    size = (video.get("width"), video.get("height"))
    if size != (expected.width, expected.height):
        problems.append(f"size {size[0]}x{size[1]}, expected {expected.width}x{expected.height}")
    if video.get("codec_name") != "h264" or video.get("profile") != "High":
        problems.append(f"video codec {video.get('codec_name')} {video.get('profile')}, expected h264 High")
    if video.get("pix_fmt") != "yuv420p":
        problems.append(f"pixel format {video.get('pix_fmt')}, expected yuv420p")
    if video.get("sample_aspect_ratio", "1:1") not in ("1:1", "0:1"):
        problems.append(f"sample aspect ratio {video.get('sample_aspect_ratio')}, expected 1:1")
    for key in ("color_primaries", "color_transfer", "color_space"):
        if video.get(key) != BT709:
            problems.append(f"{key} {video.get(key)}, expected {BT709}")
    rotated = any("rotation" in item for item in video.get("side_data_list") or [])
    if rotated or (video.get("tags") or {}).get("rotate"):
        problems.append("a rotation flag is set")
    return problems


def _check_audio(audio: dict[str, Any]) -> list[str]:
    problems = []
    if audio.get("codec_name") != "aac":
        problems.append(f"audio codec {audio.get('codec_name')}, expected aac")
    if audio.get("channels") != 2:
        problems.append(f"{audio.get('channels')} audio channels, expected 2")
    if str(audio.get("sample_rate")) != "48000":
        problems.append(f"audio sample rate {audio.get('sample_rate')}, expected 48000")
    return problems


def moov_before_mdat(path: Path) -> bool:
    """True when the top-level moov atom comes before mdat, so playback can start early."""
    with path.open("rb") as file:
        offset = 0
        end = path.stat().st_size
        while offset + 8 <= end:
            file.seek(offset)
            header = file.read(16)
            size = int.from_bytes(header[:4], "big")
            kind = header[4:8]
            if size == 1:
                size = int.from_bytes(header[8:16], "big")
            elif size == 0:
                size = end - offset
            if kind == b"moov":
                return True
            if kind == b"mdat" or size < 8:
                return False
            offset += size
    return False


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
