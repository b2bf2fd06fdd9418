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


# Media times beyond this are treated as garbage (ffmpeg prints INT64 extremes before the
# first frame): about 115 days.
_MAX_PLAUSIBLE_TIME_S = 1e7


class ProgressParser:
    """Turn ffmpeg `-progress` key=value lines into `Progress` values. Pure: no I/O, no clock.

    `feed` returns a Progress at the end of each block (the `progress=continue` or
    `progress=end` line) and None for other lines. `out_time_us` and `out_time_ms` are both
    microseconds (ffmpeg names the latter wrongly); `out_time` (HH:MM:SS.micro) is the fallback.
    N/A, negative and implausibly large values are ignored. The fraction never decreases,
    never exceeds 1, becomes 1 at `progress=end`, and is None when the duration is unknown.
    """

    def __init__(self, duration_s: float | None, stage: str = "render") -> None:
        self.duration_s = duration_s if duration_s and duration_s > 0 else None
        self.stage = stage
        self._block: dict[str, str] = {}
        self._fraction: float | None = 0.0 if self.duration_s else None
        self._out_time_s: float | None = None
        self.finished = False

    def feed(self, line: str) -> Progress | None:
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        key, value = key.strip(), value.strip()
        if key != "progress":
            self._block[key] = value
            return None
        block, self._block = self._block, {}
        return self._update(block, ended=value == "end")

    def _update(self, block: dict[str, str], ended: bool) -> Progress:
        out_time = _out_time_s(block)
        if out_time is not None and self.duration_s is not None and out_time > self.duration_s * 1.5 + 5:
            # A value far past the known end is a placeholder, not progress.
            out_time = None
        if out_time is not None and (self._out_time_s is None or out_time > self._out_time_s):
            self._out_time_s = out_time
        if self.duration_s is not None:
            current = 1.0 if ended else min(1.0, (self._out_time_s or 0.0) / self.duration_s)
            self._fraction = max(self._fraction or 0.0, current)
        self.finished = self.finished or ended
        speed = _positive(block.get("speed", "").rstrip("x"))
        eta: float | None = None
        if ended and self.duration_s is not None:
            eta = 0.0
        elif self.duration_s is not None and speed and self._out_time_s is not None:
            eta = max(0.0, (self.duration_s - self._out_time_s) / speed)
        frames = _non_negative_int(block.get("frame"))
        return Progress(
            stage=self.stage,
            fraction=self._fraction,
            frames=frames,
            fps=_positive(block.get("fps")),
            speed=speed,
            eta_s=eta,
            out_time_s=self._out_time_s,
        )


def _out_time_s(block: dict[str, str]) -> float | None:
    for key in ("out_time_us", "out_time_ms"):
        text = block.get(key)
        if text is None:
            continue
        try:
            micros = int(text)
        except ValueError:
            continue
        return _plausible(micros / 1_000_000)
    text = block.get("out_time")
    if text and not text.startswith("-"):
        try:
            hours, minutes, seconds = text.split(":")
            return _plausible(int(hours) * 3600 + int(minutes) * 60 + float(seconds))
        except ValueError:
            return None
    return None


def _plausible(seconds: float) -> float | None:
    return seconds if 0 <= seconds < _MAX_PLAUSIBLE_TIME_S else None


def _positive(text: str | None) -> float | None:
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if value > 0 and value < float("inf") else None


def _non_negative_int(text: str | None) -> int | None:
    try:
        value = int(text or "")
    except ValueError:
        return None
    return value if value >= 0 else None
