"""Subprocess control for ffmpeg, ffprobe and every other media tool.

Each tool runs from an argument list (never a shell) in its own session, so its pid is also
its process group id and a terminal's Ctrl-C never reaches it directly. stdin is /dev/null,
stdout is read line by line or collected, and stderr is drained continuously into a bounded
tail that error messages quote. Cancelling the awaiting task stops the whole process group:
SIGTERM, a grace period, then SIGKILL, and the process is always reaped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence

from viralsplit.errors import FFmpegError

log = logging.getLogger(__name__)

# Seconds between SIGTERM and SIGKILL when a process group is stopped.
DEFAULT_GRACE_S = 3.0
# Lines of stderr kept for error messages.
STDERR_TAIL_LINES = 30
# Largest stdout collected in memory (ffprobe JSON); more fails the run.
MAX_COLLECTED_STDOUT = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ProcessResult:
    returncode: int
    # Collected stdout; empty when lines were passed to a callback instead.
    stdout: bytes
    stderr_tail: str


async def run_process(
    args: Sequence[str],
    *,
    on_stdout_line: Callable[[str], None] | None = None,
    on_process: Callable[[int], None] | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    tail_lines: int = STDERR_TAIL_LINES,
    env: Mapping[str, str] | None = None,
) -> ProcessResult:
    """Run `args` to completion and return its exit code, stdout and stderr tail.

    With `on_stdout_line`, each stdout line (decoded, without the newline) is passed to it and
    nothing is collected. `on_process` receives the pid, which is also the process group id,
    right after the start. `env` replaces the environment when given. Cancelling the caller stops the process group (see
    `terminate_process_group`) and re-raises CancelledError. Raises FileNotFoundError when the
    program does not exist.
    """
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        env=None if env is None else dict(env),
    )
    log.debug("started pid %d: %s", proc.pid, " ".join(args))
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    collected = bytearray()
    try:
        if on_process is not None:
            on_process(proc.pid)
        assert proc.stdout is not None and proc.stderr is not None
        await asyncio.gather(
            _drain_stdout(proc.stdout, on_stdout_line, collected),
            _drain_stderr(proc.stderr, tail),
        )
        returncode = await proc.wait()
    except BaseException:
        await terminate_process_group(proc, grace_s)
        raise
    return ProcessResult(returncode=returncode, stdout=bytes(collected), stderr_tail="\n".join(tail))


async def run_checked(args: Sequence[str], *, context: str = "", **kwargs) -> ProcessResult:
    """Run like `run_process` and raise FFmpegError with the stderr tail on a non-zero exit."""
    result = await run_process(args, **kwargs)
    if result.returncode != 0:
        tool = os.path.basename(args[0])
        log.warning("%s exited %d: %s", tool, result.returncode, result.stderr_tail[-2000:])
        raise FFmpegError(tool, result.returncode, result.stderr_tail, context)
    return result


async def terminate_process_group(proc: asyncio.subprocess.Process, grace_s: float = DEFAULT_GRACE_S) -> None:
    """Stop `proc` and every process in its group: SIGTERM, wait `grace_s`, SIGKILL, reap.

    Safe to call on a process that has already exited. A second cancellation while waiting
    still ends in SIGKILL and a reaped process before CancelledError propagates.
    """
    if proc.returncode is not None:
        return
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        await asyncio.shield(asyncio.wait_for(proc.wait(), grace_s))
        return
    except asyncio.TimeoutError:
        # A zero grace period means the caller wants SIGKILL at once, which is no fault to report.
        if grace_s > 0:
            log.warning("pid %d did not stop within %.1f s of SIGTERM: sending SIGKILL", proc.pid, grace_s)
    except asyncio.CancelledError:
        _signal_group(proc.pid, signal.SIGKILL)
        await asyncio.shield(proc.wait())
        raise
    _signal_group(proc.pid, signal.SIGKILL)
    await asyncio.shield(proc.wait())


def renice_process_group(pgid: int, nice: int) -> bool:
    """Set the nice value of every process in group `pgid`; return False when not permitted."""
    try:
        os.setpriority(os.PRIO_PGRP, pgid, nice)
    except PermissionError:
        log.warning("not permitted to set nice %d on process group %d", nice, pgid)
        return False
    except ProcessLookupError:
        return False
    return True


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


async def _drain_stdout(
    stream: asyncio.StreamReader, on_line: Callable[[str], None] | None, collected: bytearray
) -> None:
    if on_line is None:
        while chunk := await stream.read(65536):
            if len(collected) + len(chunk) > MAX_COLLECTED_STDOUT:
                raise RuntimeError(f"tool output exceeded {MAX_COLLECTED_STDOUT} bytes")
            collected.extend(chunk)
        return
    while line := await stream.readline():
        on_line(line.decode("utf-8", "replace").rstrip("\r\n"))


async def _drain_stderr(stream: asyncio.StreamReader, tail: collections.deque[str]) -> None:
    # ffmpeg ends some lines with \r only; splitting on both keeps the tail readable.
    pending = b""
    while chunk := await stream.read(65536):
        pending += chunk
        *lines, pending = pending.replace(b"\r", b"\n").split(b"\n")
        for line in lines:
            if line.strip():
                tail.append(line.decode("utf-8", "replace"))
        if len(pending) > 8192:
            tail.append(pending[:8192].decode("utf-8", "replace"))
            pending = b""
    if pending.strip():
        tail.append(pending.decode("utf-8", "replace"))
