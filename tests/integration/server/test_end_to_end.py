"""A real upload through a real server and ffmpeg, down to a Range request on the output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import Api, files_under
from servers import ServerFactory


def test_upload_render_and_range_download(server_factory: ServerFactory, api_for: Any, short_clip: Path) -> None:
    server = server_factory.start()
    api: Api = api_for(server)
    project = api.create_project(title="Beach day", platforms=["x", "linkedin"])

    uploaded = api.upload(project, short_clip, name="beach.mp4")
    assert uploaded.status_code == 202, uploaded.text
    assert uploaded.json()["size_bytes"] == short_clip.stat().st_size
    snapshot = api.wait_done(project)

    assert [job["state"] for job in snapshot["jobs"]] == ["succeeded"] * len(snapshot["jobs"])
    assert snapshot["project"]["source"] == {"kind": "upload", "name": "beach.mp4", "size_bytes": short_clip.stat().st_size}
    assert snapshot["project"]["info"]["duration_s"] > 1.5
    outputs = {output["platform"]: output for output in snapshot["outputs"]}
    assert set(outputs) == {"x", "linkedin"}
    assert (outputs["x"]["width"], outputs["x"]["height"]) == (1280, 720)
    assert [entry["action"] for entry in snapshot["activity"]] == ["create", "upload"]

    output = outputs["x"]
    full = api.request("GET", output["url"], token=project["viewer_token"])
    assert full.status_code == 200
    assert len(full.content) == output["size_bytes"]
    assert full.content[4:8] == b"ftyp"
    assert full.headers["content-disposition"] == 'inline; filename="beach-day-x.mp4"'
    etag = full.headers["etag"]

    ranged = api.request("GET", output["url"], params={"token": project["viewer_token"]}, headers={"Range": "bytes=100-299"})
    assert ranged.status_code == 206
    assert ranged.headers["content-range"] == f"bytes 100-299/{output['size_bytes']}"
    assert ranged.content == full.content[100:300]

    cached = api.request("GET", output["url"], token=project["viewer_token"], headers={"If-None-Match": etag})
    assert cached.status_code == 304

    thumbnail = api.request("GET", output["thumbnail_url"], params={"token": project["viewer_token"]})
    assert thumbnail.status_code == 200
    assert thumbnail.content[:2] == b"\xff\xd8"

    project_dir = server.data_dir / "projects" / project["id"]
    assert not (project_dir / "work").exists() or files_under(project_dir / "work") == []
    assert [path.name for path in files_under(project_dir) if path.name.startswith(".upload-")] == []


def test_tokens_never_logged(server_factory: ServerFactory, api_for: Any, short_clip: Path) -> None:
    server = server_factory.start()
    api: Api = api_for(server)
    project = api.create_project()
    api.upload(project, short_clip)
    snapshot = api.wait_done(project)
    api.request("GET", snapshot["outputs"][0]["url"], params={"token": project["viewer_token"]})
    api.request("GET", f"/api/projects/{project['id']}", token="wrong-token-value")

    log = server.log_text()

    assert project["editor_token"] not in log
    assert project["viewer_token"] not in log
    assert "wrong-token-value" not in log
