"""Render one rendition: encode once, cut parts by stream copy, verify, thumbnail, publish.

All steps run inside `work_dir`. The source is encoded to the rendition's size with keyframes
forced at every part boundary. The rendition's keyframe times are read, and the segment muxer
cuts each platform's parts from it by stream copy. Every file is checked with ffprobe and gets
one JPEG thumbnail. The results then move into `out_dir` by hard link (or copy) and an atomic
rename.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ffmpeg

from viralsplit.config import Config
from viralsplit.errors import FFmpegError, InputError, VerifyError
from viralsplit.media.ffmpeg import DEFAULT_GRACE_S, run_checked
from viralsplit.media.plan import Part, Rendition, format_number
from viralsplit.media.probe import FORMAT_WHITELIST, MediaInfo
from viralsplit.media.progress import Progress, ProgressParser
from viralsplit.media.verify import Expected, verify_output

log = logging.getLogger(__name__)

_GLOBAL_ARGS = ("-hide_banner", "-nostdin", "-nostats", "-loglevel", "error")
# Thumbnails are a third of the output size.
_THUMBNAIL_SCALE = 3
# An encode counts as cut short by a damaged source when it lacks more than this many seconds
# and contains less than this share of the announced duration; smaller gaps are left to verify.
TRUNCATION_MIN_SHORTFALL_S = 1.0
TRUNCATION_MAX_DECODED_SHARE = 0.9


@dataclasses.dataclass(frozen=True)
class RenderSettings:
    # libx264 -preset.
    x264_preset: str = "veryfast"
    # Seconds between SIGTERM and SIGKILL when a render is cancelled.
    grace_s: float = DEFAULT_GRACE_S

    @classmethod
    def from_config(cls, config: Config) -> RenderSettings:
        return cls(x264_preset=config.x264_preset)


@dataclasses.dataclass(frozen=True)
class RenderedOutput:
    platform: str
    # 1-based part number and the platform's part count.
    part: int
    parts: int
    path: Path
    thumbnail: Path
    width: int
    height: int
    duration_s: float
    size_bytes: int

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["path"] = str(self.path)
        data["thumbnail"] = str(self.thumbnail)
        return data


async def render_rendition(
    source: Path,
    info: MediaInfo,
    rendition: Rendition,
    *,
    work_dir: Path,
    out_dir: Path,
    settings: RenderSettings | Config | None = None,
    on_progress: Callable[[Progress], None] = lambda progress: None,
    on_process: Callable[[int], None] | None = None,
    output_stem: str | None = None,
) -> list[RenderedOutput]:
    """Encode `rendition` of `source` once and return its verified outputs, one per platform part.

    `work_dir` is created (emptied if present) and removed at the end; `out_dir` must be on
    the same filesystem. Outputs are named STEM-PLATFORM.mp4, or STEM-PLATFORM-partKofN.mp4
    when split, with a .jpg thumbnail beside each; STEM defaults to the source name with
    unsafe characters replaced. Progress arrives with stage "render" during the encode and
    "thumbnail" afterwards. On failure or cancellation every file this call created is
    deleted, processes are stopped (see media/ffmpeg.py), and the error is re-raised:
    FFmpegError, VerifyError or CancelledError.
    """
    if isinstance(settings, Config):
        settings = RenderSettings.from_config(settings)
    settings = settings or RenderSettings()
    stem = output_stem or safe_stem(source.stem)
    if work_dir.exists():
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    published: list[Path] = []
    try:
        encoded = work_dir / "rendition.mp4"
        await _encode(source, info, rendition, encoded, settings, on_progress, on_process)
        keyframes, duration, last_video_s = await _keyframes(encoded)
        _check_decoded_length(source, rendition, last_video_s + rendition.frame_s)
        pieces = await _cut_parts(encoded, rendition, keyframes, duration, work_dir, settings, on_process)
        outputs = await _finish(pieces, rendition, stem, work_dir, out_dir, published, settings, on_progress, on_process)
        log.info("rendered %s: %d outputs", rendition.label, len(outputs))
        return outputs
    except BaseException:
        for path in published:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        for leftover in out_dir.glob(".partial-*"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def safe_stem(name: str) -> str:
    """Replace every character but letters, digits, dot, dash and underscore in a file-name stem."""
    cleaned = re.sub(r"[^\w.-]+", "_", name, flags=re.ASCII).strip("._")
    return cleaned[:80] or "video"


def build_encode_command(
    source: Path, info: MediaInfo, rendition: Rendition, output: Path, x264_preset: str
) -> list[str]:
    """Build the ffmpeg argument list that encodes `rendition` to `output`, -progress on stdout."""
    source_input = ffmpeg.input(
        "file:" + str(source.resolve()),
        f=info.demuxer,
        protocol_whitelist="file",
        format_whitelist=FORMAT_WHITELIST,
    )
    picture_index = info.video.index if info.video is not None else info.cover_art.index  # type: ignore[union-attr]
    video = source_input[str(picture_index)]
    if rendition.still:
        # An attached picture is a single frame: repeat it for as long as the audio lasts.
        # The planner rejects stills of unknown length, because -shortest never ends an
        # endless -filter_complex source in ffmpeg 5.1.
        assert rendition.duration_s
        video = (
            video.filter("loop", loop=-1, size=1, start=0)
            .filter("setpts", "N/FRAME_RATE/TB")
            .filter("trim", duration=format_number(rendition.duration_s))
        )
    video = video.filter("fps", rendition.fps)
    if rendition.tone_map:
        video = _tone_map(video)
    video = _fill(video, rendition)
    video = video.filter("setsar", "1").filter("format", "yuv420p")

    if info.audio is not None:
        # async=1 with first_pts=0 fills gaps and a late start with silence, keeping lip sync.
        audio = (
            source_input[str(info.audio.index)]
            .filter("aresample", 48000, **{"async": 1, "first_pts": 0})
            .filter("aformat", sample_fmts="fltp", sample_rates=48000, channel_layouts="stereo")
        )
        if rendition.duration_s:
            # Pad with silence or trim so the audio ends with the video. (-shortest with an
            # endless apad inside -filter_complex never ends in ffmpeg 5.1.)
            audio = audio.filter("apad", whole_dur=format_number(rendition.duration_s)).filter(
                "atrim", end=format_number(rendition.duration_s)
            )
        # NOTE: with an unknown duration the source audio is kept as it is, so it can end
        # before or after the video; the raw streams that lack a duration carry no audio.
    elif rendition.duration_s:
        audio = ffmpeg.input(f"anullsrc=r=48000:cl=stereo:d={format_number(rendition.duration_s)}", f="lavfi")["a"]
    else:
        # Unknown length: silence from a separate input, ended by -shortest with the video.
        audio = ffmpeg.input("anullsrc=r=48000:cl=stereo", f="lavfi")["a"]

    options: dict[str, Any] = {
        "c:v": "libx264",
        "preset": x264_preset,
        "profile:v": "high",
        # ultrafast turns off 8x8 transforms, which would make x264 write Constrained Baseline.
        "x264-params": "8x8dct=1:bframes=0" if _may_be_split(rendition) else "8x8dct=1",
        "crf": rendition.crf,
        "maxrate": f"{rendition.max_video_kbps}k",
        "bufsize": f"{rendition.max_video_kbps * 2}k",
        "pix_fmt": "yuv420p",
        "color_primaries": "bt709",
        "color_trc": "bt709",
        "colorspace": "bt709",
        "color_range": "tv",
        "force_key_frames": rendition.force_key_frames(),
        "c:a": "aac",
        "b:a": f"{rendition.audio_kbps}k",
        "ac": 2,
        "ar": 48000,
        "map_metadata": -1,
        "map_chapters": -1,
        "movflags": "+faststart",
        "write_tmcd": 0,
        "max_muxing_queue_size": 4096,
        "f": "mp4",
    }
    if info.audio is None and not rendition.duration_s:
        options["shortest"] = None
    stream = ffmpeg.output(video, audio, "file:" + str(output.resolve()), **options)
    return stream.global_args(*_GLOBAL_ARGS, "-progress", "pipe:1").overwrite_output().compile()


def _tone_map(video: Any) -> Any:
    # PQ and HLG to SDR BT.709: linearize, tone-map in floating point with Hable, then convert
    # to BT.709 limited range (zimg filters, ffmpeg 5.1).
    return (
        video.filter("zscale", t="linear", npl=100)
        .filter("format", "gbrpf32le")
        .filter("zscale", p="bt709")
        .filter("tonemap", tonemap="hable", desat=0)
        .filter("zscale", t="bt709", m="bt709", r="tv")
    )


def _fill(video: Any, rendition: Rendition) -> Any:
    g = rendition.geometry
    scale_options = {"out_range": "tv"}
    if rendition.convert_matrix:
        scale_options.update(in_color_matrix=rendition.convert_matrix, out_color_matrix="bt709")
    if g.fill == "crop":
        return video.filter("scale", g.cover_width, g.cover_height, **scale_options).filter("crop", g.width, g.height)
    if g.fill == "pad":
        x, y = (g.width - g.fit_width) // 2 // 2 * 2, (g.height - g.fit_height) // 2 // 2 * 2
        return video.filter("scale", g.fit_width, g.fit_height, **scale_options).filter("pad", g.width, g.height, x, y, color="black")
    # blur: the source covering the frame, blurred at a quarter of the size, under the fitted source.
    split = video.filter_multi_output("split")
    small_width, small_height = _even(g.width // 4), _even(g.height // 4)
    radius = max(1, min(20, small_width // 4, small_height // 4))
    background = (
        split[0]
        .filter("scale", _even(g.cover_width // 4), _even(g.cover_height // 4), **scale_options)
        .filter("crop", small_width, small_height)
        .filter("boxblur", luma_radius=radius, luma_power=2)
        .filter("scale", g.width, g.height)
    )
    foreground = split[1].filter("scale", g.fit_width, g.fit_height, **scale_options)
    x, y = (g.width - g.fit_width) // 2 // 2 * 2, (g.height - g.fit_height) // 2 // 2 * 2
    return ffmpeg.overlay(background, foreground, x=x, y=y)


def _even(value: int) -> int:
    return max(2, value // 2 * 2)


async def _encode(
    source: Path,
    info: MediaInfo,
    rendition: Rendition,
    output: Path,
    settings: RenderSettings,
    on_progress: Callable[[Progress], None],
    on_process: Callable[[int], None] | None,
) -> None:
    args = build_encode_command(source, info, rendition, output, settings.x264_preset)
    parser = ProgressParser(rendition.duration_s, stage="render")
    on_progress(Progress(stage="render", fraction=0.0 if rendition.duration_s else None))

    def on_line(line: str) -> None:
        progress = parser.feed(line)
        if progress is not None:
            on_progress(progress)

    await run_checked(
        args, context=f"rendering {rendition.label}", on_stdout_line=on_line,
        on_process=on_process, grace_s=settings.grace_s,
    )


def _check_decoded_length(source: Path, rendition: Rendition, decoded_s: float) -> None:
    """Raise InputError when ffmpeg decoded far less of the source than its header announces.

    That happens with a file cut off after its index was written (an MP4 with the moov atom at
    the front): probing succeeds, and the encode simply stops where the media data ends.
    """
    planned_s = rendition.duration_s
    if not planned_s:
        return
    shortfall_s = planned_s - decoded_s
    if shortfall_s > TRUNCATION_MIN_SHORTFALL_S and decoded_s < planned_s * TRUNCATION_MAX_DECODED_SHARE:
        raise InputError(
            source.name,
            f"the file is damaged or truncated: only {decoded_s:.1f} s of its {planned_s:.1f} s could be "
            "decoded; upload the complete file",
        )


async def _keyframes(path: Path) -> tuple[list[float], float, float]:
    """Keyframe times of the first video stream, the file's duration and the last video frame's time, in seconds."""
    result = await run_checked(
        ["ffprobe", "-hide_banner", "-v", "error", "-protocol_whitelist", "file",
         "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags:format=duration",
         "-of", "compact=p=0:nk=1", "file:" + str(path)],
        context=f"{path.name}: reading keyframes failed",
    )
    keyframes: list[float] = []
    duration = 0.0
    last_video_s = 0.0
    for line in result.stdout.decode().splitlines():
        fields = line.split("|")
        if len(fields) == 2:
            with contextlib.suppress(ValueError):
                time = float(fields[0])
                last_video_s = max(last_video_s, time)
                if "K" in fields[1]:
                    keyframes.append(time)
        elif len(fields) == 1 and fields[0]:
            with contextlib.suppress(ValueError):
                duration = float(fields[0])
    if duration <= 0:
        raise VerifyError(f"{path.name}: output check failed: the encode has no duration")
    return sorted(keyframes), duration, last_video_s


@dataclasses.dataclass(frozen=True)
class _Piece:
    """One part file in the work folder and the platforms that publish it."""

    path: Path
    platforms: tuple[str, ...]
    part: Part
    parts: int
    # Planned duration: from the plan, or from the measured encode when the plan had none.
    planned_s: float
    tolerance_s: float


async def _cut_parts(
    encoded: Path,
    rendition: Rendition,
    keyframes: list[float],
    duration: float,
    work_dir: Path,
    settings: RenderSettings,
    on_process: Callable[[int], None] | None,
) -> list[_Piece]:
    pieces: list[_Piece] = []
    planned_total = rendition.duration_s or duration
    tolerance = rendition.frame_s
    for length in rendition.part_lengths:
        platforms = tuple(p.platform for p in rendition.platform_parts if p.part_length_s == length)
        parts = rendition.parts_for(platforms[0], None if rendition.duration_s else duration)
        if len(parts) == 1:
            pieces.append(_Piece(encoded, platforms, parts[0], 1, planned_total, tolerance))
            continue
        # Each cut lands on the first keyframe at or after the boundary (forced by the encode).
        cuts = [_keyframe_at(keyframes, part.start_s, tolerance) for part in parts[1:]]
        pattern = work_dir / f"part-{length:g}s-%03d.mp4"
        await run_checked(
            ["ffmpeg", *_GLOBAL_ARGS, "-protocol_whitelist", "file", "-i", "file:" + str(encoded),
             "-map", "0", "-c", "copy", "-f", "segment", "-segment_times", ",".join(f"{c:.6f}" for c in cuts),
             "-segment_format", "mp4", "-segment_format_options", "movflags=+faststart",
             "-reset_timestamps", "1", "-y", "file:" + str(pattern)],
            context=f"cutting {rendition.label} into parts", on_process=on_process, grace_s=settings.grace_s,
        )
        for part in parts:
            planned = (part.end_s if part.end_s is not None else planned_total) - part.start_s
            path = Path(str(pattern).replace("%03d", f"{part.index - 1:03d}"))
            pieces.append(_Piece(path, platforms, part, len(parts), planned, tolerance))
    return pieces


def _may_be_split(rendition: Rendition) -> bool:
    """Return whether the encode may be cut into parts, which then needs it without B-frames.

    With B-frames a keyframe's decode time comes before its presentation time, and ffmpeg 5.1's
    segment muxer switches files on the decode time. The audio of the last frames before each
    cut then lands in the next part, and the first part starts late (measured: 0.2 s at 10 fps
    with libx264 -preset veryfast). Without B-frames both times agree and every cut is exact,
    at the cost of a somewhat larger file for the same CRF.
    """
    if not rendition.duration_s:
        return True
    return any(len(entry.parts) > 1 for entry in rendition.platform_parts)


def _keyframe_at(keyframes: list[float], boundary: float, tolerance: float) -> float:
    for time in keyframes:
        if time >= boundary - tolerance / 2:
            return time
    raise FFmpegError("ffmpeg", 0, "", f"no keyframe at or after {boundary:.3f} s in the encode")


async def _finish(
    pieces: list[_Piece],
    rendition: Rendition,
    stem: str,
    work_dir: Path,
    out_dir: Path,
    published: list[Path],
    settings: RenderSettings,
    on_progress: Callable[[Progress], None],
    on_process: Callable[[int], None] | None,
) -> list[RenderedOutput]:
    outputs: list[RenderedOutput] = []
    for number, piece in enumerate(pieces):
        names = [_output_name(stem, platform, piece) for platform in piece.platforms]
        measured = await verify_output(
            piece.path,
            Expected(rendition.width, rendition.height, piece.planned_s, piece.tolerance_s),
            name=", ".join(f"{name}.mp4" for name in names),
        )
        thumbnail = work_dir / f"thumb-{number}.jpg"
        await _thumbnail(piece.path, thumbnail, rendition, measured.duration_s, settings, on_process)
        on_progress(Progress(stage="thumbnail", fraction=(number + 1) / len(pieces)))
        for platform, name in zip(piece.platforms, names):
            video_path = _publish(piece.path, out_dir / f"{name}.mp4", published)
            thumb_path = _publish(thumbnail, out_dir / f"{name}.jpg", published)
            outputs.append(
                RenderedOutput(
                    platform=platform,
                    part=piece.part.index,
                    parts=piece.parts,
                    path=video_path,
                    thumbnail=thumb_path,
                    width=rendition.width,
                    height=rendition.height,
                    duration_s=round(measured.duration_s, 3),
                    size_bytes=measured.size_bytes,
                )
            )
    order = {platform: position for position, platform in enumerate(rendition.platforms)}
    outputs.sort(key=lambda output: (order[output.platform], output.part))
    return outputs


def _output_name(stem: str, platform: str, piece: _Piece) -> str:
    if piece.parts == 1:
        return f"{stem}-{platform}"
    return f"{stem}-{platform}-part{piece.part.index}of{piece.parts}"


async def _thumbnail(
    video: Path,
    output: Path,
    rendition: Rendition,
    duration_s: float,
    settings: RenderSettings,
    on_process: Callable[[int], None] | None,
) -> None:
    # A frame one second in (or halfway through a shorter part) skips fades from black.
    at = min(1.0, duration_s / 2)
    width, height = _even(rendition.width // _THUMBNAIL_SCALE), _even(rendition.height // _THUMBNAIL_SCALE)
    await run_checked(
        ["ffmpeg", *_GLOBAL_ARGS, "-protocol_whitelist", "file", "-ss", f"{at:.3f}", "-i", "file:" + str(video),
         "-map", "0:v:0", "-frames:v", "1", "-vf", f"scale={width}:{height}", "-q:v", "3",
         "-f", "image2", "-c:v", "mjpeg", "-y", "file:" + str(output)],
        context=f"{video.name}: thumbnail failed", on_process=on_process, grace_s=settings.grace_s,
    )
    if not output.exists() or output.stat().st_size == 0:
        raise VerifyError(f"{output.name}: thumbnail is empty")


def _publish(source: Path, target: Path, published: list[Path]) -> Path:
    """Place `source` at `target` by hard link (copy across filesystems) and atomic rename."""
    temporary = target.with_name(f".partial-{target.name}")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copyfile(source, temporary)
    os.replace(temporary, target)
    published.append(target)
    return target
