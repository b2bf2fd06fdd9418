"""Crash recovery: SIGKILL the server mid-render and start it again on the same data dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import Api, files_under, wait_for
from processes import children_of, is_alive
from mediagen import MediaFactory, VideoSpec
from servers import ServerFactory


def test_sigkill_mid_render_reruns_job(server_factory: ServerFactory, api_for: Any, media: MediaFactory) -> None:
    clip = media.video(VideoSpec(width=320, height=240, duration_s=10.0, fps=25), name="medium.mp4")
    server = server_factory.start()
    api: Api = api_for(server)
    project = api.create_project(title="crash")
    api.upload(project, clip)
    job = api.wait_render_running(project)
    processes = wait_for(lambda: children_of(server.pid), "the render's ffmpeg process")
    api.wait_snapshot(project, lambda s: any(j["progress"] and j["state"] == "running" and j["kind"] == "render" for j in s["jobs"]), "render progress")

    server.kill()
    # The encoder runs in its own session, so it outlives the killed server.
    assert any(is_alive(process) for process in processes)
    restarted = server.restart()
    api = api_for(restarted)

    wait_for(lambda: not any(is_alive(process) for process in processes), "the first run's ffmpeg to be stopped", timeout=10.0)
    snapshot = api.wait_done(project)
    render = next(item for item in snapshot["jobs"] if item["id"] == job["id"])
    assert render["state"] == "succeeded", render
    assert render["attempt"] == 1
    assert len(snapshot["outputs"]) == 1
    assert "queued again" in restarted.log_text()
    project_dir = restarted.data_dir / "projects" / project["id"]
    assert files_under(project_dir / "work") == []
    assert [path for path in files_under(restarted.data_dir) if path.name.startswith(".upload-") or path.suffix in (".tmp", ".part")] == []
    output_files = files_under(project_dir / "outputs")
    assert len([path for path in output_files if path.suffix == ".mp4"]) == 1


def test_sigkill_during_upload_leaves_no_temp_file(server_factory: ServerFactory, api_for: Any) -> None:
    import socket

    server = server_factory.start()
    api: Api = api_for(server)
    project = api.create_project()
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    # Send the headers and part of a declared 10 MB body, then crash the server mid-upload.
    with socket.create_connection((host, int(port))) as sock:
        head = (
            f"PUT /api/projects/{project['id']}/source?name=big.mp4 HTTP/1.1\r\n"
            f"Host: {host}\r\nAuthorization: Bearer {project['editor_token']}\r\n"
            "Content-Length: 10000000\r\n\r\n"
        )
        sock.sendall(head.encode() + b"\0" * 300_000)
        project_dir = server.data_dir / "projects" / project["id"]
        wait_for(lambda: any(path.name.startswith(".upload-") for path in files_under(project_dir)), "the partial upload file")
        server.kill()

    restarted = server.restart()
    api = api_for(restarted)

    assert files_under(project_dir) == []
    assert api.snapshot(project)["project"]["source"] is None


def test_sigterm_mid_render_requeues_job(server_factory: ServerFactory, api_for: Any, long_clip: Path) -> None:
    server = server_factory.start()
    api: Api = api_for(server)
    project = api.create_project(title="restart")
    api.upload(project, long_clip)
    job = api.wait_render_running(project)
    processes = wait_for(lambda: children_of(server.pid), "the render's ffmpeg process")

    code = server.stop()

    assert code == 0
    assert not any(is_alive(process) for process in processes)
    assert "interrupted by shutdown; queued again" in server.log_text()
    project_dir = server.data_dir / "projects" / project["id"]
    assert files_under(project_dir / "work") == []
    restarted = server.restart()
    api = api_for(restarted)
    render = api.wait_snapshot(
        project, lambda s: any(j["id"] == job["id"] and j["state"] in ("queued", "running") for j in s["jobs"]), "the render back in the queue"
    )
    assert next(j for j in render["jobs"] if j["id"] == job["id"])["attempt"] == 1
