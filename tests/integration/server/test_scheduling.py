"""Priorities, renice and cancel with a real server, real ffmpeg processes and /proc."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from conftest import Api, files_under, wait_for
from processes import children_of, is_alive, nice_of
from servers import ServerFactory


def running_render(snapshot: dict[str, Any]) -> dict[str, Any] | None:
    return next((job for job in snapshot["jobs"] if job["kind"] == "render" and job["state"] == "running"), None)


def queued_render(api: Api, project: dict[str, Any]) -> dict[str, Any]:
    snapshot = api.wait_snapshot(
        project, lambda s: any(job["kind"] == "render" and job["state"] == "queued" for job in s["jobs"]), "a queued render"
    )
    return next(job for job in snapshot["jobs"] if job["kind"] == "render")


def test_priority_order_and_renice(server_factory: ServerFactory, api_for: Any, long_clip: Path, short_clip: Path) -> None:
    server = server_factory.start(max_jobs=1)
    api: Api = api_for(server)
    blocker = api.create_project(title="blocker")
    api.upload(blocker, long_clip)
    blocker_job = api.wait_render_running(blocker)
    projects = {}
    for name, priority in (("low", 1), ("mid", 2), ("high", 3)):
        projects[name] = api.create_project(title=name, priority=priority)
        api.upload(projects[name], short_clip)
    renders = {name: queued_render(api, project) for name, project in projects.items()}

    # Queued renders are ordered by priority: high, mid, low.
    positions = {name: api.snapshot(projects[name])["jobs"][1]["queue_position"] for name in projects}
    assert positions == {"high": 1, "mid": 2, "low": 3}

    # Raising a queued job's priority moves it ahead.
    raised = api.request("POST", f"/api/jobs/{renders['low']['id']}/priority", token=projects["low"]["editor_token"], json={"priority": 5})
    assert raised.status_code == 200, raised.text
    assert api.snapshot(projects["low"])["jobs"][1]["queue_position"] == 1
    assert api.snapshot(projects["high"])["jobs"][1]["queue_position"] == 2

    # Raising a running job's priority lowers its process group's nice value.
    (ffmpeg_pid, _) = wait_for(lambda: sorted(children_of(server.pid)), "the blocker's ffmpeg process")[0]
    wait_for(lambda: nice_of(ffmpeg_pid) == 10, "nice 10 for priority 0")
    raised = api.request("POST", f"/api/jobs/{blocker_job['id']}/priority", token=blocker["editor_token"], json={"priority": 8})
    assert raised.status_code == 200, raised.text
    assert nice_of(ffmpeg_pid) == 2

    # With one render at a time, they start in queue order: cancel each as soon as it runs.
    started = []
    order = [blocker, projects["low"], projects["high"], projects["mid"]]
    for project in order:
        job = api.wait_snapshot(project, running_render, f"{project['id']} render to run")
        started.append(project["id"])
        for other in order:
            if other is not project and running_render(api.snapshot(other)):
                raise AssertionError(f"{other['id']} runs at the same time as {project['id']} with --max-jobs 1")
        job = running_render(api.snapshot(project))
        assert job is not None
        cancelled = api.request("POST", f"/api/jobs/{job['id']}/cancel", token=project["editor_token"])
        assert cancelled.status_code == 200, cancelled.text
    assert started == [project["id"] for project in order]


def test_cancel_running_render(server_factory: ServerFactory, api_for: Any, long_clip: Path) -> None:
    server = server_factory.start()
    api: Api = api_for(server)
    project = api.create_project()
    api.upload(project, long_clip)
    job = api.wait_render_running(project)
    processes = wait_for(lambda: children_of(server.pid), "the render's ffmpeg process")
    api.wait_snapshot(project, lambda s: (running_render(s) or {}).get("progress") is not None, "render progress")

    requested = time.monotonic()
    cancelled = api.request("POST", f"/api/jobs/{job['id']}/cancel", token=project["editor_token"])
    wait_for(lambda: not any(is_alive(process) for process in processes), "ffmpeg to exit", timeout=1.0, interval=0.005)
    elapsed = time.monotonic() - requested

    assert cancelled.status_code == 200, cancelled.text
    assert elapsed < 1.0
    project_dir = server.data_dir / "projects" / project["id"]
    assert files_under(project_dir / "work") == []
    assert files_under(project_dir / "outputs") == []
    snapshot = api.snapshot(project)
    assert running_render(snapshot) is None
    assert snapshot["activity"][-1]["action"] == "cancel"

    restarted = server.restart()
    api = api_for(restarted)
    snapshot = api.snapshot(project)
    render = next(item for item in snapshot["jobs"] if item["id"] == job["id"])
    assert render["state"] == "cancelled"
    health = api.request("GET", "/healthz").json()
    assert health["queue_length"] == 0
    assert health["running_encodes"] == 0
    assert children_of(restarted.pid) == set()


def test_cancel_project_stops_everything(server_factory: ServerFactory, api_for: Any, long_clip: Path) -> None:
    server = server_factory.start(max_jobs=1)
    api: Api = api_for(server)
    project = api.create_project(platforms=["x", "linkedin", "tiktok"])
    api.upload(project, long_clip)
    api.wait_render_running(project)
    processes = wait_for(lambda: children_of(server.pid), "the render's ffmpeg process")

    cancelled = api.request("POST", f"/api/projects/{project['id']}/cancel", token=project["editor_token"])

    assert cancelled.status_code == 200, cancelled.text
    assert not any(is_alive(process) for process in processes)
    snapshot = api.snapshot(project)
    states = [job["state"] for job in snapshot["jobs"] if job["kind"] == "render"]
    assert states == ["cancelled"] * 3
    assert snapshot["activity"][-1]["action"] == "cancel_project"
