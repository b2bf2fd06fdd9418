"""A render whose result breaks an output rule fails with a message naming the output."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from mediagen import MediaFactory, VideoSpec

from viralsplit.errors import VerifyError
from viralsplit.media.plan import PlanOptions, plan_renditions
from viralsplit.media.probe import probe
from viralsplit.media.render import RenderSettings, render_rendition


async def test_wrong_duration_fails_verify(media: MediaFactory, tmp_path: Path) -> None:
    source = media.video(VideoSpec(duration_s=1.0, fps=10))
    info = await probe(source)
    rendition = plan_renditions(info, ["x"], PlanOptions()).renditions[0]
    # A plan that expects 1.5 s from a 1 s source: the encode cannot match it. The gap stays
    # under the truncated-source check's 1 s, so the output check is what catches it.
    wrong = dataclasses.replace(rendition, duration_s=1.5)
    out_dir = tmp_path / "out"
    with pytest.raises(VerifyError) as caught:
        await render_rendition(source, info, wrong, work_dir=tmp_path / "work", out_dir=out_dir,
                               settings=RenderSettings(x264_preset="ultrafast"), output_stem="clip")
    message = str(caught.value)
    assert message.startswith("clip-x.mp4: output check failed: ")
    assert "video duration 1.000 s, planned 1.500 s" in message
    assert not (tmp_path / "work").exists()
    assert list(out_dir.iterdir()) == []
