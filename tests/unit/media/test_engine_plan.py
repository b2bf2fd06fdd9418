"""plan_renditions: shared encodes, parts, keyframes and geometry, without I/O."""

from __future__ import annotations

from fractions import Fraction

import pytest

from viralsplit.errors import InputError
import dataclasses

from viralsplit.media.plan import (
    Plan, PlanOptions, compute_geometry, output_frame_rate, plan_renditions, source_matrix, split_parts,
)
from viralsplit.media.probe import AudioStream, MediaInfo, VideoStream


def make_info(width: int = 1920, height: int = 1080, fps: str = "30/1", duration: float | None = 95.0,
              rotation: int = 0, hdr: str | None = None) -> MediaInfo:
    display = (height, width) if rotation in (90, 270) else (width, height)
    video = VideoStream(
        index=0, codec="h264", width=width, height=height, rotation=rotation, sar="1:1",
        display_width=display[0], display_height=display[1], avg_frame_rate=fps, real_frame_rate=fps,
        pix_fmt="yuv420p", bit_depth=8, color_transfer=None, color_primaries=None, color_space=None,
        hdr=hdr, duration_s=duration,
    )
    audio = AudioStream(index=1, codec="aac", channels=2, sample_rate=48000, default=True, duration_s=duration)
    return MediaInfo("mov,mp4,m4a,3gp,3g2,mj2", "mov", "", duration, 1, video, audio, None)


def test_vertical_platforms_share_one_encode() -> None:
    plan = plan_renditions(make_info(), ["tiktok", "reels", "shorts"], PlanOptions())
    assert len(plan.renditions) == 1
    rendition = plan.renditions[0]
    assert rendition.platforms == ("tiktok", "reels", "shorts")
    assert rendition.label == "TikTok, Reels and Shorts 1080x1920"
    assert (rendition.width, rendition.height) == (1080, 1920)


def test_default_platforms() -> None:
    plan = plan_renditions(make_info(), [], PlanOptions())
    assert plan.renditions[0].platforms == ("tiktok", "reels", "shorts")


def test_different_sizes_separate_renditions() -> None:
    plan = plan_renditions(make_info(), ["tiktok", "x", "youtube", "linkedin", "instagram_feed"], PlanOptions())
    sizes = [(r.width, r.height, r.platforms) for r in plan.renditions]
    assert sizes == [
        (1080, 1920, ("tiktok",)),
        (1280, 720, ("x",)),
        (1920, 1080, ("youtube", "linkedin")),
        (1080, 1350, ("instagram_feed",)),
    ]


def test_duplicate_platforms_ignored() -> None:
    plan = plan_renditions(make_info(), ["x", "x"], PlanOptions())
    assert plan.renditions[0].platforms == ("x",)


def test_95s_in_60s_parts() -> None:
    rendition = plan_renditions(make_info(duration=95.0), ["tiktok"], PlanOptions()).renditions[0]
    parts = rendition.parts_for("tiktok")
    assert [(p.index, p.start_s, p.end_s) for p in parts] == [(1, 0.0, 60.0), (2, 60.0, 95.0)]


def test_part_length_capped_by_platform() -> None:
    plan = plan_renditions(make_info(duration=300.0), ["x", "tiktok"], PlanOptions(part_length_s=200))
    lengths = {p.platform: p.part_length_s for r in plan.renditions for p in r.platform_parts}
    assert lengths == {"x": 140, "tiktok": 200}


def test_keyframes_forced_for_every_length() -> None:
    plan = plan_renditions(make_info(duration=400.0), ["tiktok", "reels"], PlanOptions(part_length_s=200))
    rendition = plan.renditions[0]
    assert rendition.part_lengths == (180, 200)
    expression = rendition.force_key_frames()
    assert expression.startswith("expr:isnan(prev_forced_t)+")
    assert "gte(t,180*(floor(prev_forced_t/180)+1))" in expression
    assert "gte(t,200*(floor(prev_forced_t/200)+1))" in expression


def test_remainder_under_a_frame_joins_last_part() -> None:
    parts = split_parts(60.02, 60.0, 1 / 30)
    assert len(parts) == 1
    assert parts[0].end_s == 60.02


