"""download() against real yt-dlp and a local HTTP server allowlisted by address and port."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import pytest
from mediaserver import MediaServer
from streams import make_aes_hls, probe_codec_types, probe_video_height, run_ffmpeg

from viralsplit.config import Config
from viralsplit.errors import DownloadError, LimitExceededError, UrlRejectedError
from viralsplit.media.progress import Progress
from viralsplit.media.ytdlp import download


def config_for(server: MediaServer, **overrides: object) -> Config:
    return Config(url_allowlist=(server.allowlist_entry,), **overrides)  # type: ignore[arg-type]


class Recorder:
    """Collects the progress and pids that download() reports."""

    def __init__(self) -> None:
        self.progress: list[Progress] = []
        self.pids: list[int] = []

    def on_progress(self, progress: Progress) -> None:
        self.progress.append(progress)

    def on_process(self, pid: int) -> None:
        self.pids.append(pid)


def leftover_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*")]


async def test_direct_mp4_downloads_with_progress(media_server: MediaServer, clip: Path, tmp_path: Path) -> None:
    media_server.file("/clip.mp4", clip)
    recorder = Recorder()

    path = await download(
        f"{media_server.origin}/clip.mp4", tmp_path, config=config_for(media_server),
        on_progress=recorder.on_progress, on_process=recorder.on_process,
    )

    assert path.parent == tmp_path
    assert path.suffix == ".mp4"
    assert path.read_bytes() == clip.read_bytes()
    assert leftover_files(tmp_path) == [path]
    assert len(recorder.pids) == 2
    assert all(progress.stage == "download" for progress in recorder.progress)
    last = recorder.progress[-1]
    assert last.bytes_done == clip.stat().st_size
    assert last.bytes_total == clip.stat().st_size
    assert last.fraction == 1.0
    fractions = [progress.fraction for progress in recorder.progress if progress.fraction is not None]
    assert fractions == sorted(fractions)
    assert any(progress.bytes_per_s for progress in recorder.progress)


async def test_html_page_video_tag_found(media_server: MediaServer, clip: Path, tmp_path: Path) -> None:
    media_server.file("/media/clip.mp4", clip)
    media_server.html("/watch.html", '<html><head><title>Holiday</title></head><body><video src="/media/clip.mp4"></video></body></html>')

    path = await download(f"{media_server.origin}/watch.html", tmp_path, config=config_for(media_server), on_progress=lambda _: None)

    assert path.read_bytes() == clip.read_bytes()
    assert path.name.startswith("Holiday")
    assert "/watch.html" in media_server.hits
    assert "/media/clip.mp4" in media_server.hits


async def test_cancel_stops_yt_dlp_and_removes_part(media_server: MediaServer, media, tmp_path: Path) -> None:
    # 2 MiB at 16 KiB per 50 ms takes about 6.4 s, so the cancel lands mid-download.
    media_server.file("/slow.mp4", media.random_bytes(2 * 1024 * 1024), chunk_bytes=16 * 1024, chunk_delay_s=0.05)
    recorder = Recorder()
    started = asyncio.Event()

    def on_progress(progress: Progress) -> None:
        recorder.on_progress(progress)
        if progress.bytes_done:
            started.set()

    task = asyncio.create_task(
        download(f"{media_server.origin}/slow.mp4", tmp_path, config=config_for(media_server),
                 on_progress=on_progress, on_process=recorder.on_process)
    )
    await asyncio.wait_for(started.wait(), 20)
    part_files = list(tmp_path.rglob("*.part"))
    pgid = recorder.pids[-1]

    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    elapsed = time.monotonic() - cancelled_at

    assert part_files, "yt-dlp should have been writing a .part file"
    assert elapsed < 1.0
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    assert leftover_files(tmp_path) == []
    assert media_server.body_bytes["/slow.mp4"] < 2 * 1024 * 1024


async def test_http_404_message(media_server: MediaServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as caught:
        await download(f"{media_server.origin}/gone.mp4?token=s3cret", tmp_path, config=config_for(media_server), on_progress=lambda _: None)
    message = str(caught.value)
    assert "HTTP 404" in message
    assert f"{media_server.origin}/gone.mp4?token=REDACTED" in message
    assert "s3cret" not in message
    assert leftover_files(tmp_path) == []


async def test_http_403_from_site_is_not_a_rejection(media_server: MediaServer, tmp_path: Path) -> None:
    media_server.error("/private.mp4", 403, "Forbidden")

    with pytest.raises(DownloadError, match="access denied by the site \\(HTTP 403\\)") as caught:
        await download(f"{media_server.origin}/private.mp4", tmp_path, config=config_for(media_server), on_progress=lambda _: None)

    assert not isinstance(caught.value, UrlRejectedError)
    assert leftover_files(tmp_path) == []


async def test_connection_refused_message(tmp_path: Path) -> None:
    # A port this test bound and released, so nothing listens on it.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = Config(url_allowlist=(f"127.0.0.1:{port}",))

    with pytest.raises(DownloadError, match=f"could not connect to 127.0.0.1:{port}") as caught:
        await download(f"http://127.0.0.1:{port}/clip.mp4", tmp_path, config=config, on_progress=lambda _: None)

    assert not isinstance(caught.value, UrlRejectedError)
    assert "try again later" in str(caught.value)


async def test_page_without_video_message(media_server: MediaServer, tmp_path: Path) -> None:
    media_server.html("/about.html", "<html><head><title>About us</title></head><body><p>No video here.</p></body></html>")

    with pytest.raises(DownloadError, match="no video found at this address") as caught:
        await download(f"{media_server.origin}/about.html", tmp_path, config=config_for(media_server), on_progress=lambda _: None)

    assert not isinstance(caught.value, UrlRejectedError)
    assert leftover_files(tmp_path) == []


async def test_content_length_over_limit_refused_before_body(media_server: MediaServer, tmp_path: Path) -> None:
    # The server announces 50 MiB and then sends nothing for 30 s: only the headers can
    # explain a fast refusal.
    media_server.announce_then_stall("/huge.mp4", content_length=50 * 1024 * 1024, stall_s=30)
    config = config_for(media_server, download_max_bytes=1024 * 1024)
    started = time.monotonic()

    with pytest.raises(LimitExceededError) as caught:
        await download(f"{media_server.origin}/huge.mp4", tmp_path, config=config, on_progress=lambda _: None)

    message = str(caught.value)
    assert time.monotonic() - started < 15
    assert "50.0 MiB" in message
    assert "limit 1.0 MiB" in message
    assert "VIRALSPLIT_DOWNLOAD_MAX_BYTES" in message
    assert media_server.body_bytes.get("/huge.mp4", 0) == 0
    assert leftover_files(tmp_path) == []


async def test_growing_download_stopped_at_limit(media_server: MediaServer, tmp_path: Path) -> None:
    # No Content-Length: the size is only known as the bytes arrive.
    media_server.endless("/stream.mp4", max_bytes=16 * 1024 * 1024)
    config = config_for(media_server, download_max_bytes=1024 * 1024)

    with pytest.raises(LimitExceededError, match="more than .* received, limit 1.0 MiB"):
        await download(f"{media_server.origin}/stream.mp4", tmp_path, config=config, on_progress=lambda _: None)

    assert media_server.body_bytes["/stream.mp4"] < 16 * 1024 * 1024
    assert leftover_files(tmp_path) == []


async def test_duration_from_page_metadata_refused_before_download(media_server: MediaServer, media, tmp_path: Path) -> None:
    media_server.file("/long.mp4", media.random_bytes(1024 * 1024), chunk_bytes=4096, chunk_delay_s=0.2)
    media_server.html(
        "/long.html",
        '<html><head><title>Long</title><script type="application/ld+json">'
        '{"@context": "https://schema.org", "@type": "VideoObject", "name": "Long", "duration": "PT2H",'
        f' "contentUrl": "{media_server.origin}/long.mp4", "uploadDate": "2024-01-01"}}'
        "</script></head><body></body></html>",
    )
    recorder = Recorder()
    config = config_for(media_server, download_max_duration_s=3600.0)

    with pytest.raises(LimitExceededError) as caught:
        await download(f"{media_server.origin}/long.html", tmp_path, config=config,
                       on_progress=recorder.on_progress, on_process=recorder.on_process)

    assert "too long: 2:00:00, limit 1:00:00" in str(caught.value)
    assert "VIRALSPLIT_DOWNLOAD_MAX_DURATION_S" in str(caught.value)
    # Only the metadata run started; the download run never did.
    assert len(recorder.pids) == 1
    assert recorder.progress == []
    assert leftover_files(tmp_path) == []


async def test_duration_checked_after_download(media_server: MediaServer, clip: Path, tmp_path: Path) -> None:
    # A direct link states no duration, so the downloaded file is probed.
    media_server.file("/clip.mp4", clip)
    config = config_for(media_server, download_max_duration_s=1.0)

    with pytest.raises(LimitExceededError, match="too long: 0:02, limit 0:01"):
        await download(f"{media_server.origin}/clip.mp4", tmp_path, config=config, on_progress=lambda _: None)

    assert leftover_files(tmp_path) == []


async def test_network_timeout_message(media_server: MediaServer, tmp_path: Path) -> None:
    media_server.silent("/silent.mp4", stall_s=30)
    config = config_for(media_server, download_socket_timeout_s=1.0)

    with pytest.raises(DownloadError, match="did not respond within 1 s") as caught:
        await asyncio.wait_for(
            download(f"{media_server.origin}/silent.mp4", tmp_path, config=config, on_progress=lambda _: None), 60
        )

    assert "network timeout" in str(caught.value)


async def test_audio_only_link_not_a_video(media_server: MediaServer, media, tmp_path: Path) -> None:
    media_server.file("/song.m4a", media.audio_only("m4a"), content_type="audio/mp4")

    with pytest.raises(DownloadError, match="not a video: the link offers only audio"):
        await download(f"{media_server.origin}/song.m4a", tmp_path, config=config_for(media_server), on_progress=lambda _: None)

    assert "/song.m4a" in media_server.hits
    assert leftover_files(tmp_path) == []


async def test_page_with_two_videos_rejected(media_server: MediaServer, clip: Path, tmp_path: Path) -> None:
    media_server.file("/a.mp4", clip)
    media_server.file("/b.mp4", clip)
    media_server.html("/two.html", '<html><head><title>Two</title></head><body><video src="/a.mp4"></video><video src="/b.mp4"></video></body></html>')
    pids: list[int] = []

    with pytest.raises(DownloadError, match="leads to 2 videos"):
        await download(f"{media_server.origin}/two.html", tmp_path, config=config_for(media_server),
                       on_progress=lambda _: None, on_process=pids.append)

    assert len(pids) == 1
    assert leftover_files(tmp_path) == []


async def test_dash_merges_video_and_audio(media_server: MediaServer, clip: Path, tmp_path: Path) -> None:
    # Separate video and audio adaptation sets: yt-dlp fetches two formats and ffmpeg merges them.
    dash = tmp_path / "dash"
    dash.mkdir()
    run_ffmpeg("-i", str(clip), "-map", "0:v", "-map", "0:a", "-c", "copy", "-f", "dash", "-seg_duration", "1", str(dash / "manifest.mpd"))
    media_server.directory("/dash", dash)
    recorder = Recorder()
    dest = tmp_path / "dest"

    path = await download(f"{media_server.origin}/dash/manifest.mpd", dest, config=config_for(media_server),
                          on_progress=recorder.on_progress, on_process=recorder.on_process)

    assert sorted(probe_codec_types(path)) == ["audio", "video"]
    assert leftover_files(dest) == [path]
    assert any(hit.startswith("/dash/chunk-stream0") for hit in media_server.hits)
    assert any(hit.startswith("/dash/chunk-stream1") for hit in media_server.hits)
    last = recorder.progress[-1]
    assert last.fraction == 1.0
    assert last.bytes_done == last.bytes_total
    fractions = [progress.fraction for progress in recorder.progress if progress.fraction is not None]
    assert fractions == sorted(fractions)


async def test_hls_playlist_downloads_fragments(media_server: MediaServer, clip: Path, tmp_path: Path) -> None:
    hls = tmp_path / "hls"
    hls.mkdir()
    run_ffmpeg("-i", str(clip), "-c", "copy", "-f", "hls", "-hls_time", "0.5", "-hls_playlist_type", "vod",
               "-hls_segment_filename", str(hls / "seg%d.ts"), str(hls / "index.m3u8"))
    media_server.directory("/hls", hls)
    recorder = Recorder()
    dest = tmp_path / "dest"

    path = await download(f"{media_server.origin}/hls/index.m3u8", dest, config=config_for(media_server),
                          on_progress=recorder.on_progress)

    assert "video" in probe_codec_types(path)
    assert leftover_files(dest) == [path]
    assert recorder.progress[-1].fraction == 1.0
    segments = [hit for hit in media_server.hits if hit.endswith(".ts")]
    assert segments


async def test_encrypted_hls_through_ffmpeg(media_server: MediaServer, clip: Path, tmp_path: Path) -> None:
    make_aes_hls(clip, tmp_path / "aes", "enc.key")
    media_server.directory("/aes", tmp_path / "aes")
    dest = tmp_path / "dest"

    path = await download(f"{media_server.origin}/aes/index.m3u8", dest, config=config_for(media_server), on_progress=lambda _: None)

    assert "video" in probe_codec_types(path)
    assert "/aes/enc.key" in media_server.hits
    assert "/aes/seg0.ts" in media_server.hits


async def test_height_limit_picks_smaller_video(media_server: MediaServer, clip: Path, tmp_path: Path) -> None:
    # Two video renditions (240 and 120 lines) and one audio: a 200-line limit must pick 120.
    dash = tmp_path / "dash"
    dash.mkdir()
    run_ffmpeg("-i", str(clip), "-map", "0:v", "-map", "0:v", "-map", "0:a",
               "-c:v", "libx264", "-preset", "ultrafast", "-s:v:0", "320x240", "-s:v:1", "160x120", "-c:a", "copy",
               "-f", "dash", "-seg_duration", "1", str(dash / "manifest.mpd"))
    media_server.directory("/dash", dash)
    dest = tmp_path / "dest"

    path = await download(f"{media_server.origin}/dash/manifest.mpd", dest,
                          config=config_for(media_server, download_max_height=200), on_progress=lambda _: None)

    assert probe_video_height(path) == 120
    assert not any(hit.startswith("/dash/chunk-stream0") for hit in media_server.hits)
