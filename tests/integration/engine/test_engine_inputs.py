"""Real inputs through `viralsplit split`: every output checked against every output rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from checks import ffprobe
from conftest import check_all, run_split
from mediagen import MediaFactory, VideoSpec

from viralsplit.media.presets import PRESETS

ALL_PLATFORMS = [arg for name in PRESETS for arg in ("--platform", name)]


@pytest.mark.parametrize(
    ("size", "fill"),
    [((720, 1280), "crop"), ((1080, 1080), "pad"), ((720, 1280), "blur")],
    ids=["portrait-crop", "square-pad", "portrait-blur"],
)
def test_every_preset(media: MediaFactory, out_dir: Path, size: tuple[int, int], fill: str) -> None:
    source = media.video(VideoSpec(width=size[0], height=size[1], duration_s=1.0, fps=5))
    run = run_split(source, *ALL_PLATFORMS, "--fill", fill, "--out", str(out_dir), "--json")
    outputs = run.outputs
    assert sorted(o["platform"] for o in outputs) == sorted(PRESETS)
    check_all(outputs, duration_s=1.0)


def test_shared_rendition_one_encode(media: MediaFactory, out_dir: Path) -> None:
    source = media.video(VideoSpec(duration_s=1.0, fps=5))
    run = run_split(source, "--out", str(out_dir), "--json")
    outputs = run.outputs
    assert [o["platform"] for o in outputs] == ["tiktok", "reels", "shorts"]
    # One encode: the three files are the same file, published under three names.
    inodes = {Path(o["path"]).stat().st_ino for o in outputs}
    assert len(inodes) == 1
    assert run.stderr.count("TikTok, Reels and Shorts 1080x1920 [") >= 1
    check_all(outputs, duration_s=1.0)


def test_odd_size_vp9_webm(media: MediaFactory, out_dir: Path) -> None:
    source = media.video(VideoSpec(width=501, height=313, duration_s=1.0, fps=5, container="webm",
                                   vcodec="libvpx-vp9", acodec="libopus"))
    run = run_split(source, "--platform", "x", "--platform", "tiktok", "--out", str(out_dir), "--json")
    check_all(run.outputs, duration_s=1.0)


def test_anamorphic_sar(media: MediaFactory, out_dir: Path) -> None:
    # 720x480 with 32:27 pixels is displayed as 853x480 (16:9), so pad fits it without bars
    # at the sides in a 16:9 frame.
    source = media.video(VideoSpec(width=720, height=480, duration_s=1.0, fps=5, sar="32:27"))
    assert ffprobe(source)["streams"][0]["sample_aspect_ratio"] == "32:27"
    run = run_split(source, "--platform", "x", "--fill", "pad", "--out", str(out_dir), "--json")
    outputs = run.outputs
    check_all(outputs, duration_s=1.0)
    # A 16:9 display fills the 16:9 frame: no black pad at the left edge.
    assert _column_luma(Path(outputs[0]["path"]), x=4) > 40


def _column_luma(path: Path, x: int) -> float:
    import subprocess

    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-vf", f"crop=4:ih:{x}:0,signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-",
         "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )
    values = [float(line.split("=")[1]) for line in result.stdout.splitlines() if "YAVG" in line]
    return values[0]


def test_no_audio_gets_silent_track(media: MediaFactory, out_dir: Path) -> None:
    source = media.video(VideoSpec(duration_s=1.0, fps=5, audio=False))
    run = run_split(source, "--platform", "x", "--out", str(out_dir), "--json")
    check_all(run.outputs, duration_s=1.0)


@pytest.mark.parametrize("container", ["mp3", "m4a"])
def test_audio_with_cover_renders_still(media: MediaFactory, out_dir: Path, container: str) -> None:
    source = media.audio_with_cover(container, duration_s=1.5)
    run = run_split(source, "--platform", "x", "--out", str(out_dir), "--json")
    outputs = run.outputs
    check_all(outputs, duration_s=None)
    assert abs(outputs[0]["duration_s"] - 1.5) < 0.1


def test_cover_stream_beside_real_video(media: MediaFactory, out_dir: Path) -> None:
    source = media.video_with_cover_stream(duration_s=1.0)
    run = run_split(source, "--platform", "x", "--out", str(out_dir), "--json")
    outputs = run.outputs
    check_all(outputs, duration_s=1.0)
    # The cover is solid red; the real video (testsrc2) has many colours. A red frame would
    # have a very low luma spread.
    assert _luma_spread(Path(outputs[0]["path"])) > 30


def _luma_spread(path: Path) -> float:
    import subprocess

    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-vf",
         "signalstats,metadata=print:file=-", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )
    stats = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return float(stats["lavfi.signalstats.YMAX"]) - float(stats["lavfi.signalstats.YMIN"])


def test_mkv_subtitles_dropped(media: MediaFactory, out_dir: Path) -> None:
    source = media.mkv_with_subtitles(duration_s=1.0)
    kinds = [s["codec_type"] for s in ffprobe(source)["streams"]]
    assert "subtitle" in kinds
    run = run_split(source, "--platform", "x", "--out", str(out_dir), "--json")
    check_all(run.outputs, duration_s=1.0)


def test_very_short_clip(media: MediaFactory, out_dir: Path) -> None:
    source = media.video(VideoSpec(duration_s=0.4, fps=10))
    run = run_split(source, "--platform", "x", "--out", str(out_dir), "--json")
    check_all(run.outputs, duration_s=0.4)


def test_raw_h264_without_duration(media: MediaFactory, out_dir: Path) -> None:
    source = media.raw_h264(duration_s=1.0, fps=10)
    assert "duration" not in ffprobe(source)["format"]
    run = run_split(source, "--platform", "x", "--out", str(out_dir), "--json")
    outputs = run.outputs
    check_all(outputs, duration_s=None)
    assert abs(outputs[0]["duration_s"] - 1.0) <= 0.1 + 1024 / 48000
    # The bar is indeterminate: no percent, a moving marker.
    assert "<=>" in run.stderr
    assert "%" not in run.stderr


def test_hdr_pq_is_tone_mapped(media: MediaFactory, out_dir: Path) -> None:
    source = media.hdr_pq(duration_s=1.0)
    assert ffprobe(source)["streams"][0]["color_transfer"] == "smpte2084"
    run = run_split(source, "--platform", "x", "--out", str(out_dir), "--json")
    check_all(run.outputs, duration_s=1.0)


def test_file_name_with_quote_spaces_ampersand(media: MediaFactory, out_dir: Path) -> None:
    source = media.copy_as(media.video(VideoSpec(duration_s=1.0, fps=5)), "it's my clip & more.mp4")
    run = run_split(source, "--platform", "x", "--out", str(out_dir), "--json")
    outputs = run.outputs
    check_all(outputs, duration_s=1.0)
    assert Path(outputs[0]["path"]).name == "it_s_my_clip_more-x.mp4"


def test_plain_output_lists_paths(media: MediaFactory, out_dir: Path) -> None:
    source = media.video(VideoSpec(duration_s=1.0, fps=5))
    run = run_split(source, "--platform", "x", "--out", str(out_dir))
    assert run.returncode == 0, run.stderr
    assert str(out_dir / "video") in run.stdout or str(out_dir) in run.stdout
    assert "x: " in run.stdout