def test_exact_multiple_no_empty_part() -> None:
    parts = split_parts(120.0, 60.0, 1 / 30)
    assert [(p.start_s, p.end_s) for p in parts] == [(0.0, 60.0), (60.0, 120.0)]


def test_short_clip_single_part() -> None:
    parts = split_parts(0.4, 60.0, 0.1)
    assert [(p.index, p.start_s, p.end_s) for p in parts] == [(1, 0.0, 0.4)]


def test_unknown_duration_parts_later() -> None:
    rendition = plan_renditions(make_info(duration=None), ["x"], PlanOptions()).renditions[0]
    assert rendition.duration_s is None
    assert rendition.parts_for("x") == ()
    assert len(rendition.parts_for("x", 130.0)) == 3


@pytest.mark.parametrize(
    ("source", "expected"),
    [("60/1", Fraction(30)), ("50/1", Fraction(25)), ("60000/1001", Fraction(30000, 1001)),
     ("24/1", Fraction(24)), ("120/1", Fraction(30)), ("30/1", Fraction(30))],
)
def test_frame_rate_cap(source: str, expected: Fraction) -> None:
    assert output_frame_rate(make_info(fps=source), 30) == expected


def test_unknown_frame_rate_uses_cap() -> None:
    assert output_frame_rate(make_info(fps="0/0"), 30) == 30


def test_geometry_crop_landscape_to_portrait() -> None:
    geometry = compute_geometry((1920, 1080), 1080, 1920, "crop")
    assert (geometry.cover_width, geometry.cover_height) == (3414, 1920)
    assert (geometry.fit_width, geometry.fit_height) == (1080, 608)


def test_geometry_odd_source_even_sizes() -> None:
    geometry = compute_geometry((501, 313), 1280, 720, "pad")
    for value in (geometry.cover_width, geometry.cover_height, geometry.fit_width, geometry.fit_height):
        assert value % 2 == 0
    assert geometry.cover_width >= 1280
    assert geometry.cover_height >= 720
    assert geometry.fit_width <= 1280
    assert geometry.fit_height <= 720


def test_rotated_source_uses_display_size() -> None:
    rendition = plan_renditions(make_info(rotation=90), ["tiktok"], PlanOptions()).renditions[0]
    geometry = rendition.geometry
    assert (geometry.cover_width, geometry.cover_height) == (1080, 1920)


def test_hdr_sets_tone_map() -> None:
    rendition = plan_renditions(make_info(hdr="pq"), ["x"], PlanOptions()).renditions[0]
    assert rendition.tone_map


@pytest.mark.parametrize("options", [PlanOptions(fill="stretch"), PlanOptions(part_length_s=0.5), PlanOptions(part_length_s=float("nan"))])
def test_invalid_options(options: PlanOptions) -> None:
    with pytest.raises(InputError):
        plan_renditions(make_info(), ["x"], options)


def test_unknown_platform() -> None:
    with pytest.raises(InputError, match="unknown platform: use one of tiktok"):
        plan_renditions(make_info(), ["myspace"], PlanOptions())


def test_plan_json_round_trip() -> None:
    plan = plan_renditions(make_info(), ["tiktok", "reels", "x"], PlanOptions(fill="blur", part_length_s=30))
    assert Plan.from_json(plan.to_json()) == plan
    assert plan.renditions[0].key == "1080x1920-30fps-crf21-max8000k-a128k-blur"


@pytest.mark.parametrize(
    ("width", "height", "space", "expected"),
    [(1920, 1080, None, None), (720, 480, None, "bt601"), (1920, 1080, "bt709", None),
     (1920, 1080, "smpte170m", "smpte170m"), (720, 576, "bt470bg", "bt470"), (3840, 2160, "bt2020nc", "bt2020"),
     (640, 360, "bt709", None)],
)
def test_matrix_conversion_only_when_needed(width: int, height: int, space: str | None, expected: str | None) -> None:
    info = make_info(width=width, height=height)
    info = dataclasses.replace(info, video=dataclasses.replace(info.video, color_space=space))
    assert source_matrix(info) == expected


def test_hdr_skips_swscale_matrix() -> None:
    info = make_info(hdr="pq")
    info = dataclasses.replace(info, video=dataclasses.replace(info.video, color_space="bt2020nc"))
    rendition = plan_renditions(info, ["x"], PlanOptions()).renditions[0]
    assert rendition.convert_matrix is None
