"""parse_probe: ffprobe JSON into MediaInfo, without running ffprobe."""

from __future__ import annotations

from typing import Any

import pytest

from viralsplit.errors import NoVideoStreamError, UnsupportedFormatError
from viralsplit.media.probe import MediaInfo, parse_probe

MP4 = "mov,mp4,m4a,3gp,3g2,mj2"


def video(index: int = 0, width: int = 1920, height: int = 1080, **extra: Any) -> dict[str, Any]:
    stream = {"index": index, "codec_type": "video", "codec_name": "h264", "width": width, "height": height,
              "avg_frame_rate": "30/1", "r_frame_rate": "30/1", "pix_fmt": "yuv420p", "duration": "10.0",
              "disposition": {"default": 1, "attached_pic": 0}}
    stream.update(extra)
    return stream


def audio(index: int = 1, default: int = 0, **extra: Any) -> dict[str, Any]:
    stream = {"index": index, "codec_type": "audio", "codec_name": "aac", "channels": 2, "sample_rate": "44100",
              "duration": "10.0", "disposition": {"default": default}}
    stream.update(extra)
    return stream


def probe_json(*streams: dict[str, Any], format_name: str = MP4, duration: str | None = "10.0") -> dict[str, Any]:
    fmt = {"format_name": format_name, "format_long_name": "x", "size": "1000"}
    if duration is not None:
        fmt["duration"] = duration
    return {"format": fmt, "streams": list(streams)}


@pytest.mark.parametrize(
    ("side_data", "rotation"),
    [(90, 270), (-90, 90), (180, 180), (270, 90), (-270, 270), (0, 0)],
)
def test_rotation_side_data(side_data: int, rotation: int) -> None:
    stream = video(side_data_list=[{"side_data_type": "Display Matrix", "rotation": side_data}])
    info = parse_probe(probe_json(stream), "clip.mp4")
    assert info.video is not None
    assert info.video.rotation == rotation
    expected = (1080, 1920) if rotation in (90, 270) else (1920, 1080)
    assert info.display_size == expected


def test_legacy_rotate_tag() -> None:
    info = parse_probe(probe_json(video(tags={"rotate": "90"})), "clip.mp4")
    assert info.video.rotation == 90
    assert info.display_size == (1080, 1920)


def test_sample_aspect_ratio() -> None:
    info = parse_probe(probe_json(video(width=720, height=480, sample_aspect_ratio="32:27")), "dvd.mp4")
    assert info.video.sar == "32:27"
    assert info.display_size == (853, 480)


def test_sar_then_rotation() -> None:
    stream = video(width=720, height=480, sample_aspect_ratio="32:27",
                   side_data_list=[{"rotation": -90}])
    info = parse_probe(probe_json(stream), "dvd.mp4")
    assert info.display_size == (480, 853)


def test_invalid_sar_treated_square() -> None:
    info = parse_probe(probe_json(video(sample_aspect_ratio="0:1")), "clip.mp4")
    assert info.video.sar == "1:1"


def test_attached_pic_is_cover_not_video() -> None:
    cover = video(index=0, width=300, height=300, codec_name="png", disposition={"default": 0, "attached_pic": 1})
    real = video(index=1, width=640, height=360, disposition={"default": 0, "attached_pic": 0})
    info = parse_probe(probe_json(cover, real, audio(index=2)), "clip.mp4")
    assert info.video.index == 1
    assert info.cover_art.index == 0
    assert not info.is_still


def test_audio_with_cover_is_still() -> None:
    cover = video(index=1, width=500, height=500, codec_name="mjpeg", disposition={"attached_pic": 1})
    info = parse_probe(probe_json(audio(index=0), cover, format_name="mp3"), "song.mp3")
    assert info.video is None
    assert info.is_still
    assert info.display_size == (500, 500)
    assert info.video_duration_s == 10.0


def test_default_audio_chosen() -> None:
    info = parse_probe(probe_json(video(), audio(index=1), audio(index=2, default=1)), "clip.mp4")
    assert info.audio.index == 2


def test_first_audio_without_default() -> None:
    info = parse_probe(probe_json(video(), audio(index=1), audio(index=2)), "clip.mp4")
    assert info.audio.index == 1


def test_no_audio() -> None:
    info = parse_probe(probe_json(video()), "clip.mp4")
    assert not info.has_audio


def test_hdr_transfer() -> None:
    pq = parse_probe(probe_json(video(color_transfer="smpte2084", pix_fmt="yuv420p10le")), "hdr.mp4")
    hlg = parse_probe(probe_json(video(color_transfer="arib-std-b67")), "hlg.mp4")
    sdr = parse_probe(probe_json(video(color_transfer="bt709")), "sdr.mp4")
    assert pq.video.hdr == "pq"
    assert pq.video.bit_depth == 10
    assert hlg.video.hdr == "hlg"
    assert sdr.video.hdr is None
    assert sdr.video.bit_depth == 8


def test_unknown_duration() -> None:
    stream = video()
    del stream["duration"]
    info = parse_probe(probe_json(stream, format_name="h264", duration=None), "raw.h264")
    assert info.duration_s is None
    assert info.video_duration_s is None
    assert info.demuxer == "h264"


def test_matroska_duration_tag() -> None:
    stream = video(tags={"DURATION": "00:00:01.500000000"})
    del stream["duration"]
    info = parse_probe(probe_json(stream, format_name="matroska,webm", duration="2.0"), "clip.mkv")
    assert info.video_duration_s == 1.5


def test_frame_rate_fallback() -> None:
    info = parse_probe(probe_json(video(avg_frame_rate="0/0", r_frame_rate="25/1")), "clip.mp4")
    assert info.video.avg_frame_rate is None
    assert info.video.fps == 25


@pytest.mark.parametrize("format_name", ["hls", "concat", "image2", "lavfi", "tty", ""])
def test_format_not_allowed(format_name: str) -> None:
    with pytest.raises(UnsupportedFormatError, match="^clip.mp4: unsupported format"):
        parse_probe(probe_json(video(), format_name=format_name), "clip.mp4")


def test_no_video_stream() -> None:
    with pytest.raises(NoVideoStreamError) as caught:
        parse_probe(probe_json(format_name="mp3"), "clip.mp4")
    assert str(caught.value) == "clip.mp4: not a video file: no video stream found"


def test_audio_only() -> None:
    with pytest.raises(NoVideoStreamError, match="audio only"):
        parse_probe(probe_json(audio(index=0), format_name=MP4), "song.m4a")


def test_json_round_trip() -> None:
    cover = video(index=2, width=300, height=300, disposition={"attached_pic": 1})
    info = parse_probe(probe_json(video(side_data_list=[{"rotation": 90}]), audio(), cover), "clip.mp4")
    assert MediaInfo.from_json(info.to_json()) == info
