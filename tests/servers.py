"""Run `python -m viralsplit serve` as a real subprocess for integration tests.

tests/conftest.py turns ServerFactory into the `server_factory` fixture:

    def test_something(server_factory):
        server = server_factory.start(max_jobs=1)
        httpx.get(server.url + "/healthz")
        server.kill()                 # SIGKILL, as a crash
        server = server.restart()     # same data dir, new port

The server runs in its own session, on 127.0.0.1 and a port picked by the kernel (`--port 0`);
the base URL is read from its "listening on http://HOST:PORT" log line. Its stderr goes to a
log file next to the data dir, so tests can check what was (and was not) logged.
`VIRALSPLIT_X264_PRESET=ultrafast` is set unless the caller's env overrides it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

LISTENING = re.compile(r"listening on (http://\S+)")

# Seconds a server may take from spawn to its "listening on" line.
START_TIMEOUT_S = 30.0
# Seconds a server may take to exit after SIGTERM before the helper sends SIGKILL.
STOP_TIMEOUT_S = 15.0


class ServerStartError(RuntimeError):
    pass


class ServerProcess:
    """One running `viralsplit serve` process."""

    def __init__(
        self,
        factory: ServerFactory,
        data_dir: Path,
        proc: subprocess.Popen[bytes],
        url: str,
        log_path: Path,
        args: Sequence[str],
        env: Mapping[str, str],
    ) -> None:
        self.factory = factory
        self.data_dir = data_dir
        self.proc = proc
        self.url = url
        self.log_path = log_path
        self.args = tuple(args)
        self.env = dict(env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """Send SIGTERM and wait for the exit; SIGKILL after `timeout` seconds. Return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(STOP_TIMEOUT_S)

    def kill(self) -> int:
        """Send SIGKILL to the server process only, as a crash would end it, and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(STOP_TIMEOUT_S)

    def restart(self, **kwargs: object) -> ServerProcess:
        """Stop this server if it still runs, then start a new one on the same data dir."""
        self.stop()
        options: dict[str, object] = {"args": self.args, "env": self.env}
        options.update(kwargs)
        return self.factory.start(data_dir=self.data_dir, **options)  # type: ignore[arg-type]


class ServerFactory:
    """Starts servers under `base_dir` and stops every one of them in `close()`."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = Path(base_dir)
        self.servers: list[ServerProcess] = []
        self._count = 0

    def start(
        self,
        *,
        data_dir: Path | None = None,
        max_jobs: int | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float = START_TIMEOUT_S,
    ) -> ServerProcess:
        """Start a server and wait for its "listening on" line; raise ServerStartError with its log if it exits."""
        self._count += 1
        data_dir = Path(data_dir) if data_dir else self.base_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.base_dir / f"server-{self._count}.log"

        full_env = dict(os.environ)
        full_env.setdefault("VIRALSPLIT_X264_PRESET", "ultrafast")
        full_env.update(env or {})
        command = [sys.executable, "-m", "viralsplit", "serve", "--host", "127.0.0.1", "--port", "0"]
        command += ["--data-dir", str(data_dir)]
        if max_jobs is not None:
            command += ["--max-jobs", str(max_jobs)]
        command += list(args)

        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=full_env,
                start_new_session=True,
            )
        url = _wait_for_url(proc, log_path, timeout)
        server = ServerProcess(self, data_dir, proc, url, log_path, args, env or {})
        self.servers.append(server)
        return server

    def close(self) -> None:
        for server in self.servers:
            server.stop()


def _wait_for_url(proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        match = LISTENING.search(text)
        if match:
            return match.group(1)
        if proc.poll() is not None:
            raise ServerStartError(f"server exited with code {proc.returncode} before listening:\n{text}")
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise ServerStartError(f"server did not log 'listening on' within {timeout} s:\n{log_path.read_text(errors='replace')}")


def wait_until(predicate, timeout: float, interval: float = 0.05, message: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll `predicate` until it returns a truthy value and return that value; raise TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{message} not met within {timeout} s")
        time.sleep(interval)
