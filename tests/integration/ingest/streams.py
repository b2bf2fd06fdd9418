"""Media streams for ingest tests: HLS and DASH output written by ffmpeg, and a stream probe."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def run_ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True, capture_output=True)


def probe_codec_types(path: Path) -> list[str]:
    command = ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0", str(path)]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()


def make_aes_hls(clip: Path, folder: Path, key_uri: str) -> None:
    """Write an AES-128 encrypted HLS stream; yt-dlp without pycryptodomex hands it to ffmpeg."""
    folder.mkdir()
    (folder / "enc.key").write_bytes(os.urandom(16))
    (folder / "keyinfo").write_text(f"{key_uri}\n{folder / 'enc.key'}\n")
    run_ffmpeg("-i", str(clip), "-c", "copy", "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
               "-hls_key_info_file", str(folder / "keyinfo"), "-hls_segment_filename", str(folder / "seg%d.ts"),
               str(folder / "index.m3u8"))
    (folder / "keyinfo").unlink()


def probe_video_height(path: Path) -> int:
    command = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=height", "-of", "csv=p=0", str(path)]
    return int(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip())
