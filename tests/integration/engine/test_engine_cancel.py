"""Stopping a render: Ctrl-C and SIGTERM on the CLI, task cancellation and renice in-process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import split_command
from mediagen import MediaFactory, VideoSpec
from processes import children_of, is_alive, nice_of, start_ticks

from viralsplit.media.ffmpeg import renice_process_group
from viralsplit.media.plan import PlanOptions, plan_renditions
from viralsplit.media.probe import probe
from viralsplit.media.progress import Progress
from viralsplit.media.render import RenderSettings, render_rendition

# Seconds to wait for a render to start or to stop.
WAIT_S = 60.0


def wait_until(predicate, description: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {description}")
        time.sleep(0.05)
    return value


@pytest.fixture(scope="module")
def slow_source(media: MediaFactory) -> Path:
    """8 s at 30 fps: its 1080x1920 encode at the medium preset runs for many seconds."""
    return media.video(VideoSpec(width=720, height=1280, duration_s=8.0, fps=30), name="slow.mp4")


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_cli_interrupt_cleans_up(slow_source: Path, tmp_path: Path, signum: int, exit_code: int) -> None:
    out_dir = tmp_path / "clips"
    process = subprocess.Popen(
        split_command(slow_source, "--platform", "tiktok", "--out", str(out_dir)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "VIRALSPLIT_X264_PRESET": "medium"},
    )
    try:
        encoder = wait_until(lambda: children_of(process.pid), "ffmpeg to start")
        wait_until(lambda: list(out_dir.glob(".viralsplit-work-*/rendition.mp4")), "a partial rendition file")
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == exit_code, stderr
    assert "partial files deleted" in stderr
    assert not any(is_alive(child) for child in encoder)
    assert not out_dir.exists() or list(out_dir.rglob("*")) == []


async def _plan_one(source: Path, platform: str = "tiktok"):
    info = await probe(source)
    return info, plan_renditions(info, [platform], PlanOptions()).renditions[0]


async def test_cancel_task_stops_ffmpeg(slow_source: Path, tmp_path: Path) -> None:
    info, rendition = await _plan_one(slow_source)
    work_dir, out_dir = tmp_path / "work", tmp_path / "out"
    pids: list[int] = []
    progress: list[Progress] = []
    task = asyncio.create_task(
        render_rendition(slow_source, info, rendition, work_dir=work_dir, out_dir=out_dir,
                         settings=RenderSettings(x264_preset="medium"), on_progress=progress.append,
                         on_process=pids.append)
    )
    deadline = time.monotonic() + WAIT_S
    while not any(p.frames for p in progress):
        assert time.monotonic() < deadline, "no progress from ffmpeg"
        await asyncio.sleep(0.05)
    pid = pids[0]
    process = (pid, start_ticks(pid))

    # The scheduler maps priority to the nice value of the whole process group.
    assert renice_process_group(pid, 15)
    assert nice_of(pid) == 15

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not is_alive(process)
    assert not work_dir.exists()
    assert list(out_dir.iterdir()) == []


async def test_progress_fraction_monotonic(media: MediaFactory, tmp_path: Path) -> None:
    source = media.video(VideoSpec(duration_s=2.0, fps=10))
    info, rendition = await _plan_one(source, "x")
    progress: list[Progress] = []
    await render_rendition(source, info, rendition, work_dir=tmp_path / "work", out_dir=tmp_path / "out",
                           settings=RenderSettings(x264_preset="ultrafast"), on_progress=progress.append)
    fractions = [p.fraction for p in progress if p.stage == "render"]
    assert all(f is not None for f in fractions)
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert [p.fraction for p in progress if p.stage == "thumbnail"] == [1.0]


async def test_progress_unknown_for_raw_h264(media: MediaFactory, tmp_path: Path) -> None:
    source = media.raw_h264(duration_s=1.0)
    info, rendition = await _plan_one(source, "x")
    assert info.duration_s is None
    progress: list[Progress] = []
    outputs = await render_rendition(source, info, rendition, work_dir=tmp_path / "work", out_dir=tmp_path / "out",
                                     settings=RenderSettings(x264_preset="ultrafast"), on_progress=progress.append)
    render = [p for p in progress if p.stage == "render"]
    assert render
    assert all(p.fraction is None and p.eta_s is None for p in render)
    assert any(p.out_time_s for p in render)
    assert len(outputs) == 1
