"""Checks on yt-dlp's info JSON before any media is fetched: one video, duration and size."""

from __future__ import annotations

import pytest

from viralsplit.config import Config
from viralsplit.errors import DownloadError, LimitExceededError
from viralsplit.media.ytdlp import check_is_video, check_limits_before, describe_failure, single_video

SHOWN = "https://videos.example/watch?v=abc"


def test_single_video_passes_video() -> None:
    info = {"id": "abc", "duration": 10}
    assert single_video(info, SHOWN) is info


def test_single_video_unwraps_one_entry() -> None:
    assert single_video({"_type": "playlist", "entries": [{"id": "only"}]}, SHOWN) == {"id": "only"}


def test_single_video_rejects_several() -> None:
    with pytest.raises(DownloadError, match="leads to 3 videos"):
        single_video({"_type": "playlist", "entries": [{"id": "a"}, {"id": "b"}, {"id": "c"}]}, SHOWN)


def test_single_video_rejects_empty_playlist() -> None:
    with pytest.raises(DownloadError, match="playlist is empty"):
        single_video({"_type": "playlist", "entries": []}, SHOWN)


def test_limits_duration_over() -> None:
    with pytest.raises(LimitExceededError) as caught:
        check_limits_before({"duration": 5 * 3600 + 1}, Config(), SHOWN)
    message = str(caught.value)
    assert message.startswith(SHOWN)
    assert "too long: 5:00:01, limit 4:00:00" in message
    assert "VIRALSPLIT_DOWNLOAD_MAX_DURATION_S" in message


def test_limits_merged_size_over() -> None:
    info = {"requested_formats": [{"format_id": "137", "filesize": 700_000}, {"format_id": "140", "filesize_approx": 400_000}]}
    with pytest.raises(LimitExceededError, match="1.0 MiB according to the site, limit 1000.0 KiB"):
        check_limits_before(info, Config(download_max_bytes=1_024_000), SHOWN)


def test_limits_partial_size_known() -> None:
    info = {"requested_formats": [{"format_id": "137", "filesize": 2_000_000}, {"format_id": "140"}]}
    with pytest.raises(LimitExceededError, match="at least 1.9 MiB"):
        check_limits_before(info, Config(download_max_bytes=1_000_000), SHOWN)


def test_limits_return_expected_sizes() -> None:
    info = {"duration": 60, "requested_formats": [{"format_id": "137", "filesize": 3000}, {"format_id": "140"}]}
    assert check_limits_before(info, Config(), SHOWN) == {"137": 3000, "140": None}


def test_limits_single_format_key() -> None:
    assert check_limits_before({"format_id": "mp4", "filesize": 10}, Config(), SHOWN) == {"mp4": 10}


def test_limits_reject_live_stream() -> None:
    with pytest.raises(DownloadError, match="live or scheduled stream"):
        check_limits_before({"is_live": True}, Config(), SHOWN)


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        ("ERROR: Unsupported URL: https://videos.example/about", "no video found at this address"),
        ("ERROR: [generic] x: Unable to download webpage: HTTP Error 404: Not Found", "not found (HTTP 404)"),
        ("ERROR: [generic] x: Unable to download webpage: HTTP Error 403: Forbidden", "access denied by the site (HTTP 403)"),
        ("ERROR: [youtube] abc: Private video. Sign in if you've been granted access to this video", "private or needs a sign-in"),
        ("ERROR: [youtube] abc: Video unavailable. This video has been removed by the uploader", "the video is unavailable"),
        ("ERROR: [soundcloud] x: Requested format is not available. Use --list-formats", "not a video"),
        ("ERROR: [generic] x: Unable to download webpage: The read operation timed out", "did not respond within 30 s"),
        ("ERROR: [generic] x: Unable to download webpage: [Errno 111] Connection refused", "could not connect to the site"),
    ],
)
def test_describe_failure_messages(stderr: str, expected: str) -> None:
    error = describe_failure("[generic] Extracting URL\n" + stderr, SHOWN, 30.0)
    assert expected in str(error)
    assert str(error).startswith(SHOWN + ": ")


def test_describe_failure_scrubs_urls() -> None:
    error = describe_failure("ERROR: something odd at https://cdn.example/v.mp4?token=s3cret", SHOWN, 30.0)
    assert "s3cret" not in str(error)
    assert "token=REDACTED" in str(error)


def test_describe_failure_bot_check() -> None:
    stderr = "ERROR: [youtube] abc: Sign in to confirm you're not a bot. Use --cookies-from-browser"
    assert "upload the file" in str(describe_failure(stderr, SHOWN, 30.0))


def test_check_is_video_rejects_audio_only() -> None:
    with pytest.raises(DownloadError, match="not a video"):
        check_is_video({"format_id": "mp3", "vcodec": "none", "acodec": "mp3"}, SHOWN)


def test_check_is_video_accepts_unknown_codecs() -> None:
    check_is_video({"format_id": "mp4"}, SHOWN)
    check_is_video({"requested_formats": [{"vcodec": "avc1"}, {"vcodec": "none"}]}, SHOWN)
