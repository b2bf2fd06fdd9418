"""Invalid input: one clear line on stderr, exit 2 (or 1 for a render failure), never an output."""

from __future__ import annotations

import ctypes
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_split
from mediagen import MediaFactory, VideoSpec

from viralsplit.errors import UnsupportedFormatError
from viralsplit.media import probe as probe_module

IN_ACCESS = 0x001
IN_OPEN = 0x020


class OpenWatch:
    """Record every open or read of one file through Linux inotify."""

    def __init__(self, path: Path) -> None:
        self.libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        watch = self.libc.inotify_add_watch(self.fd, str(path).encode(), IN_OPEN | IN_ACCESS)
        assert watch >= 0, os.strerror(ctypes.get_errno())

    def events(self) -> int:
        try:
            return len(os.read(self.fd, 65536))
        except BlockingIOError:
            return 0

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def playlist(media: MediaFactory, tmp_path: Path) -> Iterator[tuple[Path, OpenWatch]]:
    """An HLS playlist named upload.mp4 whose only segment is a real local video file."""
    target = tmp_path / "secret" / "segment.mp4"
    target.parent.mkdir()
    target.write_bytes(media.video(VideoSpec(duration_s=1.0, fps=5)).read_bytes())
    upload = tmp_path / "upload.mp4"
    upload.write_text(
        f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n{target}\n#EXT-X-ENDLIST\n"
    )
    watch = OpenWatch(target)
    yield upload, watch
    watch.close()


def test_hls_playlist_rejected_unopened(playlist: tuple[Path, OpenWatch], out_dir: Path) -> None:
    upload, watch = playlist
    run = run_split(upload, "--out", str(out_dir), "--json")
    assert run.returncode == 2
    assert run.stderr.strip() == f"{upload}: not a video file: a playlist or list of URLs, which is not accepted"
    assert run.stdout == ""
    assert watch.events() == 0
    assert not out_dir.exists()


def test_hls_watch_sees_plain_ffprobe(playlist: tuple[Path, OpenWatch]) -> None:
    # Control: ffprobe without the engine's guards follows the playlist and opens the file,
    # so the watch above would have seen an open.
    upload, watch = playlist
    subprocess.run(["ffprobe", "-v", "quiet", "-show_format", str(upload)], capture_output=True, check=False)
    assert watch.events() > 0


async def test_format_whitelist_alone_blocks_hls(
    playlist: tuple[Path, OpenWatch], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the first-bytes check, ffprobe's demuxer allowlist still keeps the HLS demuxer out.
    upload, watch = playlist
    monkeypatch.setattr(probe_module, "_check_file", lambda path, source: None)
    with pytest.raises(UnsupportedFormatError, match="not a video file"):
        await probe_module.probe(upload)
    assert watch.events() == 0


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("random", "not a video file: "),
        ("empty", "not a video file: the file is empty"),
        ("truncated", "not a video file: the MP4 index (moov atom) is missing, so the file is truncated or damaged"),
        ("audio", "not a video file: audio only, with no video stream or cover art"),
    ],
)
def test_bad_file_exits_2(media: MediaFactory, out_dir: Path, kind: str, message: str) -> None:
    source = {
        "random": media.random_bytes,
        "empty": media.empty,
        "truncated": lambda: media.truncated(faststart=False),
        "audio": lambda: media.audio_only("m4a"),
    }[kind]()
    run = run_split(source, "--out", str(out_dir), "--json")
    assert run.returncode == 2
    # Random bytes may look like the start of any format, so only the prefix is fixed there.
    if kind == "random":
        assert run.stderr.strip().startswith(f"{source}: {message}")
        assert len(run.stderr.strip().splitlines()) == 1
    else:
        assert run.stderr.strip() == f"{source}: {message}"
    assert run.stdout == ""
    assert not out_dir.exists()


def test_truncated_faststart_mp4_fails(media: MediaFactory, out_dir: Path) -> None:
    # The index survives at the front, so probing works; the media data stops at 40%.
    source = media.truncated(faststart=True)
    run = run_split(source, "--platform", "x", "--out", str(out_dir), "--json")
    assert run.returncode == 2, run.stderr
    assert run.stdout == ""
    last = run.stderr.strip().splitlines()[-1]
    assert f"{source.name}: the file is damaged or truncated: only " in last
    assert "upload the complete file" in last
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_missing_file_exits_2(tmp_path: Path) -> None:
    run = run_split(tmp_path / "nope.mp4")
    assert run.returncode == 2
    assert run.stderr.strip() == f"{tmp_path / 'nope.mp4'}: file not found"


def test_unknown_platform_exits_2(media: MediaFactory, out_dir: Path) -> None:
    run = run_split(media.video(VideoSpec(duration_s=1.0, fps=5)), "--platform", "myspace", "--out", str(out_dir))
    assert run.returncode == 2
    assert run.stderr.strip().startswith("myspace: unknown platform: use one of tiktok, reels, shorts")
