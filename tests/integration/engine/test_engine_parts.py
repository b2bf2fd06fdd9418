"""Long sources split into parts: contiguous, each within the part length, starting on real frames."""

from __future__ import annotations

import subprocess
from pathlib import Path

from checks import check_output, ffprobe
from conftest import run_split
from mediagen import MediaFactory


def frame_lumas(path: Path, frames: int, start_s: float = 0.0) -> list[float]:
    """Mean luma (YAVG) of `frames` frames of `path` from `start_s`."""
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", f"{start_s}", "-i", str(path), "-frames:v", str(frames),
         "-vf", "signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )
    return [float(line.split("=")[1]) for line in result.stdout.splitlines() if "YAVG" in line]


def test_95s_into_60s_parts(media: MediaFactory, out_dir: Path) -> None:
    fps = 5
    source = media.luma_ramp(95.0, fps=fps)
    run = run_split(source, "--platform", "x", "--part-length", "60", "--out", str(out_dir), "--json")
    outputs = run.outputs
    frame_s = 1 / fps

    assert [(o["part"], o["parts"]) for o in outputs] == [(1, 2), (2, 2)]
    first, second = (Path(o["path"]) for o in outputs)
    check_output(first, width=1280, height=720, duration_s=60.0, frame_s=frame_s, thumbnail=Path(outputs[0]["thumbnail"]))
    check_output(second, width=1280, height=720, duration_s=35.0, frame_s=frame_s, thumbnail=Path(outputs[1]["thumbnail"]))

    video_durations = [float(next(s for s in ffprobe(p)["streams"] if s["codec_type"] == "video")["duration"]) for p in (first, second)]
    assert video_durations[0] <= 60.0 + 1e-3
    assert video_durations[1] <= 60.0 + 1e-3
    assert abs(sum(video_durations) - 95.0) <= frame_s + 1e-3

    # Part 2 starts on source frame 300 (t = 60 s): not black, not a repeat of part 1's end.
    source_at_cut = frame_lumas(source, 2, start_s=60.0)
    part_two = frame_lumas(second, 2)
    part_one_end = frame_lumas(first, 1, start_s=60.0 - frame_s)
    assert abs(part_two[0] - source_at_cut[0]) < 2.5, (part_two, source_at_cut)
    assert part_two[0] > 30
    assert abs(part_two[0] - part_one_end[0]) > 2.5, (part_two, part_one_end)
    assert abs(part_two[1] - part_two[0]) > 2.5


def test_parts_exact_with_b_frames(media: MediaFactory, out_dir: Path) -> None:
    # veryfast encodes with B-frames unless the engine turns them off for a split rendition;
    # with them, ffmpeg's segment muxer starts part 1 late and moves audio into part 2.
    fps = 10
    source = media.luma_ramp(8.0, fps=fps)
    run = run_split(source, "--platform", "x", "--part-length", "4", "--out", str(out_dir), "--json",
                    env={"VIRALSPLIT_X264_PRESET": "veryfast"})
    frame_s = 1 / fps

    assert [(o["part"], o["parts"]) for o in run.outputs] == [(1, 2), (2, 2)]
    for output in run.outputs:
        path = Path(output["path"])
        check_output(path, width=1280, height=720, duration_s=4.0, frame_s=frame_s, thumbnail=Path(output["thumbnail"]))
        streams = {s["codec_type"]: s for s in ffprobe(path)["streams"]}
        assert float(streams["video"]["start_time"]) < frame_s, (path.name, streams["video"]["start_time"])
        assert abs(float(streams["video"]["duration"]) - 4.0) <= 1e-3, (path.name, streams["video"]["duration"])
        assert abs(float(streams["audio"]["duration"]) - 4.0) <= frame_s, (path.name, streams["audio"]["duration"])
