"""`viralsplit submit` and `viralsplit watch`: drive a running server from the command line.

`submit` creates a project (POST /api/projects), uploads the file with a progress bar (PUT
/api/projects/{id}/source) or lets the server fetch the URL, then follows every job over the
realtime socket until all of them have ended. `watch` follows an existing project. Both exit
0 when every job succeeded, 1 when one failed or was cancelled or the server could not be
reached, and 2 for invalid input.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, urlsplit

from viralsplit.client import ConnectionEnded, ProjectState, RealtimeClient, ServerError

UPLOAD_CHUNK_BYTES = 1024 * 1024
HTTP_TIMEOUT_S = 60.0
# Seconds between progress lines when the output is not a terminal.
LOG_INTERVAL_S = 5.0
DEFAULT_NAME = "command line"


class RequestFailed(Exception):
    pass


def run_submit(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(submit(args))
    except KeyboardInterrupt:
        return 130


def run_watch(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(watch(args))
    except KeyboardInterrupt:
        return 130


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


async def submit(args: argparse.Namespace, out: TextIO = sys.stderr) -> int:
    name = args.name or DEFAULT_NAME
    source = args.input
    path: Path | None = None
    if not _is_url(source):
        path = Path(source)
        if not path.is_file():
            print(f"viralsplit submit: {source}: file not found", file=out)
            return 2
    body: dict[str, Any] = {"title": args.title or (path.name if path else source), "fill": args.fill}
    if args.platforms:
        body["platforms"] = args.platforms
    if args.part_length is not None:
        body["part_length"] = args.part_length
    if path is None:
        body["url"] = source
    try:
        created = await asyncio.to_thread(_request_json, args.server, "POST", "/api/projects", body, None, name)
        project_id, token = created["id"], created["editor_token"]
        print(f"project {project_id}: {args.server.rstrip('/')}{created.get('editor_url', '')}", file=out)
        if path is not None:
            await asyncio.to_thread(_upload, args.server, project_id, token, path, name, out)
    except (RequestFailed, OSError) as exc:
        print(f"viralsplit submit: {exc}", file=out)
        return 2 if isinstance(exc, RequestFailed) and "422" in str(exc) else 1
    return await follow(args.server, project_id, token, name, out)


async def watch(args: argparse.Namespace, out: TextIO = sys.stderr) -> int:
    project_id, token = parse_project_argument(args.project, args.token)
    if token is None:
        print("viralsplit: missing token: pass --token, or give the whole share link as PROJECT", file=out)
        return 2
    return await follow(args.server, project_id, token, args.name or DEFAULT_NAME, out)


def parse_project_argument(project: str, token: str | None) -> tuple[str, str | None]:
    """Split a share link (".../p/ID#token=T") into project id and token; pass a bare id through.

    A token given with --token wins over the one in the link.
    """
    parts = urlsplit(project)
    marker = "/p/"
    if marker not in parts.path:
        return project, token
    project_id = parts.path.split(marker, 1)[1].strip("/")
    fragment = dict(item.partition("=")[::2] for item in parts.fragment.split("&") if item)
    return project_id, token or fragment.get("token") or None


async def follow(server: str, project_id: str, token: str, name: str, out: TextIO) -> int:
    """Print live progress of every job of the project until all have ended; return the exit code."""
    display = ProgressDisplay(out, server, token)
    state = ProjectState()
    try:
        async with RealtimeClient(server, name=name, tokens=[token]) as client:
            await client.subscribe(project_id)
            async for frame in client.frames():
                previous = {job_id: job.get("state") for job_id, job in state.jobs.items()}
                state.apply(frame)
                display.update(state, previous)
                if state.all_ended:
                    break
    except ServerError as exc:
        print(f"viralsplit: {exc.message}", file=out)
        return 1
    except (ConnectionEnded, OSError) as exc:
        print(f"viralsplit: cannot follow the project: {exc}", file=out)
        return 1
    display.finish(state)
    return 0 if all(job.get("state") == "succeeded" for job in state.jobs.values()) else 1


class ProgressDisplay:
    """State changes as lines; progress as one status line, redrawn on a terminal."""

    def __init__(self, out: TextIO, server: str, token: str) -> None:
        self.out = out
        # Output links are printed whole, with the token the media routes accept as ?token=.
        self.server = server.rstrip("/")
        self.token = token
        self.tty = out.isatty()
        self.last_log = 0.0
        self.status_shown = False

    def update(self, state: ProjectState, previous: dict[str, Any]) -> None:
        for job_id, job in state.jobs.items():
            if previous.get(job_id) != job.get("state"):
                line = f"{job.get('label') or job_id}: {job.get('state')}"
                if job.get("error"):
                    line += f" ({job['error']})"
                self._line(line)
        running = [job for job in state.jobs.values() if job.get("state") == "running" and job.get("progress")]
        if not running:
            return
        status = "  ".join(_describe_progress(job) for job in running)
        now = time.monotonic()
        if self.tty:
            self.out.write("\r\033[K" + status[: os.get_terminal_size(self.out.fileno()).columns - 1])
            self.out.flush()
            self.status_shown = True
        elif now - self.last_log >= LOG_INTERVAL_S:
            self.last_log = now
            print(status, file=self.out)

    def _line(self, text: str) -> None:
        if self.status_shown:
            self.out.write("\r\033[K")
            self.status_shown = False
        print(text, file=self.out)

    def finish(self, state: ProjectState) -> None:
        for output in state.outputs:
            link = f"{self.server}{output.get('url')}?token={quote(self.token, safe='')}"
            self._line(f"output {output.get('platform')} part {output.get('part')}/{output.get('parts')}: {link}")


def _describe_progress(job: dict[str, Any]) -> str:
    progress = job["progress"]
    parts = [str(job.get("label") or job["id"])[:30], progress.get("stage", "")]
    if progress.get("fraction") is not None:
        parts.append(f"{progress['fraction'] * 100:.0f}%")
    if progress.get("speed"):
        parts.append(f"{progress['speed']:.1f}x")
    if progress.get("eta_s") is not None:
        parts.append(f"eta {progress['eta_s']} s")
    return " ".join(parts)


# HTTP with the standard library, so the CLI needs no HTTP client package.


def _connection(server: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RequestFailed(f"invalid server URL {server!r}: use http://HOST:PORT")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return cls(parts.hostname, parts.port, timeout=HTTP_TIMEOUT_S), parts.path.rstrip("/")


def _read_response(conn: http.client.HTTPConnection, what: str) -> dict[str, Any]:
    response = conn.getresponse()
    payload = response.read()
    try:
        data = json.loads(payload or b"{}")
    except ValueError:
        data = {}
    if response.status >= 400:
        message = (data.get("error") or {}).get("message") if isinstance(data, dict) else None
        raise RequestFailed(f"{what} failed with HTTP {response.status}: {message or payload[:200]!r}")
    return data if isinstance(data, dict) else {}


def _request_json(server: str, method: str, path: str, body: dict[str, Any] | None, token: str | None, name: str) -> dict[str, Any]:
    conn, prefix = _connection(server)
    headers = {"Content-Type": "application/json", "X-Viralsplit-Name": name}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, prefix + path, body=json.dumps(body or {}), headers=headers)
        return _read_response(conn, f"{method} {path}")
    finally:
        conn.close()


def _upload(server: str, project_id: str, token: str, path: Path, name: str, out: TextIO) -> dict[str, Any]:
    size = path.stat().st_size
    conn, prefix = _connection(server)
    target = f"{prefix}/api/projects/{quote(project_id)}/source?name={quote(path.name)}"
    bar = UploadBar(size, out)
    try:
        conn.putrequest("PUT", target)
        conn.putheader("Content-Length", str(size))
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Authorization", f"Bearer {token}")
        conn.putheader("X-Viralsplit-Name", name)
        conn.endheaders()
        with path.open("rb") as file:
            while chunk := file.read(UPLOAD_CHUNK_BYTES):
                conn.send(chunk)
                bar.advance(len(chunk))
        bar.done()
        return _read_response(conn, "upload")
    finally:
        conn.close()


class UploadBar:
    def __init__(self, total: int, out: TextIO) -> None:
        self.total = max(total, 1)
        self.sent = 0
        self.out = out
        self.tty = out.isatty()
        self.started = time.monotonic()
        self.last_print = 0.0

    def advance(self, count: int) -> None:
        self.sent += count
        now = time.monotonic()
        if self.tty:
            width = 30
            filled = int(width * self.sent / self.total)
            rate = self.sent / max(now - self.started, 1e-6) / 1e6
            self.out.write(f"\rupload [{'#' * filled}{'.' * (width - filled)}] {100 * self.sent / self.total:3.0f}% {rate:.1f} MB/s")
            self.out.flush()
        elif now - self.last_print >= LOG_INTERVAL_S:
            self.last_print = now
            print(f"upload {100 * self.sent / self.total:.0f}%", file=self.out)

    def done(self) -> None:
        if self.tty:
            self.out.write("\n")
        print(f"uploaded {self.sent} bytes in {time.monotonic() - self.started:.1f} s", file=self.out)
