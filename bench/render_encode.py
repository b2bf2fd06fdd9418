"""Encode cost of `viralsplit split` against plain ffmpeg commands with the same settings.

1. CPU seconds (every process, read from RUSAGE_CHILDREN) to render TikTok, Reels and Shorts
   from a 60 s 1080p30 source, divided by one plain ffmpeg command that renders one 9:16
   output. The three platforms share one encode, so the target is 1.15 or less. Three plain
   commands, one per platform, are measured too (about 3.0).
2. Wall time of one rendition through `viralsplit split` divided by the plain command, run
   alternately in the same process so both see the same machine load: the median of the
   per-round ratios, and the ratio of the fastest runs. Target 1.03 or less.

Run: .venv/bin/python bench/render_encode.py [--preset veryfast] [--duration 60] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mediagen import MediaFactory, VideoSpec  # noqa: E402

from viralsplit.config import Config  # noqa: E402


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run `command` to completion; return (CPU seconds of it and its children, wall seconds)."""
    cpu_before, wall_before = children_cpu_s(), time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, **(env or {})})
    return children_cpu_s() - cpu_before, time.perf_counter() - wall_before


def plain_command(source: Path, output: Path, preset: str) -> list[str]:
    """Build a hand-written command for one 9:16 output with the engine's settings (crop, CRF 21, 8 Mb/s cap)."""
    return [
        "ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source),
        "-vf", "scale=3414:1920,crop=1080:1920,setsar=1,format=yuv420p",
        "-c:v", "libx264", "-preset", preset, "-profile:v", "high", "-crf", "21",
        "-maxrate", "8000k", "-bufsize", "16000k",
        "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
        "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000", "-movflags", "+faststart", str(output),
    ]


def split_command(source: Path, out_dir: Path, platforms: list[str]) -> list[str]:
    args = [sys.executable, "-m", "viralsplit", "split", str(source), "--out", str(out_dir), "--json"]
    for platform in platforms:
        args += ["--platform", platform]
    return args


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=Config().x264_preset, help="libx264 preset (default: the Config default)")
    parser.add_argument("--duration", type=float, default=60.0, help="source length in seconds (default 60)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the wall-time pair (default 2)")
    args = parser.parse_args()

    cache = Path(tempfile.gettempdir()) / "viralsplit-bench-media"
    source = MediaFactory(cache).video(VideoSpec(width=1920, height=1080, duration_s=args.duration, fps=30), name="bench1080.mp4")
    env = {"VIRALSPLIT_X264_PRESET": args.preset}
    print(f"source: {args.duration:g} s 1920x1080 30 fps; x264 preset {args.preset}; {os.cpu_count()} CPUs", flush=True)

    with tempfile.TemporaryDirectory(prefix="viralsplit-bench-") as folder:
        work = Path(folder)

        def fresh(name: str) -> Path:
            path = work / name
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir()
            return path

        plain_cpu, _ = measure(plain_command(source, fresh("plain") / "out.mp4", args.preset))
        shared_cpu, _ = measure(split_command(source, fresh("split3"), ["tiktok", "reels", "shorts"]), env)
        three_cpu = 0.0
        for index in range(3):
            cpu, _ = measure(plain_command(source, fresh(f"plain{index}") / "out.mp4", args.preset))
            three_cpu += cpu
        print(f"CPU s: plain one output {plain_cpu:.1f}, viralsplit tiktok+reels+shorts {shared_cpu:.1f}, "
              f"three plain commands {three_cpu:.1f}")
        print(f"CPU ratio viralsplit(3 platforms) / plain(1 output): {shared_cpu / plain_cpu:.3f} (target <= 1.15)")
        print(f"CPU ratio three plain commands / plain(1 output): {three_cpu / plain_cpu:.3f} (expected about 3.0)")

        split_walls, plain_walls = [], []
        for round_number in range(1, args.rounds + 1):
            split_cpu, wall = measure(split_command(source, fresh("split1"), ["tiktok"]), env)
            split_walls.append(wall)
            print(f"round {round_number}: viralsplit wall {wall:.1f} s, CPU {split_cpu:.1f} s", flush=True)
            one_cpu, wall = measure(plain_command(source, fresh("plainw") / "out.mp4", args.preset))
            plain_walls.append(wall)
            print(f"round {round_number}: plain wall {wall:.1f} s, CPU {one_cpu:.1f} s", flush=True)
        # Each round's pair runs back to back, so the per-round ratio cancels most of the
        # load that other work puts on a shared machine; the fastest runs show the floor.
        ratios = [split / plain for split, plain in zip(split_walls, plain_walls)]
        print("wall ratio per round: " + ", ".join(f"{ratio:.3f}" for ratio in ratios))
        print(f"wall ratio viralsplit(1 rendition) / plain, median of rounds: {statistics.median(ratios):.3f} (target <= 1.03)")
        print(f"wall ratio of the fastest runs: {min(split_walls):.1f} / {min(plain_walls):.1f} s = "
              f"{min(split_walls) / min(plain_walls):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
