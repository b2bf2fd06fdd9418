"""Progress of one stage of a job: the shared value type, and the pure ffmpeg -progress parser.

The parser below this type belongs to the render engine; yt-dlp download progress produces
the same `Progress` value from media/ytdlp.py.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Progress:
    # download, probe, plan, render, thumbnail
    stage: str
    # 0.0 to 1.0, never decreasing within a stage; None when the total is unknown.
    fraction: float | None = None
    frames: int | None = None
    fps: float | None = None
    # Processing speed as a multiple of real time (ffmpeg's "speed=2.5x").
    speed: float | None = None
    # Estimated seconds left; None when unknown.
    eta_s: float | None = None
    # Media time processed so far, seconds.
    out_time_s: float | None = None
    # Download stage only.
    bytes_done: int | None = None
    bytes_total: int | None = None
    bytes_per_s: float | None = None
