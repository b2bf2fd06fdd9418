"""Pick the default --max-jobs: the same batch of renders run 1 at a time and 2 at a time.

    .venv/bin/python bench/server_max_jobs.py [--mode server|ffmpeg] [--preset veryfast]

`--mode server` (the default) starts a real server with --max-jobs 1, then 2, and uploads a
20 s 640x360 25 fps clip for TikTok, Instagram feed 4:5, Instagram square and X: four
distinct renditions, so four render jobs with the whole pipeline (encode, cut, verify,
thumbnail). `--mode ffmpeg` runs four bare ffmpeg encodes of the same clip to 1080x1920
instead. Each batch reports its wall time (throughput) and the mean time from the batch
start to each job's end (what a user waiting for one job sees), and the ratios of both.
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


PLATFORMS = ["tiktok", "instagram_feed", "instagram_square", "x"]


def children_cpu_seconds(pid: int) -> float:
    """CPU time of the reaped children of a process (fields 16 and 17 of /proc/PID/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def run_server_batch(source: Path, folder: Path, parallel: int, preset: str) -> tuple[float, float]:
    import httpx

    from servers import ServerFactory

    factory = ServerFactory(folder / f"server-{parallel}")
    try:
        server = factory.start(max_jobs=parallel, env={"VIRALSPLIT_X264_PRESET": preset})
        client = httpx.Client(base_url=server.url, timeout=60)
        project = client.post("/api/projects", json={"title": "bench", "platforms": PLATFORMS}).json()
        headers = {"Authorization": f"Bearer {project['editor_token']}"}
        client.put(f"/api/projects/{project['id']}/source", content=source.read_bytes(), headers=headers).raise_for_status()
        while True:
            jobs = client.get(f"/api/projects/{project['id']}", headers=headers).json()["jobs"]
            renders = [job for job in jobs if job["kind"] == "render"]
            if jobs and jobs[0]["state"] == "failed":
                raise RuntimeError(f"ingest failed: {jobs[0]['error']}")
            if len(renders) == len(PLATFORMS) and all(job["ended_at"] for job in renders):
                break
            time.sleep(0.2)
        media_cpu_s = children_cpu_seconds(server.pid)
        client.close()
    finally:
        factory.close()
    failed = [job for job in renders if job["state"] != "succeeded"]
    if failed:
        raise RuntimeError(f"renders did not succeed: {failed}")
    started = min(job["started_at"] for job in renders)
    ends = [job["ended_at"] - started for job in renders]
    print(f"max-jobs {parallel}: media tools used {media_cpu_s:.0f} CPU s in {max(ends):.0f} s, {media_cpu_s / max(ends):.2f} cores on average")
    return max(ends), statistics.mean(ends)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("server", "ffmpeg"), default="server")
    parser.add_argument("--jobs", type=int, default=4, help="encodes per batch in ffmpeg mode")
    parser.add_argument("--preset", default="veryfast", help="libx264 preset (the server's default is veryfast)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="viralsplit-bench-") as folder:
        base = Path(folder)
        source = MediaFactory(base).video(VideoSpec(width=640, height=360, duration_s=20.0, fps=25))
        results = {}
        load_before = os.getloadavg()[0]
        for parallel in (1, 2):
            if args.mode == "server":
                results[parallel] = run_server_batch(source, base, parallel, args.preset)
            else:
                results[parallel] = run_batch(source, base, args.jobs, parallel, args.preset)
            print(f"max-jobs {parallel}: batch {results[parallel][0]:.1f} s, mean job latency {results[parallel][1]:.1f} s")
    print(f"cores                 {os.cpu_count()}, 1-minute load average before: {load_before:.1f}")
    print(f"batch time 2 / 1      {results[2][0] / results[1][0]:.2f}")
    print(f"mean latency 2 / 1    {results[2][1] / results[1][1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
