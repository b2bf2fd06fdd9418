"""Pure parts of output checking and the CLI progress line: no processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from viralsplit.local import format_progress_line
from viralsplit.media.plan import Plan, PlanOptions, plan_renditions
from viralsplit.media.presets import PRESETS, get_preset
from viralsplit.media.probe import MediaInfo, parse_probe
from viralsplit.media.progress import Progress
from viralsplit.media.render import safe_stem
from viralsplit.media.verify import Expected, check_probe, moov_before_mdat


def good_output() -> dict[str, Any]:
    return {
        "format": {"duration": "10.010"},
        "streams": [
            {"codec_type": "video", "codec_name": "h264", "profile": "High", "width": 1080, "height": 1920,
             "pix_fmt": "yuv420p", "sample_aspect_ratio": "1:1", "color_primaries": "bt709",
             "color_transfer": "bt709", "color_space": "bt709", "duration": "10.000"},
            {"codec_type": "audio", "codec_name": "aac", "channels": 2, "sample_rate": "48000", "duration": "10.010"},
        ],
    }


EXPECTED = Expected(width=1080, height=1920, duration_s=10.0, tolerance_s=1 / 30)


def test_conforming_output_passes() -> None:
    assert check_probe(good_output(), EXPECTED) == []


def test_each_rule_reported() -> None:
    data = good_output()
    video, audio = data["streams"]
    video.update(width=1078, profile="Constrained Baseline", pix_fmt="yuv420p10le", sample_aspect_ratio="4:3",
                 color_transfer="smpte2084", side_data_list=[{"rotation": 90}], duration="12.0")
    audio.update(codec_name="opus", channels=6, sample_rate="44100")
    data["streams"].append({"codec_type": "subtitle"})
    problems = check_probe(data, EXPECTED)
    text = "; ".join(problems)
    for fragment in ("size 1078x1920", "Constrained Baseline", "yuv420p10le", "sample aspect ratio 4:3",
                     "color_transfer smpte2084", "rotation flag", "video duration 12.000", "audio codec opus",
                     "6 audio channels", "sample rate 44100", "subtitle"):
        assert fragment in text


def test_duration_allows_one_frame() -> None:
    data = good_output()
    data["streams"][0]["duration"] = "10.033"
    assert check_probe(data, EXPECTED) == []
    data["streams"][0]["duration"] = "10.050"
    assert check_probe(data, EXPECTED) != []


def atom(kind: bytes, payload: bytes = b"") -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def test_moov_before_mdat(tmp_path: Path) -> None:
    faststart = tmp_path / "fast.mp4"
    faststart.write_bytes(atom(b"ftyp", b"isom") + atom(b"moov", b"x" * 10) + atom(b"mdat", b"y" * 100))
    slow = tmp_path / "slow.mp4"
    slow.write_bytes(atom(b"ftyp", b"isom") + atom(b"mdat", b"y" * 100) + atom(b"moov", b"x" * 10))
    assert moov_before_mdat(faststart)
    assert not moov_before_mdat(slow)


def test_progress_line_known() -> None:
    line = format_progress_line("X 1280x720", Progress(stage="render", fraction=0.5, speed=2.0, eta_s=75.0), tick=1, width=10)
    assert line == "X 1280x720 [#####-----]  50%  2.0x  ETA 1:15"


def test_progress_line_unknown() -> None:
    line = format_progress_line("X", Progress(stage="render", fraction=None, speed=1.5, out_time_s=3.25), tick=2, width=10)
    assert "<=>" in line
    assert "%" not in line
    assert "3.2 s done" in line or "3.3 s done" in line
    assert "1.5x" in line


def test_progress_marker_moves_and_stays_inside() -> None:
    lines = {format_progress_line("X", Progress(stage="render"), tick=tick, width=10) for tick in range(40)}
    assert len(lines) > 1
    assert all(len(line) == len(next(iter(lines))) for line in lines)


def test_safe_stem() -> None:
    assert safe_stem("it's my clip & more") == "it_s_my_clip_more"
    assert safe_stem("../..") == "video"
    assert safe_stem("-rf") == "-rf"
    assert safe_stem("clip.v2") == "clip.v2"


def test_presets_sizes_and_json() -> None:
    assert (PRESETS["tiktok"].width, PRESETS["tiktok"].height) == (1080, 1920)
    assert (PRESETS["instagram_feed"].width, PRESETS["instagram_feed"].height) == (1080, 1350)
    assert (PRESETS["instagram_square"].width, PRESETS["instagram_square"].height) == (1080, 1080)
    assert (PRESETS["youtube"].width, PRESETS["youtube"].height) == (1920, 1080)
    for preset in PRESETS.values():
        assert preset.width % 2 == 0
        assert preset.height % 2 == 0
        assert json.loads(json.dumps(preset.to_json()))["name"] == preset.name
    assert get_preset("reels").label == "Reels"


def test_plan_and_info_survive_json() -> None:
    stream = {"index": 0, "codec_type": "video", "codec_name": "h264", "width": 640, "height": 360,
              "avg_frame_rate": "25/1", "duration": "95.0", "disposition": {"default": 1}}
    info = parse_probe({"format": {"format_name": "matroska,webm", "duration": "95.0"}, "streams": [stream]}, "a.mkv")
    assert MediaInfo.from_json(json.loads(json.dumps(info.to_json()))) == info
    plan = plan_renditions(info, ["tiktok", "x"], PlanOptions(fill="pad"))
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))) == plan
