"""Plan renditions and parts from MediaInfo, platforms and options. Pure: no I/O.

Platforms whose presets share size, frame-rate cap and quality class share one rendition, so
TikTok, Reels and Shorts together cost one encode. Each platform gets parts no longer than
its part length: part k starts at (k - 1) * length. The encoder forces a keyframe at every
boundary that any platform on the rendition needs, and the parts are then cut from the
rendition by stream copy, so they are exact and contiguous.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from viralsplit.errors import InputError
from viralsplit.media.presets import DEFAULT_PLATFORMS, get_preset
from viralsplit.media.probe import MediaInfo

FILL_MODES = ("crop", "blur", "pad")
# Part length used when the options give none, unless the platform allows less.
DEFAULT_PART_LENGTH_S = 60.0
MIN_PART_LENGTH_S = 1.0
# Frame rate of a cover picture shown over audio.
STILL_FPS = Fraction(30)


@dataclasses.dataclass(frozen=True)
class PlanOptions:
    fill: str = "crop"
    # Maximum part length in seconds; None means the smaller of 60 s and the platform's limit.
    part_length_s: float | None = None


@dataclasses.dataclass(frozen=True)
class Part:
    # 1-based position within the platform's parts.
    index: int
    start_s: float
    # None when the source duration is unknown and this is the last part.
    end_s: float | None

    @property
    def duration_s(self) -> float | None:
        return None if self.end_s is None else self.end_s - self.start_s


@dataclasses.dataclass(frozen=True)
class PlatformParts:
    platform: str
    part_length_s: float
    # Empty when the duration is unknown; the renderer splits once the rendition is measured.
    parts: tuple[Part, ...]


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Scaled sizes that map the displayed source frame onto the output frame (even pixels)."""

    fill: str
    width: int
    height: int
    # The source scaled to cover the output (crop, and the blurred background of blur).
    cover_width: int
    cover_height: int
    # The source scaled to fit inside the output (pad, and the foreground of blur).
    fit_width: int
    fit_height: int


@dataclasses.dataclass(frozen=True)
class Rendition:
    # Stable identifier, e.g. "1080x1920-30fps-crf21-max8000k-a128k-crop".
    key: str
    # "TikTok, Reels and Shorts 1080x1920"
    label: str
    platforms: tuple[str, ...]
    width: int
    height: int
    # Output frame rate as "num/den".
    fps: str
    crf: int
    max_video_kbps: int
    audio_kbps: int
    fill: str
    geometry: Geometry
    # Planned output duration; None when the source duration is unknown.
    duration_s: float | None
    # Convert PQ or HLG to SDR BT.709.
    tone_map: bool
    # Show the cover art as a still picture over the audio.
    still: bool
    platform_parts: tuple[PlatformParts, ...]
    # swscale name of the source's YUV matrix when it is not BT.709 and must be converted
    # ("bt601", "bt470", "smpte170m", "smpte240m", "fcc", "bt2020"); None to keep it as is.
    convert_matrix: str | None = None

    @property
    def frame_rate(self) -> Fraction:
        return Fraction(self.fps)

    @property
    def frame_s(self) -> float:
        return float(1 / self.frame_rate)

    @property
    def part_lengths(self) -> tuple[float, ...]:
        """Distinct part lengths on this rendition, shortest first."""
        return tuple(sorted({entry.part_length_s for entry in self.platform_parts}))

    def parts_for(self, platform: str, duration_s: float | None = None) -> tuple[Part, ...]:
        """Parts of `platform`, from the plan or, when given, from a measured duration."""
        entry = next(item for item in self.platform_parts if item.platform == platform)
        if duration_s is None:
            return entry.parts
        return split_parts(duration_s, entry.part_length_s, self.frame_s)

    def force_key_frames(self) -> str:
        """Build the ffmpeg -force_key_frames value: a keyframe at each multiple of each part length.

        The first frame is always forced because prev_forced_t is NaN there. After that, a
        frame is forced when its time reaches the next multiple of any part length.
        """
        terms = ["isnan(prev_forced_t)"]
        for length in self.part_lengths:
            text = format_number(length)
            terms.append(f"gte(t,{text}*(floor(prev_forced_t/{text})+1))")
        return "expr:" + "+".join(terms)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rendition:
        fields = dict(data)
        fields["platforms"] = tuple(data["platforms"])
        fields["geometry"] = Geometry(**data["geometry"])
        fields["platform_parts"] = tuple(
            PlatformParts(
                platform=item["platform"],
                part_length_s=item["part_length_s"],
                parts=tuple(Part(**part) for part in item["parts"]),
            )
            for item in data["platform_parts"]
        )
        return cls(**fields)


