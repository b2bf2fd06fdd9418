"""Cancel latency: from the cancel request to the ffmpeg process reaped and its partial files gone.

    .venv/bin/python bench/cancel_latency.py [--cancels 20]

One server with --max-jobs 1 gets one project per cancel, each a 60 s 320x240 clip rendered
for X. Each time a render has run for --run-s seconds (so ffmpeg is busy encoding), the
benchmark records ffmpeg's pid and start time, sends POST /api/jobs/{id}/cancel and polls
every millisecond until the process is gone and the job's work and output folders hold no
files. The cancel response itself is returned only after both, so the two times match.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mediagen import MediaFactory, VideoSpec  # noqa: E402
from servers import ServerFactory  # noqa: E402


def children(parent: int) -> set[tuple[int, int]]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[1]) == parent:
            found.add((int(entry.name), int(fields[19])))
    return found


def alive(process: tuple[int, int]) -> bool:
    try:
        text = Path(f"/proc/{process[0]}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0] != "Z" and int(fields[19]) == process[1]


def has_files(folder: Path) -> bool:
    return folder.exists() and any(path.is_file() for path in folder.rglob("*"))


def wait(predicate: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise TimeoutError("condition not met")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cancels", type=int, default=20)
    parser.add_argument("--run-s", type=float, default=0.5, help="seconds a render runs before it is cancelled")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="viralsplit-bench-", dir=os.environ.get("BENCH_DIR")) as folder:
        base = Path(folder)
        clip = MediaFactory(base / "media").video(VideoSpec(width=320, height=240, duration_s=60.0, fps=25))
        factory = ServerFactory(base)
        latencies: list[float] = []
        responses: list[float] = []
        try:
            server = factory.start(max_jobs=1)
            client = httpx.Client(base_url=server.url, timeout=30)
            projects = []
            for index in range(args.cancels):
                project = client.post("/api/projects", json={"title": f"cancel {index}", "platforms": ["x"]}).json()
                headers = {"Authorization": f"Bearer {project['editor_token']}"}
                client.put(f"/api/projects/{project['id']}/source", content=clip.read_bytes(), headers=headers).raise_for_status()
                projects.append((project, headers))

            for _ in range(args.cancels):
                # Ingests finish in any order, so the running render may belong to any project.
                def running_render() -> tuple[dict[str, Any], dict[str, str], dict[str, Any]] | None:
                    for project, headers in projects:
                        jobs = client.get(f"/api/projects/{project['id']}", headers=headers).json()["jobs"]
                        for job in jobs:
                            if job["kind"] == "render" and job["state"] == "running":
                                return project, headers, job
                    return None

                project, headers, job = wait(running_render)
                processes = wait(lambda: children(server.pid))
                time.sleep(args.run_s)
                project_dir = server.data_dir / "projects" / project["id"]
                job_dirs = (project_dir / "work" / job["id"], project_dir / "outputs" / job["id"])

                started = time.monotonic()
                response = client.post(f"/api/jobs/{job['id']}/cancel", headers=headers)
                responded = time.monotonic()
                response.raise_for_status()
                while any(alive(process) for process in processes) or any(has_files(path) for path in job_dirs):
                    time.sleep(0.001)
                finished = time.monotonic()
                responses.append((responded - started) * 1000)
                latencies.append((finished - started) * 1000)
            client.close()
            slowest = sorted(
                (line for line in server.log_text().splitlines() if " cancelled " in line and " in " in line),
                key=lambda line: float(line.split(" in ")[1].split(" ms")[0]),
            )[-3:]
        finally:
            factory.close()

    print(f"cancels               {len(latencies)}")
    print(f"response p50 / p99    {statistics.median(responses):.0f} / {percentile(responses, 0.99):.0f} ms")
    print(f"reaped+clean p50      {statistics.median(latencies):.0f} ms")
    print(f"reaped+clean p99      {percentile(latencies, 0.99):.0f} ms (target <= 250 ms)")
    print(f"reaped+clean max      {max(latencies):.0f} ms")
    print("slowest cancels in the server log:")
    for line in slowest:
        print("  " + line.split(": ", 1)[1])
    return 0 if percentile(latencies, 0.99) <= 250 else 1


if __name__ == "__main__":
    sys.exit(main())
