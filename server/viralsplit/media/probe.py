"""Probe a media file with ffprobe into a typed `MediaInfo`, and check the tools themselves.

Only real containers are accepted. Before ffprobe runs, the file's first bytes are checked for
text formats (HLS and other playlists, concat lists, SDP). ffprobe itself then runs with
`-protocol_whitelist file` and a demuxer allowlist (`-format_whitelist`). So a playlist
disguised as a video never makes ffprobe open another file or a connection.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

from viralsplit.errors import FFmpegError, InputError, NoVideoStreamError, ToolMissingError, UnsupportedFormatError
from viralsplit.media.ffmpeg import run_process

# ffprobe's format_name for each accepted container, mapped to the demuxer name that is passed
# to ffmpeg with -f when rendering, so ffmpeg cannot pick a different demuxer.
ALLOWED_FORMATS: dict[str, str] = {
    "mov,mp4,m4a,3gp,3g2,mj2": "mov",
    "matroska,webm": "matroska",
    "avi": "avi",
    "mpegts": "mpegts",
    "mpeg": "mpeg",
    "flv": "flv",
    "asf": "asf",
    "ogg": "ogg",
    "mxf": "mxf",
    "h264": "h264",
    "hevc": "hevc",
    "m4v": "m4v",
    "mp3": "mp3",
    "flac": "flac",
    "wav": "wav",
    "aac": "aac",
}
# The same demuxers as ffprobe's -format_whitelist value.
FORMAT_WHITELIST = ",".join(sorted({name for names in ALLOWED_FORMATS for name in names.split(",")}))

# Transfer characteristics of HDR video: PQ (SMPTE ST 2084) and HLG (ARIB STD-B67).
HDR_TRANSFERS = {"smpte2084": "pq", "arib-std-b67": "hlg"}

# Leading bytes of text formats that make a demuxer open other files or URLs.
_TEXT_SIGNATURES = (b"#EXTM3U", b"ffconcat", b"[playlist]", b"<?xml", b"<smil", b"<MPD", b"v=0\r\n", b"v=0\n")


@dataclasses.dataclass(frozen=True)
class VideoStream:
    index: int
    codec: str
    # Stored frame size in pixels, before rotation and sample aspect ratio are applied.
    width: int
    height: int
    # Clockwise display rotation in degrees: 0, 90, 180 or 270.
    rotation: int
    # Sample (pixel) aspect ratio as "num:den"; "1:1" for square pixels.
    sar: str
    # Frame size as shown: sample aspect ratio applied, then rotation.
    display_width: int
    display_height: int
    # Average frame rate and ffprobe's r_frame_rate, as "num/den"; None when unknown.
    avg_frame_rate: str | None
    real_frame_rate: str | None
    pix_fmt: str | None
    bit_depth: int
    color_transfer: str | None
    color_primaries: str | None
    color_space: str | None
    # "pq" or "hlg" for HDR transfers, else None.
    hdr: str | None
    duration_s: float | None

    @property
    def fps(self) -> Fraction | None:
        """Frame rate: the average rate when known, else ffprobe's r_frame_rate."""
        for text in (self.avg_frame_rate, self.real_frame_rate):
            rate = _parse_fraction(text)
            if rate is not None and 0 < rate <= 1000:
                return rate
        return None


@dataclasses.dataclass(frozen=True)
class AudioStream:
    index: int
    codec: str
    channels: int
    sample_rate: int
    default: bool
    duration_s: float | None


@dataclasses.dataclass(frozen=True)
class CoverArt:
    """A picture stored as an attached_pic stream (album art, an MP4 cover)."""

    index: int
    codec: str
    width: int
    height: int


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    # ffprobe's format_name, e.g. "mov,mp4,m4a,3gp,3g2,mj2".
    format_name: str
    # The demuxer name used with ffmpeg -f, e.g. "mov".
    demuxer: str
    format_long_name: str
    # Container duration in seconds; None when unknown (raw streams).
    duration_s: float | None
    size_bytes: int
    # The main video stream; None when the only picture is cover art.
    video: VideoStream | None
    # The default-flagged audio stream, else the first one; None when there is no audio.
    audio: AudioStream | None
    cover_art: CoverArt | None

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    @property
    def is_still(self) -> bool:
        """True when the output shows the cover art as a still over the audio."""
        return self.video is None and self.cover_art is not None

    @property
    def display_size(self) -> tuple[int, int]:
        if self.video is not None:
            return self.video.display_width, self.video.display_height
        assert self.cover_art is not None
        return self.cover_art.width, self.cover_art.height

    @property
    def video_duration_s(self) -> float | None:
        """Length of the picture that gets rendered: the video stream's, else the container's."""
        if self.video is not None and self.video.duration_s:
            return self.video.duration_s
        if self.is_still and self.audio is not None and self.audio.duration_s:
            return self.audio.duration_s
        return self.duration_s

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MediaInfo:
        fields = dict(data)
        fields["video"] = VideoStream(**data["video"]) if data.get("video") else None
        fields["audio"] = AudioStream(**data["audio"]) if data.get("audio") else None
        fields["cover_art"] = CoverArt(**data["cover_art"]) if data.get("cover_art") else None
        return cls(**fields)


