"""Cost of the egress proxy and the two-run download on a local transfer.

    .venv/bin/python bench/ingest_proxy.py [--size-mib 256] [--rounds 3]

A local HTTP server (Python's ThreadingHTTPServer on 127.0.0.1) serves one file of
--size-mib MiB. Each round times three ways of fetching it, in turn:

- direct: one `python -m yt_dlp` run without a proxy, the baseline;
- proxy: the same single run with `--proxy` pointing at an EgressProxy;
- download(): viralsplit.media.ytdlp.download, which runs yt-dlp twice (metadata, then
  media) through the proxy and probes the result.

It prints the median seconds and throughput of each, and the ratios to direct. A loopback
transfer has no network latency, so the ratios show the worst case for the relay's CPU cost.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import http.server
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from viralsplit.config import Config
from viralsplit.egress import EgressGuard
from viralsplit.egress_proxy import EgressProxy
from viralsplit.media.ytdlp import download


def yt_dlp_command(url: str, out_dir: Path, proxy: str) -> list[str]:
    return [sys.executable, "-m", "yt_dlp", "--ignore-config", "--no-cache-dir", "--quiet", "--proxy", proxy,
            "--output", str(out_dir / "%(id)s.%(ext)s"), url]


async def time_direct(url: str, out_dir: Path) -> float:
    started = time.perf_counter()
    await asyncio.to_thread(subprocess.run, yt_dlp_command(url, out_dir, ""), check=True)
    return time.perf_counter() - started


async def time_proxy(url: str, out_dir: Path, allowlist: str) -> float:
    async with EgressProxy(EgressGuard([allowlist])) as proxy:
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(*yt_dlp_command(url, out_dir, proxy.url))
        if await process.wait() != 0:
            raise RuntimeError("yt-dlp through the proxy failed")
        return time.perf_counter() - started


async def time_download(url: str, out_dir: Path, allowlist: str) -> float:
    config = Config(url_allowlist=(allowlist,), download_max_bytes=64 * 1024**3)
    started = time.perf_counter()
    await download(url, out_dir, config=config, on_progress=lambda _: None)
    return time.perf_counter() - started


async def run(size_mib: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="viralsplit-bench-ingest-") as temp:
        root = Path(temp)
        served = root / "served"
        served.mkdir()
        with open(served / "big.mp4", "wb") as file:
            for _ in range(size_mib):
                file.write(os.urandom(1024 * 1024))

        handler = functools.partial(QuietHandler, directory=str(served))
        httpd = QuietServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        port = httpd.server_address[1]
        url = f"http://127.0.0.1:{port}/big.mp4"
        allowlist = f"127.0.0.1:{port}"

        times: dict[str, list[float]] = {"direct": [], "proxy": [], "download()": []}
        try:
            for round_index in range(rounds):
                for name in times:
                    out_dir = root / f"out-{name}-{round_index}"
                    if name == "direct":
                        seconds = await time_direct(url, out_dir)
                    elif name == "proxy":
                        seconds = await time_proxy(url, out_dir, allowlist)
                    else:
                        seconds = await time_download(url, out_dir, allowlist)
                    times[name].append(seconds)
                    shutil.rmtree(out_dir, ignore_errors=True)
        finally:
            httpd.shutdown()

    baseline = statistics.median(times["direct"])
    print(f"{size_mib} MiB over loopback, {rounds} rounds, median of each:")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<11} {median:6.2f} s  {size_mib / median:7.1f} MiB/s  x{median / baseline:.2f} of direct")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    # yt-dlp's generic extractor reads only the headers of a direct link and then closes.
    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256, help="size of the served file in MiB")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each times all three ways once")
    args = parser.parse_args()
    asyncio.run(run(args.size_mib, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
