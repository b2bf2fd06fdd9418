"""Platform presets: output size, frame-rate cap, quality and the platform's maximum clip length.

docs/platforms.md gives the source and date of each platform limit and says which figures are
choices of this project rather than published limits.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from viralsplit.errors import InputError


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    label: str
    width: int
    height: int
    # Highest output frame rate; faster sources are reduced by an integer factor.
    max_fps: int
    # libx264 constant rate factor, capped by max_video_kbps (VBV maxrate; bufsize is twice it).
    crf: int
    max_video_kbps: int
    audio_kbps: int
    # Longest clip the platform accepts, in seconds.
    max_clip_s: float

    @property
    def quality_class(self) -> str:
        """Encoder settings that decide whether two presets can share one encode."""
        return f"crf{self.crf}-max{self.max_video_kbps}k-a{self.audio_kbps}k"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _preset(name: str, label: str, width: int, height: int, max_clip_s: float, *,
            max_fps: int = 30, crf: int = 21, max_video_kbps: int | None = None) -> Preset:
    if max_video_kbps is None:
        # 8 Mb/s for 1080p-sized frames, scaled by pixel count for other sizes.
        max_video_kbps = max(2000, round(8000 * width * height / (1080 * 1920) / 500) * 500)
    return Preset(name, label, width, height, max_fps, crf, max_video_kbps, 128, max_clip_s)


# NOTE: the maximum clip lengths are as known in early 2025 and must be rechecked against the
# platforms' help pages (see docs/platforms.md); every frame-rate cap and bitrate is a choice.
PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        _preset("tiktok", "TikTok", 1080, 1920, 600),
        _preset("reels", "Reels", 1080, 1920, 180),
        _preset("shorts", "Shorts", 1080, 1920, 180),
        _preset("instagram_feed", "Instagram feed (4:5)", 1080, 1350, 3600),
        _preset("instagram_square", "Instagram feed (1:1)", 1080, 1080, 3600),
        _preset("x", "X", 1280, 720, 140),
        _preset("linkedin", "LinkedIn", 1920, 1080, 600),
        _preset("youtube", "YouTube", 1920, 1080, 12 * 3600),
    )
}

DEFAULT_PLATFORMS = ("tiktok", "reels", "shorts")


def get_preset(name: str) -> Preset:
    """Return the preset called `name`; raise InputError listing the valid names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError(name, f"unknown platform: use one of {', '.join(PRESETS)}") from None