async def check_tools() -> None:
    """Check that ffmpeg and ffprobe exist and that ffmpeg has libx264 and aac.

    Raises ToolMissingError listing everything that is missing and how to install it.
    """
    missing = [tool for tool in ("ffmpeg", "ffprobe") if shutil.which(tool) is None]
    if not missing:
        result = await run_process(["ffmpeg", "-hide_banner", "-nostdin", "-encoders"])
        encoders = result.stdout.decode("utf-8", "replace")
        for encoder in ("libx264", "aac"):
            if not re.search(rf"^\s*\S+\s+{encoder}\s", encoders, re.MULTILINE):
                missing.append(f"the {encoder} encoder in ffmpeg")
    if missing:
        raise ToolMissingError(
            f"missing: {', '.join(missing)}. Install ffmpeg with libx264 "
            "(Debian/Ubuntu: sudo apt-get install ffmpeg; macOS: brew install ffmpeg)"
        )


async def probe(path: Path, *, display_name: str | None = None) -> MediaInfo:
    """Probe `path` and return its MediaInfo.

    Raises UnsupportedFormatError for text files, playlists and containers outside
    ALLOWED_FORMATS; NoVideoStreamError when there is nothing to show; InputError when the file
    is missing, empty or unreadable. Each message starts with `display_name` (default: the
    file name), e.g. "clip.mp4: not a video file: no video stream found".
    """
    source = display_name or path.name
    _check_file(path, source)
    args = [
        "ffprobe", "-hide_banner", "-v", "error",
        "-protocol_whitelist", "file", "-format_whitelist", FORMAT_WHITELIST,
        "-print_format", "json", "-show_format", "-show_streams",
        "file:" + str(path.resolve()),
    ]
    result = await run_process(args)
    if result.returncode != 0:
        raise _probe_error(source, result.stderr_tail)
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise FFmpegError("ffprobe", 0, result.stderr_tail, f"{source}: unreadable ffprobe output") from None
    return parse_probe(data, source)


def parse_probe(data: dict[str, Any], source: str) -> MediaInfo:
    """Turn ffprobe's JSON (-show_format -show_streams) into MediaInfo; raise InputError subclasses."""
    fmt = data.get("format") or {}
    format_name = fmt.get("format_name", "")
    if format_name not in ALLOWED_FORMATS:
        raise UnsupportedFormatError(source, f"unsupported format: {format_name or 'unknown'}")
    streams = data.get("streams") or []
    video, cover = _choose_video(streams)
    audio = _choose_audio(streams)
    if video is None and cover is None:
        if audio is not None:
            raise NoVideoStreamError(source, "not a video file: audio only, with no video stream or cover art")
        raise NoVideoStreamError(source, "not a video file: no video stream found")
    return MediaInfo(
        format_name=format_name,
        demuxer=ALLOWED_FORMATS[format_name],
        format_long_name=fmt.get("format_long_name", ""),
        duration_s=_positive_float(fmt.get("duration")),
        size_bytes=int(fmt.get("size") or 0),
        video=video,
        audio=audio,
        cover_art=cover,
    )


def _check_file(path: Path, source: str) -> None:
    try:
        with path.open("rb") as file:
            head = file.read(4096)
    except FileNotFoundError:
        raise InputError(source, "file not found") from None
    except IsADirectoryError:
        raise InputError(source, "is a folder, not a video file") from None
    except OSError as exc:
        raise InputError(source, f"cannot read the file: {exc.strerror}") from None
    if not head:
        raise NoVideoStreamError(source, "not a video file: the file is empty")
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(_TEXT_SIGNATURES) or b"://" in head and _looks_like_text(head):
        raise UnsupportedFormatError(source, "not a video file: a playlist or list of URLs, which is not accepted")


def _looks_like_text(head: bytes) -> bool:
    printable = sum(1 for byte in head if byte in b"\t\r\n" or 32 <= byte < 127)
    return printable / len(head) > 0.95


def _probe_error(source: str, stderr_tail: str) -> InputError:
    last = stderr_tail.strip().splitlines()[-1] if stderr_tail.strip() else ""
    if "not on whitelist" in stderr_tail:
        return UnsupportedFormatError(source, "not a video file: unsupported format (playlist or other non-media container)")
    if "moov atom not found" in stderr_tail:
        return InputError(source, "not a video file: the MP4 index (moov atom) is missing, so the file is truncated or damaged")
    if "Invalid data found" in stderr_tail:
        return UnsupportedFormatError(source, "not a video file: unrecognized or damaged data")
    return InputError(source, f"not a video file: ffprobe could not read it ({_strip_prefix(last) or 'no details'})")


def _strip_prefix(line: str) -> str:
    # ffprobe prefixes messages with the absolute path or "[demuxer @ 0x...]".
    line = re.sub(r"^\[[^\]]*\]\s*", "", line)
    if ": " in line and line.startswith(("file:", "/")):
        line = line.split(": ", 1)[1]
    return line


