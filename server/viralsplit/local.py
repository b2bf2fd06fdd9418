"""`viralsplit split`: render platform-ready clips on this machine, without the server.

Exit codes: 0 on success, 2 for invalid input (one line on stderr naming the file and the
problem), 1 when rendering fails, 130 after Ctrl-C (SIGINT) and 143 after SIGTERM. Interrupting stops
every ffmpeg process and deletes partial files before the command exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import TextIO

from viralsplit.config import Config
from viralsplit.errors import InputError, LimitExceededError, ToolMissingError, UrlRejectedError, ViralSplitError
from viralsplit.media.plan import PlanOptions, Rendition, plan_renditions
from viralsplit.media.presets import DEFAULT_PLATFORMS
from viralsplit.media.probe import check_tools, probe
from viralsplit.media.progress import Progress
from viralsplit.media.render import RenderedOutput, render_rendition, safe_stem

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID_INPUT = 2


def run_split(args: argparse.Namespace) -> int:
    """Run `viralsplit split` with parsed arguments and return the exit code."""
    try:
        config = Config.load()
    except ValueError as exc:
        print(f"viralsplit: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    try:
        return asyncio.run(_run_until_signal(args, config))
    except KeyboardInterrupt:
        # A Ctrl-C that arrives before the event loop has installed its handlers.
        print("viralsplit: interrupted", file=sys.stderr)
        return 130


async def _run_until_signal(args: argparse.Namespace, config: Config) -> int:
    """Run the split; on SIGINT or SIGTERM cancel it, which stops ffmpeg and deletes partials.

    Both signals get explicit handlers because a process started in the background by a
    shell inherits SIGINT as ignored, and Python then never raises KeyboardInterrupt.
    """
    task = asyncio.current_task()
    assert task is not None
    received: list[int] = []

    def stop(signum: int) -> None:
        received.append(signum)
        task.cancel()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop, signum)
    try:
        return await _split(args, config)
    except asyncio.CancelledError:
        if not received:
            raise
        task.uncancel()
        word = "interrupted" if received[0] == signal.SIGINT else "terminated"
        print(f"viralsplit: {word}; ffmpeg stopped and partial files deleted", file=sys.stderr)
        return 128 + received[0]


async def _split(args: argparse.Namespace, config: Config) -> int:
    try:
        await check_tools()
    except ToolMissingError as exc:
        print(f"viralsplit: {exc}", file=sys.stderr)
        return EXIT_FAILED

    out_dir: Path | None = Path(args.out).resolve() if args.out else None
    created_out_dir = out_dir is not None and not out_dir.exists()
    try:
        source, display_name = await _resolve_input(args, config, out_dir)
        if out_dir is None:
            out_dir = Path.cwd() / f"{safe_stem(Path(display_name).stem)}-clips"
            created_out_dir = not out_dir.exists()
        info = await probe(source, display_name=display_name)
        plan = plan_renditions(
            info, args.platforms or DEFAULT_PLATFORMS, PlanOptions(fill=args.fill, part_length_s=args.part_length)
        )
        outputs: list[RenderedOutput] = []
        for rendition in plan.renditions:
            outputs += await _render_with_bar(source, info, rendition, out_dir, config)
    except InputError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID_INPUT
    except (UrlRejectedError, LimitExceededError) as exc:
        # A link the egress guard rejects, or one over a limit, is invalid input as well.
        print(f"viralsplit: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except ViralSplitError as exc:
        print(f"viralsplit: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if out_dir is not None and created_out_dir:
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only when nothing was written

    if args.json:
        print(json.dumps({"outputs": [output.to_json() for output in outputs]}))
    else:
        print(f"{len(outputs)} outputs in {out_dir}:")
        for output in outputs:
            part = f" part {output.part} of {output.parts}" if output.parts > 1 else ""
            print(f"  {output.platform}{part}: {output.path} ({output.width}x{output.height}, {output.duration_s:.1f} s)")
    return EXIT_OK


async def _resolve_input(args: argparse.Namespace, config: Config, out_dir: Path | None) -> tuple[Path, str]:
    """Return the local file to render and the name used in messages; download URLs first."""
    text: str = args.input
    if not text.lower().startswith(("http://", "https://")):
        return Path(text), text
    from viralsplit.media.ytdlp import download

    folder = (out_dir or Path.cwd()) / ".viralsplit-download"
    folder.mkdir(parents=True, exist_ok=True)
    bar = ProgressBar("download", sys.stderr)
    try:
        path = await download(text, folder, config=config, on_progress=bar.update)
    except BaseException:
        # download() deletes its partial files, so only the empty folder can remain.
        with contextlib.suppress(OSError):
            folder.rmdir()
        raise
    bar.finish()
    return path, path.name


async def _render_with_bar(
    source: Path, info, rendition: Rendition, out_dir: Path, config: Config
) -> list[RenderedOutput]:
    bar = ProgressBar(rendition.label, sys.stderr)
    try:
        outputs = await render_rendition(
            source, info, rendition,
            work_dir=out_dir / f".viralsplit-work-{rendition.key}",
            out_dir=out_dir,
            settings=config,
            on_progress=bar.update,
        )
    finally:
        bar.finish()
    return outputs


class ProgressBar:
    """One progress line per rendition on a terminal; occasional plain lines otherwise.

    With a known duration the line shows a bar, the percent, the speed and the ETA; with an
    unknown duration it shows a moving marker and the media time processed so far.
    """

    WIDTH = 24

    def __init__(self, label: str, stream: TextIO) -> None:
        self.label = label
        self.stream = stream
        self.interactive = stream.isatty()
        self._ticks = 0
        self._last_line = ""
        self._last_print = 0.0
        self._last_percent = -100.0

    def update(self, progress: Progress) -> None:
        if progress.stage not in ("render", "download"):
            return
        self._ticks += 1
        line = format_progress_line(self.label, progress, self._ticks, self.WIDTH)
        if self.interactive:
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
        else:
            # Plain output (a log or a pipe) gets a line every 10 percent or 5 seconds.
            percent = (progress.fraction or 0.0) * 100
            now = time.monotonic()
            if percent - self._last_percent >= 10 or now - self._last_print >= 5:
                self.stream.write(line + "\n")
                self._last_percent, self._last_print = percent, now
        self._last_line = line

    def finish(self) -> None:
        if self.interactive and self._last_line:
            self.stream.write("\n")
            self.stream.flush()


def format_progress_line(label: str, progress: Progress, tick: int, width: int = 24) -> str:
    """Format one bar line, `LABEL [####----]  42%  1.9x  ETA 0:31`, or an indeterminate one."""
    speed = f"{progress.speed:.1f}x" if progress.speed else "--x"
    if progress.fraction is None:
        position = tick % (2 * (width - 3))
        if position >= width - 3:
            position = 2 * (width - 3) - position
        bar = " " * position + "<=>" + " " * (width - 3 - position)
        done = f"{progress.out_time_s:.1f} s done" if progress.out_time_s is not None else "starting"
        return f"{label} [{bar}]  {done}  {speed}"
    filled = int(progress.fraction * width)
    bar = "#" * filled + "-" * (width - filled)
    eta = _format_eta(progress.eta_s)
    return f"{label} [{bar}] {progress.fraction * 100:3.0f}%  {speed}  ETA {eta}"


def _format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
