"""Upload a large body to a real server over loopback; report server RSS growth and throughput vs dd.

    .venv/bin/python bench/upload_rss.py [--size-mib 2048]

The body is a sparse file of zeros sent by curl with a Content-Length. The
server's RSS is sampled from /proc every 20 ms; growth is the peak during the upload minus
the RSS just before it. dd writes the same number of bytes to a file on the same filesystem
with conv=fsync, because the server also fsyncs an upload before it renames it into place.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from servers import ServerFactory  # noqa: E402

def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc/PID/stat fields 14 and 15."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class RssSampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(self.interval)


def upload(url: str, project: dict[str, str], source: Path) -> float:
    """PUT `source` with curl (a C client, so the client's CPU use stays small); return seconds."""
    started = time.monotonic()
    subprocess.run(
        [
            "curl", "--silent", "--show-error", "--fail", "--output", "/dev/null",
            "--upload-file", str(source),
            "--header", f"Authorization: Bearer {project['editor_token']}",
            # No "Expect: 100-continue" round trip, which curl otherwise waits up to 1 s for.
            "--header", "Expect:",
            f"{url}/api/projects/{project['id']}/source?name=zeros.bin",
        ],
        check=True,
    )
    return time.monotonic() - started


def dd_seconds(folder: Path, size_mib: int) -> float:
    target = folder / "dd.bin"
    started = time.monotonic()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={size_mib}", "conv=fsync", "status=none"], check=True
    )
    elapsed = time.monotonic() - started
    target.unlink()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=2048, help="upload size in MiB (default 2048)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="viralsplit-bench-", dir=os.environ.get("BENCH_DIR")) as folder:
        base = Path(folder)
        # A sparse file: reading it costs no disk I/O, so the upload measures the server.
        source = base / "sparse.bin"
        with open(source, "wb") as file:
            file.truncate(args.size_mib * 1024 * 1024)
        factory = ServerFactory(base)
        try:
            server = factory.start()
            project = httpx.post(f"{server.url}/api/projects", json={"title": "bench"}).json()
            time.sleep(0.5)
            before = rss_bytes(server.pid)
            sampler = RssSampler(server.pid)
            sampler.start()
            cpu_before = cpu_seconds(server.pid)
            upload_s = upload(server.url, project, source)
            server_cpu_s = cpu_seconds(server.pid) - cpu_before
            sampler.done.set()
            sampler.join()
        finally:
            factory.close()
        dd_s = dd_seconds(base, args.size_mib)

    size = args.size_mib * 1024 * 1024
    growth_mib = (sampler.peak - before) / 1024**2
    upload_rate = size / upload_s / 1024**2
    dd_rate = size / dd_s / 1024**2
    print(f"size                  {args.size_mib} MiB")
    print(f"server RSS before     {before / 1024**2:.1f} MiB")
    print(f"server RSS peak       {sampler.peak / 1024**2:.1f} MiB")
    print(f"server RSS growth     {growth_mib:.1f} MiB (target <= 64 MiB)")
    print(f"upload                {upload_s:.2f} s, {upload_rate:.0f} MiB/s")
    print(f"server CPU            {server_cpu_s:.2f} s ({server_cpu_s / upload_s:.0%} of one core)")
    print(f"dd conv=fsync         {dd_s:.2f} s, {dd_rate:.0f} MiB/s")
    print(f"upload / dd           {upload_rate / dd_rate:.2f}")
    return 0 if growth_mib <= 64 else 1


if __name__ == "__main__":
    sys.exit(main())