def _choose_video(streams: list[dict[str, Any]]) -> tuple[VideoStream | None, CoverArt | None]:
    """Pick the default-flagged video stream, else the first; attached pictures are cover art."""
    candidates: list[dict[str, Any]] = []
    cover: CoverArt | None = None
    for stream in streams:
        if stream.get("codec_type") != "video":
            continue
        width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
        if width <= 0 or height <= 0:
            continue
        if (stream.get("disposition") or {}).get("attached_pic"):
            if cover is None:
                cover = CoverArt(index=stream["index"], codec=stream.get("codec_name", ""), width=width, height=height)
            continue
        candidates.append(stream)
    if not candidates:
        return None, cover
    chosen = next((s for s in candidates if (s.get("disposition") or {}).get("default")), candidates[0])
    return _video_stream(chosen, int(chosen["width"]), int(chosen["height"])), cover


def _video_stream(stream: dict[str, Any], width: int, height: int) -> VideoStream:
    rotation = _rotation(stream)
    sar_text = stream.get("sample_aspect_ratio") or "1:1"
    sar = _parse_fraction(sar_text.replace(":", "/"))
    if sar is None or sar <= 0:
        sar, sar_text = Fraction(1), "1:1"
    display_width, display_height = round(width * sar), height
    if rotation in (90, 270):
        display_width, display_height = display_height, display_width
    pix_fmt = stream.get("pix_fmt")
    transfer = stream.get("color_transfer")
    return VideoStream(
        index=stream["index"],
        codec=stream.get("codec_name", ""),
        width=width,
        height=height,
        rotation=rotation,
        sar=f"{sar.numerator}:{sar.denominator}",
        display_width=display_width,
        display_height=display_height,
        avg_frame_rate=_valid_rate(stream.get("avg_frame_rate")),
        real_frame_rate=_valid_rate(stream.get("r_frame_rate")),
        pix_fmt=pix_fmt,
        bit_depth=_bit_depth(stream, pix_fmt),
        color_transfer=transfer,
        color_primaries=stream.get("color_primaries"),
        color_space=stream.get("color_space"),
        hdr=HDR_TRANSFERS.get(transfer or ""),
        duration_s=_stream_duration(stream),
    )


def _stream_duration(stream: dict[str, Any]) -> float | None:
    """Return the stream's duration, else Matroska's DURATION tag ("HH:MM:SS.nnnnnnnnn")."""
    duration = _positive_float(stream.get("duration"))
    if duration is not None:
        return duration
    tags = {key.upper(): value for key, value in (stream.get("tags") or {}).items()}
    match = re.fullmatch(r"(\d+):(\d{2}):(\d{2}(?:\.\d+)?)", str(tags.get("DURATION", "")).strip())
    if match is None:
        return None
    return _positive_float(int(match.group(1)) * 3600 + int(match.group(2)) * 60 + float(match.group(3)))


def _rotation(stream: dict[str, Any]) -> int:
    """Clockwise display rotation, from the display matrix side data or the legacy rotate tag."""
    for side_data in stream.get("side_data_list") or []:
        if "rotation" in side_data:
            # ffprobe prints the matrix angle counterclockwise, as av_display_rotation_get returns it.
            return _normalize_rotation(-float(side_data["rotation"]))
    tag = (stream.get("tags") or {}).get("rotate")
    if tag is not None:
        try:
            return _normalize_rotation(float(tag))
        except ValueError:
            return 0
    return 0


def _normalize_rotation(degrees: float) -> int:
    if not math.isfinite(degrees):
        return 0
    return int(round(degrees / 90.0)) * 90 % 360


def _bit_depth(stream: dict[str, Any], pix_fmt: str | None) -> int:
    raw = stream.get("bits_per_raw_sample")
    if raw and str(raw).isdigit():
        return int(raw)
    match = re.search(r"p(9|10|12|14|16)(le|be)$", pix_fmt or "")
    return int(match.group(1)) if match else 8


def _choose_audio(streams: list[dict[str, Any]]) -> AudioStream | None:
    audio = [stream for stream in streams if stream.get("codec_type") == "audio" and int(stream.get("channels") or 0) > 0]
    if not audio:
        return None
    chosen = next((s for s in audio if (s.get("disposition") or {}).get("default")), audio[0])
    return AudioStream(
        index=chosen["index"],
        codec=chosen.get("codec_name", ""),
        channels=int(chosen.get("channels") or 0),
        sample_rate=int(chosen.get("sample_rate") or 0),
        default=bool((chosen.get("disposition") or {}).get("default")),
        duration_s=_stream_duration(chosen),
    )


def _parse_fraction(text: str | None) -> Fraction | None:
    if not text:
        return None
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    return value


def _valid_rate(text: str | None) -> str | None:
    rate = _parse_fraction(text)
    if rate is None or rate <= 0:
        return None
    return f"{rate.numerator}/{rate.denominator}"


def _positive_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None
