"""Parse yt-dlp download progress lines into the shared `Progress` value (pure, no I/O).

media/ytdlp.py runs yt-dlp with `PROGRESS_TEMPLATE`, which prints one machine-readable line
per progress report. The parser also reads yt-dlp's default human-readable lines
("[download]  45.2% of ~ 10.00MiB at 1.00MiB/s ETA 00:05 (frag 3/120)"), which appear when a
downloader prints its own progress instead of the template.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from viralsplit.media.progress import Progress

PROGRESS_MARKER = "viralsplit-progress"

# Fields yt-dlp does not know print as "NA" (yt-dlp's default for missing template fields).
PROGRESS_TEMPLATE = (
    "download:"
    + PROGRESS_MARKER
    + " status=%(progress.status)s"
    " downloaded=%(progress.downloaded_bytes)s"
    " total=%(progress.total_bytes)s"
    " estimate=%(progress.total_bytes_estimate)s"
    " speed=%(progress.speed)s"
    " eta=%(progress.eta)s"
    " fragment=%(progress.fragment_index)s/%(progress.fragment_count)s"
    " format=%(info.format_id)s"
)


@dataclasses.dataclass(frozen=True)
class DownloadSample:
    """One progress report of one file (a merged download has one file per format)."""

    # "downloading" or "finished" (yt-dlp's progress status).
    status: str
    downloaded_bytes: int | None = None
    total_bytes: int | None = None
    # True when total_bytes is yt-dlp's estimate (fragmented downloads), not a Content-Length.
    total_is_estimate: bool = False
    bytes_per_s: float | None = None
    eta_s: float | None = None
    fragment_index: int | None = None
    fragment_count: int | None = None
    format_id: str | None = None
    # Percentage from a human-readable line, used when byte counts are missing.
    percent: float | None = None


def parse_progress_line(line: str) -> DownloadSample | None:
    """Parse one line of yt-dlp output; return None for lines that are not progress."""
    text = line.strip()
    if text.startswith(PROGRESS_MARKER + " "):
        return _parse_template_line(text)
    if text.startswith("[download]"):
        return _parse_human_line(text[len("[download]") :].strip())
    return None


def _parse_template_line(text: str) -> DownloadSample | None:
    fields = dict(item.split("=", 1) for item in text.split()[1:] if "=" in item)
    status = fields.get("status", "NA")
    if status not in ("downloading", "finished"):
        return None
    total = _int_or_none(fields.get("total"))
    estimate = _int_or_none(fields.get("estimate"))
    index_text, _, count_text = fields.get("fragment", "NA/NA").partition("/")
    format_id = fields.get("format")
    return DownloadSample(
        status=status,
        downloaded_bytes=_int_or_none(fields.get("downloaded")),
        total_bytes=total if total is not None else estimate,
        total_is_estimate=total is None and estimate is not None,
        bytes_per_s=_float_or_none(fields.get("speed")),
        eta_s=_float_or_none(fields.get("eta")),
        fragment_index=_int_or_none(index_text),
        fragment_count=_int_or_none(count_text),
        format_id=None if format_id in (None, "NA") else format_id,
    )


def _int_or_none(text: str | None) -> int | None:
    value = _float_or_none(text)
    return None if value is None else int(value)


def _float_or_none(text: str | None) -> float | None:
    if text is None or text in ("NA", "None", ""):
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 else None


# The shapes FileDownloader.report_progress prints (yt_dlp/downloader/common.py, 2026.11.23):
#   " 45.2% of   10.00MiB at    1.00MiB/s ETA 00:05"
#   " 45.2% of ~  10.00MiB at    1.00MiB/s ETA 00:05 (frag 3/120)"
#   "   1.50MiB at  500.00KiB/s (00:00:03)"            (total unknown)
#   "100% of   10.00MiB in 00:00:03 at 3.20MiB/s"      (finished, no ETA)
_PERCENT = r"(?P<percent>[\d.]+)%"
_SIZE = r"(?P<approx>~)?\s*(?P<size>[\d.]+\s*[KMGTPE]?i?B)"
_HUMAN_WITH_TOTAL = re.compile(rf"^{_PERCENT}\s+of\s+{_SIZE}(?P<rest>.*)$")
_HUMAN_NO_TOTAL = re.compile(r"^(?P<done>[\d.]+\s*[KMGTPE]?i?B)\s+at\s+(?P<rest>.*)$")
_SPEED = re.compile(r"\bat\s+(?P<speed>[\d.]+\s*[KMGTPE]?i?B)/s")
_ETA = re.compile(r"\bETA\s+(?P<eta>[\d:]+)")
_FRAGMENT = re.compile(r"\(frag\s+(?P<index>\d+)(?:/(?P<count>\d+))?\)")
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5, "E": 1024**6}


def _parse_human_line(text: str) -> DownloadSample | None:
    match = _HUMAN_WITH_TOTAL.match(text)
    if match:
        percent = float(match["percent"])
        total = parse_size(match["size"])
        rest = match["rest"]
        finished = percent >= 100.0 and " in " in f" {rest}" and "ETA" not in rest
        downloaded = None if total is None else round(total * percent / 100.0)
        return _with_rates(
            DownloadSample(
                status="finished" if finished else "downloading",
                downloaded_bytes=downloaded,
                total_bytes=total,
                total_is_estimate=bool(match["approx"]),
                percent=percent,
            ),
            rest,
        )
    match = _HUMAN_NO_TOTAL.match(text)
    if match:
        return _with_rates(
            DownloadSample(status="downloading", downloaded_bytes=parse_size(match["done"])),
            "at " + match["rest"],
        )
    return None


def _with_rates(sample: DownloadSample, rest: str) -> DownloadSample:
    speed = _SPEED.search(rest)
    eta = _ETA.search(rest)
    fragment = _FRAGMENT.search(rest)
    return dataclasses.replace(
        sample,
        bytes_per_s=parse_size(speed["speed"]) if speed else None,
        eta_s=parse_clock(eta["eta"]) if eta else None,
        fragment_index=int(fragment["index"]) if fragment else None,
        fragment_count=int(fragment["count"]) if fragment and fragment["count"] else None,
    )


def parse_size(text: str) -> int | None:
    """Parse yt-dlp's byte counts ("10.00MiB", "512B", "1.5KB"); binary prefixes either way."""
    match = re.fullmatch(r"([\d.]+)\s*([KMGTPE]?)i?B", text.strip())
    if not match:
        return None
    return round(float(match[1]) * _UNITS[match[2]])


