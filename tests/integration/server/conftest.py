"""Fixtures for tests against a real `viralsplit serve` process: media, an API client, process checks."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mediagen import MediaFactory, VideoSpec  # noqa: E402
from servers import ServerProcess  # noqa: E402

# Seconds a test waits for a job state before it fails.
JOB_TIMEOUT_S = 60.0


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaFactory:
    return MediaFactory(tmp_path_factory.mktemp("server-media"))


@pytest.fixture(scope="session")
def short_clip(media: MediaFactory) -> Path:
    """2 s, 320x240, 10 fps with audio: renders in about a second at the ultrafast preset."""
    return media.video(VideoSpec(width=320, height=240, duration_s=2.0, fps=10))


@pytest.fixture(scope="session")
def long_clip(media: MediaFactory) -> Path:
    """60 s, 320x240, 25 fps: its render runs long enough to be cancelled or killed midway."""
    return media.video(VideoSpec(width=320, height=240, duration_s=60.0, fps=25), name="long.mp4")


class Api:
    """A small REST client for one server; `token` is sent as a Bearer header when given."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=30.0)

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, path, headers=headers, **kwargs)

    def create_project(self, **body: Any) -> dict[str, Any]:
        body.setdefault("title", "Test clip")
        body.setdefault("platforms", ["x"])
        response = self.request("POST", "/api/projects", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def upload(self, project: dict[str, Any], path: Path, name: str | None = None) -> httpx.Response:
        with open(path, "rb") as file:
            return self.request(
                "PUT",
                f"/api/projects/{project['id']}/source",
                token=project["editor_token"],
                params={"name": name or path.name},
                content=file.read(),
            )

    def snapshot(self, project: dict[str, Any]) -> dict[str, Any]:
        response = self.request("GET", f"/api/projects/{project['id']}", token=project["editor_token"])
        assert response.status_code == 200, response.text
        return response.json()

    def wait_snapshot(self, project: dict[str, Any], predicate: Any, what: str, timeout: float = JOB_TIMEOUT_S) -> dict[str, Any]:
        """Poll the snapshot until `predicate(snapshot)` is true; fail with the last snapshot's jobs."""
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.snapshot(project)
            if predicate(snapshot):
                return snapshot
            if time.monotonic() > deadline:
                jobs = [(job["kind"], job["label"], job["state"], job["error"]) for job in snapshot["jobs"]]
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; jobs: {jobs}")
            time.sleep(0.1)

    def wait_done(self, project: dict[str, Any], timeout: float = JOB_TIMEOUT_S) -> dict[str, Any]:
        return self.wait_snapshot(project, all_renders_ended, "every job to end", timeout)

    def wait_render_running(self, project: dict[str, Any]) -> dict[str, Any]:
        snapshot = self.wait_snapshot(
            project, lambda s: any(job["kind"] == "render" and job["state"] == "running" for job in s["jobs"]), "a running render"
        )
        return next(job for job in snapshot["jobs"] if job["kind"] == "render" and job["state"] == "running")


def all_renders_ended(snapshot: dict[str, Any]) -> bool:
    jobs = snapshot["jobs"]
    ingest_failed = any(job["kind"] == "ingest" and job["state"] in ("failed", "cancelled") for job in jobs)
    renders = [job for job in jobs if job["kind"] == "render"]
    return ingest_failed or (bool(renders) and all(job["state"] in ("succeeded", "failed", "cancelled") for job in renders))


@pytest.fixture
def api_for() -> Iterator[Any]:
    clients: list[Api] = []

    def make(server: ServerProcess) -> Api:
        client = Api(server)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def wait_for(predicate: Any, what: str, timeout: float = JOB_TIMEOUT_S, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []
