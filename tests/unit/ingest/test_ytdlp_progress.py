"""yt-dlp progress lines to `Progress`: the template lines media/ytdlp.py requests, and the
default human-readable lines yt-dlp 2026.11 prints."""

from __future__ import annotations

import pytest

from viralsplit.media.ytdlp_progress import (
    PROGRESS_TEMPLATE,
    DownloadProgressTracker,
    DownloadSample,
    parse_clock,
    parse_progress_line,
    parse_size,
)


def template_line(**fields: str) -> str:
    values = {
        "status": "downloading",
        "downloaded": "NA",
        "total": "NA",
        "estimate": "NA",
        "speed": "NA",
        "eta": "NA",
        "fragment": "NA/NA",
        "format": "NA",
    }
    values.update(fields)
    return "viralsplit-progress " + " ".join(f"{key}={value}" for key, value in values.items())


def test_template_names_every_field() -> None:
    for field in ("downloaded_bytes", "total_bytes", "total_bytes_estimate", "speed", "eta", "fragment_index", "fragment_count"):
        assert f"%(progress.{field})s" in PROGRESS_TEMPLATE


def test_template_line_known_total() -> None:
    # Copied from a yt-dlp 2026.11.23 run against a local HTTP server.
    line = "viralsplit-progress status=downloading downloaded=7168 total=72244 estimate=NA speed=5939306.8099565385 eta=0 fragment=NA/NA format=mp4"
    sample = parse_progress_line(line)
    assert sample == DownloadSample(
        status="downloading",
        downloaded_bytes=7168,
        total_bytes=72244,
        bytes_per_s=5939306.8099565385,
        eta_s=0.0,
        format_id="mp4",
    )


def test_template_line_unknown_total() -> None:
    sample = parse_progress_line(template_line(downloaded="1048576", speed="524288.0"))
    assert sample is not None
    assert sample.downloaded_bytes == 1048576
    assert sample.total_bytes is None
    assert sample.eta_s is None


def test_template_line_estimated_total_and_fragments() -> None:
    sample = parse_progress_line(
        template_line(downloaded="3145728", estimate="125829120.5", speed="1048576", eta="117", fragment="3/120", format="hls-720p")
    )
    assert sample is not None
    assert sample.total_bytes == 125829120
    assert sample.total_is_estimate is True
    assert (sample.fragment_index, sample.fragment_count) == (3, 120)
    assert sample.format_id == "hls-720p"


def test_template_line_finished_without_eta() -> None:
    line = "viralsplit-progress status=finished downloaded=72244 total=72244 estimate=NA speed=10474378.588129558 eta=NA fragment=NA/NA format=mp4"
    sample = parse_progress_line(line)
    assert sample is not None
    assert sample.status == "finished"
    assert sample.eta_s is None


def test_template_line_other_status_ignored() -> None:
    assert parse_progress_line(template_line(status="error")) is None


@pytest.mark.parametrize(
    "line",
    ["[generic] Extracting URL: http://x/", "[download] Destination: /tmp/a.mp4", "", "WARNING: something", "[info] clip: Downloading 1 format(s): mp4"],
)
def test_other_lines_ignored(line: str) -> None:
    assert parse_progress_line(line) is None


def test_human_line_known_total() -> None:
    sample = parse_progress_line("[download]  45.2% of   10.00MiB at    1.00MiB/s ETA 00:05")
    assert sample is not None
    assert sample.total_bytes == 10 * 1024**2
    assert sample.downloaded_bytes == round(10 * 1024**2 * 0.452)
    assert sample.bytes_per_s == 1024**2
    assert sample.eta_s == 5.0
    assert sample.total_is_estimate is False


def test_human_line_estimated_total_with_fragments() -> None:
    sample = parse_progress_line("[download]   2.5% of ~ 120.00MiB at    2.00MiB/s ETA 01:02:03 (frag 3/120)")
    assert sample is not None
    assert sample.total_is_estimate is True
    assert sample.total_bytes == 120 * 1024**2
    assert (sample.fragment_index, sample.fragment_count) == (3, 120)
    assert sample.eta_s == 3723.0


def test_human_line_unknown_total() -> None:
    sample = parse_progress_line("[download]    1.50MiB at  500.00KiB/s (00:00:03)")
    assert sample is not None
    assert sample.downloaded_bytes == round(1.5 * 1024**2)
    assert sample.total_bytes is None
    assert sample.bytes_per_s == 500 * 1024


def test_human_line_finished_no_eta() -> None:
    sample = parse_progress_line("[download] 100% of   70.55KiB in 00:00:00 at 2.76MiB/s")
    assert sample is not None
    assert sample.status == "finished"
    assert sample.eta_s is None
    assert sample.downloaded_bytes == sample.total_bytes


def test_human_line_unknown_speed_and_eta() -> None:
    sample = parse_progress_line("[download]   0.0% of   10.00MiB at  Unknown B/s ETA Unknown")
    assert sample is not None
    assert sample.bytes_per_s is None
    assert sample.eta_s is None


def test_parse_size_units() -> None:
    assert parse_size("512B") == 512
    assert parse_size("1.5KiB") == 1536
    assert parse_size("2.00GiB") == 2 * 1024**3
    assert parse_size("Unknown B") is None


def test_parse_clock() -> None:
    assert parse_clock("07") == 7
    assert parse_clock("01:02") == 62
    assert parse_clock("1:00:00") == 3600
    assert parse_clock("Unknown") is None


def test_tracker_single_file_reaches_total() -> None:
    tracker = DownloadProgressTracker({"mp4": None})
    first = tracker.update(DownloadSample("downloading", downloaded_bytes=1000, total_bytes=4000, bytes_per_s=1000.0, format_id="mp4"))
    last = tracker.update(DownloadSample("finished", downloaded_bytes=4000, total_bytes=4000, format_id="mp4"))
    assert first.stage == "download"
    assert first.fraction == 0.25
    assert first.eta_s == 3.0
    assert (last.bytes_done, last.bytes_total, last.fraction, last.eta_s) == (4000, 4000, 1.0, 0.0)


def test_tracker_unknown_total_has_no_fraction() -> None:
    tracker = DownloadProgressTracker()
    progress = tracker.update(DownloadSample("downloading", downloaded_bytes=5000, bytes_per_s=100.0))
    assert progress.fraction is None
    assert progress.bytes_total is None
    assert progress.bytes_done == 5000


def test_tracker_adds_video_and_audio_files() -> None:
    tracker = DownloadProgressTracker({"137": 3000, "140": 1000})
    video = tracker.update(DownloadSample("finished", downloaded_bytes=3000, total_bytes=3000, format_id="137"))
    audio = tracker.update(DownloadSample("downloading", downloaded_bytes=500, total_bytes=1000, format_id="140"))
    assert video.bytes_total == 4000
    assert video.fraction == 0.75
    assert audio.bytes_done == 3500
    assert audio.fraction == 0.875


def test_tracker_fraction_never_decreases() -> None:
    tracker = DownloadProgressTracker({"hls": None})
    tracker.update(DownloadSample("downloading", downloaded_bytes=500, total_bytes=1000, total_is_estimate=True, format_id="hls"))
    grown = tracker.update(DownloadSample("downloading", downloaded_bytes=600, total_bytes=2000, total_is_estimate=True, format_id="hls"))
    assert grown.fraction == 0.5
    assert grown.bytes_total == 2000


def test_tracker_fragments_without_bytes() -> None:
    tracker = DownloadProgressTracker()
    progress = tracker.update(DownloadSample("downloading", fragment_index=30, fragment_count=120))
    assert progress.fraction == 0.25