def parse_clock(text: str) -> float | None:
    """Parse "SS", "MM:SS" or "HH:MM:SS" into seconds."""
    seconds = 0.0
    for part in text.split(":"):
        if not part.isdigit():
            return None
        seconds = seconds * 60 + int(part)
    return seconds


class DownloadProgressTracker:
    """Turn per-file samples into one `Progress` for the whole download.

    A download that merges separate video and audio formats reports each file from zero, so
    the tracker keeps the bytes of every format and adds them up. `expected_sizes` maps the
    format ids yt-dlp selected to their sizes from the info JSON (None where unknown), so the
    total covers formats that have not started yet. The fraction never decreases.
    """

    def __init__(self, expected_sizes: Mapping[str, int | None] | None = None) -> None:
        self._expected = dict(expected_sizes or {})
        self._done: dict[str, int] = {}
        self._totals: dict[str, int | None] = dict(self._expected)
        self._fraction: float | None = None

    @property
    def bytes_done(self) -> int:
        return sum(self._done.values())

    def update(self, sample: DownloadSample) -> Progress:
        key = sample.format_id or "_"
        if key == "_" and len(self._expected) == 1:
            key = next(iter(self._expected))
        if sample.downloaded_bytes is not None:
            self._done[key] = sample.downloaded_bytes
        if sample.total_bytes is not None:
            self._totals[key] = sample.total_bytes
        elif key not in self._totals:
            self._totals[key] = None
        if sample.status == "finished" and sample.downloaded_bytes is not None:
            self._totals[key] = sample.downloaded_bytes

        done = self.bytes_done
        sizes = [size for size in self._totals.values() if size is not None]
        total = max(sum(sizes), done) if len(sizes) == len(self._totals) else None
        fraction = self._fraction_of(sample, done, total)
        if fraction is not None:
            self._fraction = max(fraction, self._fraction or 0.0)

        eta = sample.eta_s
        if total is not None and sample.bytes_per_s:
            eta = (total - done) / sample.bytes_per_s
        if self._fraction == 1.0:
            eta = 0.0
        return Progress(
            stage="download",
            fraction=self._fraction,
            eta_s=eta,
            bytes_done=done,
            bytes_total=total,
            bytes_per_s=sample.bytes_per_s,
        )

    def _fraction_of(self, sample: DownloadSample, done: int, total: int | None) -> float | None:
        if total:
            return min(done / total, 1.0)
        # Without byte totals, one file's fragment count or percentage is the best measure.
        if len(self._totals) <= 1:
            if sample.fragment_index is not None and sample.fragment_count:
                return min(sample.fragment_index / sample.fragment_count, 1.0)
            if sample.percent is not None:
                return min(sample.percent / 100.0, 1.0)
        return None
