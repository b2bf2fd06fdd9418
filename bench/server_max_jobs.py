"""Pick the default --max-jobs: the same batch of encodes run 1 at a time and 2 at a time.

    .venv/bin/python bench/server_max_jobs.py [--jobs 4] [--preset veryfast]

Each job encodes a 20 s 640x360 25 fps clip to a 1080x1920 TikTok-style frame (scale, crop,
libx264 CRF 21 with the given preset, AAC 128k), the shape of the server's render jobs. The
batch runs once with at most one encode at a time and once with two; the benchmark prints
the batch's wall time (throughput) and the mean time from batch start to each job's end
(what a user waiting for one job sees), with the ratio of each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mediagen import MediaFactory, VideoSpec  # noqa: E402


def encode(source: Path, target: Path, preset: str) -> float:
    """Run one encode; return the second (time.monotonic) at which it ended."""
    command = [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source),
        "-vf", "scale=3414:1920,crop=1080:1920,setsar=1,format=yuv420p",
        "-c:v", "libx264", "-preset", preset, "-crf", "21", "-maxrate", "8000k", "-bufsize", "16000k",
        "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(target),
    ]
    subprocess.run(command, check=True, start_new_session=True)
    return time.monotonic()


def run_batch(source: Path, folder: Path, jobs: int, parallel: int, preset: str) -> tuple[float, float]:
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        ends = list(pool.map(lambda index: encode(source, folder / f"out-{parallel}-{index}.mp4", preset), range(jobs)))
    wall = time.monotonic() - started
    mean_latency = statistics.mean(end - started for end in ends)
    return wall, mean_latency


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--preset", default="veryfast", help="libx264 preset (the server's default is veryfast)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="viralsplit-bench-") as folder:
        base = Path(folder)
        source = MediaFactory(base).video(VideoSpec(width=640, height=360, duration_s=20.0, fps=25))
        results = {}
        for parallel in (1, 2):
            results[parallel] = run_batch(source, base, args.jobs, parallel, args.preset)
            print(f"max-jobs {parallel}: batch {results[parallel][0]:.1f} s, mean job latency {results[parallel][1]:.1f} s")
    print(f"cores                 {os.cpu_count()}")
    print(f"batch time 2 / 1      {results[2][0] / results[1][0]:.2f}")
    print(f"mean latency 2 / 1    {results[2][1] / results[1][1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