@dataclasses.dataclass(frozen=True)
class Plan:
    renditions: tuple[Rendition, ...]

    def to_json(self) -> dict[str, Any]:
        return {"renditions": [rendition.to_json() for rendition in self.renditions]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(tuple(Rendition.from_json(item) for item in data["renditions"]))


def plan_renditions(info: MediaInfo, platforms: Sequence[str], options: PlanOptions) -> Plan:
    """Group `platforms` into distinct renditions of `info` and list each platform's parts.

    Raises InputError for an unknown platform, an unknown fill mode or a part length below
    MIN_PART_LENGTH_S. Platforms keep the order given; duplicates are ignored.
    """
    if options.fill not in FILL_MODES:
        raise InputError("--fill", f"unknown fill mode {options.fill!r}: use one of {', '.join(FILL_MODES)}")
    if options.part_length_s is not None and not options.part_length_s >= MIN_PART_LENGTH_S:
        raise InputError("--part-length", f"invalid part length {options.part_length_s:g}: use {MIN_PART_LENGTH_S:g} s or more")
    if info.is_still and not info.video_duration_s:
        raise InputError(info.format_name, "cannot show cover art over audio of unknown length")
    names = list(dict.fromkeys(platforms or DEFAULT_PLATFORMS))
    presets = [get_preset(name) for name in names]

    groups: dict[tuple[Any, ...], list[Any]] = {}
    for preset in presets:
        fps = output_frame_rate(info, preset.max_fps)
        groups.setdefault((preset.width, preset.height, fps, preset.quality_class), []).append(preset)

    duration = info.video_duration_s
    renditions = []
    for (width, height, fps, quality), members in groups.items():
        frame_s = float(1 / fps)
        platform_parts = []
        for preset in members:
            length = min(options.part_length_s or DEFAULT_PART_LENGTH_S, preset.max_clip_s)
            parts = split_parts(duration, length, frame_s) if duration else ()
            platform_parts.append(PlatformParts(preset.name, length, parts))
        first = members[0]
        renditions.append(
            Rendition(
                key=f"{width}x{height}-{format_number(float(fps))}fps-{quality}-{options.fill}",
                label=f"{_join_labels([p.label for p in members])} {width}x{height}",
                platforms=tuple(p.name for p in members),
                width=width,
                height=height,
                fps=f"{fps.numerator}/{fps.denominator}",
                crf=first.crf,
                max_video_kbps=first.max_video_kbps,
                audio_kbps=first.audio_kbps,
                fill=options.fill,
                geometry=compute_geometry(info.display_size, width, height, options.fill),
                duration_s=duration,
                tone_map=info.video is not None and info.video.hdr is not None,
                still=info.is_still,
                platform_parts=tuple(platform_parts),
                convert_matrix=None if info.video is not None and info.video.hdr else source_matrix(info),
            )
        )
    return Plan(tuple(renditions))


def output_frame_rate(info: MediaInfo, max_fps: int) -> Fraction:
    """Return the source rate divided by the smallest integer that brings it to `max_fps` or below.

    Dividing by an integer keeps motion even (60 -> 30, 50 -> 25, 59.94 -> 29.97). A still
    picture or an unknown rate gets STILL_FPS or `max_fps`, whichever is lower.
    """
    source = info.video.fps if info.video is not None else None
    if source is None:
        return min(STILL_FPS, Fraction(max_fps))
    divisor = math.ceil(source / max_fps)
    return source / max(divisor, 1)


# ffprobe color_space names mapped to swscale's in_color_matrix names.
_SWSCALE_MATRICES = {
    "smpte170m": "smpte170m",
    "bt470bg": "bt470",
    "smpte240m": "smpte240m",
    "fcc": "fcc",
    "bt2020nc": "bt2020",
    "bt2020c": "bt2020",
}


def source_matrix(info: MediaInfo) -> str | None:
    """Return the swscale matrix to convert from, or None when the source is already BT.709.

    Untagged video smaller than 720 lines is taken as BT.601 and larger video as BT.709, the
    usual assumption of players. Converting only when needed matters, because a matrix
    conversion in swscale added roughly a sixth to the CPU time of a veryfast 1080p encode
    (an estimate from a few runs on a loaded 2-core machine).
    """
    space = info.video.color_space if info.video is not None else None
    if space in _SWSCALE_MATRICES:
        return _SWSCALE_MATRICES[space]
    if space is None or space in ("unknown", "reserved"):
        if info.video is None:
            # Cover art is JPEG or PNG: JPEG's YCbCr is BT.601, and PNG decodes to RGB.
            return "bt601"
        return "bt601" if min(info.video.width, info.video.height) < 720 else None
    return None


def split_parts(duration_s: float, length_s: float, frame_s: float) -> tuple[Part, ...]:
    """Parts of at most `length_s` covering `duration_s`; part k starts at (k - 1) * length_s.

    A remainder shorter than one frame is not a part of its own: the last part absorbs it.
    """
    count = max(1, math.ceil((duration_s - frame_s) / length_s))
    parts = []
    for index in range(count):
        start = index * length_s
        end = duration_s if index == count - 1 else (index + 1) * length_s
        parts.append(Part(index + 1, start, end))
    return tuple(parts)


def compute_geometry(display: tuple[int, int], width: int, height: int, fill: str) -> Geometry:
    """Scale sizes for a displayed source of `display` (width, height) into width x height."""
    source_width, source_height = max(display[0], 1), max(display[1], 1)
    cover = max(width / source_width, height / source_height)
    fit = min(width / source_width, height / source_height)
    return Geometry(
        fill=fill,
        width=width,
        height=height,
        # Rounding up keeps the covering size at least the output size.
        cover_width=max(width, _even_up(source_width * cover)),
        cover_height=max(height, _even_up(source_height * cover)),
        fit_width=min(width, max(2, _even_nearest(source_width * fit))),
        fit_height=min(height, max(2, _even_nearest(source_height * fit))),
    )


def _even_up(value: float) -> int:
    # The epsilon absorbs float error such as 1080.0000000002.
    return math.ceil(value / 2 - 1e-6) * 2


def _even_nearest(value: float) -> int:
    return round(value / 2) * 2


def _join_labels(labels: list[str]) -> str:
    if len(labels) == 1:
        return labels[0]
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def format_number(value: float) -> str:
    """`value` with up to six decimals and no trailing zeros, as ffmpeg options take it."""
    return f"{value:.6f}".rstrip("0").rstrip(".")
