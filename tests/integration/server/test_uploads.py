"""Upload limits, bad sources and request validation against a real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from conftest import Api, files_under
from mediagen import MediaFactory
from servers import ServerFactory

LIMIT = 200_000


def test_upload_over_limit_is_413(server_factory: ServerFactory, api_for: Any) -> None:
    server = server_factory.start(env={"VIRALSPLIT_MAX_UPLOAD_BYTES": str(LIMIT)})
    api: Api = api_for(server)
    project = api.create_project()
    path = f"/api/projects/{project['id']}/source"

    declared = api.request("PUT", path, token=project["editor_token"], content=b"\0" * (LIMIT + 1))

    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b"\0" * 64 * 1024

    # Without Content-Length (chunked), the limit is found while the file is being written.
    streamed = api.request("PUT", path, token=project["editor_token"], content=chunks())

    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        message = response.json()["error"]["message"]
        assert message.startswith(f"upload larger than the limit of {LIMIT} bytes")
    assert files_under(server.data_dir / "projects" / project["id"]) == []
    snapshot = api.snapshot(project)
    assert snapshot["project"]["source"] is None
    assert snapshot["jobs"] == []


def test_non_video_upload_fails_ingest(server_factory: ServerFactory, api_for: Any, media: MediaFactory) -> None:
    server = server_factory.start()
    api: Api = api_for(server)
    project = api.create_project()

    uploaded = api.upload(project, media.random_bytes(), name="notes.mp4")
    snapshot = api.wait_done(project)

    assert uploaded.status_code == 202
    (ingest,) = snapshot["jobs"]
    assert ingest["state"] == "failed"
    assert ingest["error"].startswith("notes.mp4: ")
    assert snapshot["outputs"] == []


def test_second_upload_is_409(server_factory: ServerFactory, api_for: Any, media: MediaFactory) -> None:
    server = server_factory.start()
    api: Api = api_for(server)
    project = api.create_project()
    api.upload(project, media.random_bytes(), name="first.bin")

    second = api.upload(project, media.random_bytes(), name="second.bin")

    assert second.status_code == 409
    assert "already has a source" in second.json()["error"]["message"]


def test_create_project_validation(server_factory: ServerFactory, api_for: Any) -> None:
    server = server_factory.start()
    api: Api = api_for(server)
    cases: list[tuple[Any, int, str]] = [
        ({"platforms": ["myspace"]}, 422, "unknown platform myspace"),
        ({"platforms": []}, 422, "platforms"),
        ({"fill": "stretch"}, 422, "fill"),
        ({"part_length": 0.1}, 422, "part_length"),
        ({"url": "ftp://example.org/a.mp4"}, 422, "invalid URL: use an http:// or https:// address"),
        ({"url": "file:///etc/passwd"}, 422, "invalid URL"),
        ({"priority": 1000}, 422, "priority"),
        ({"colour": "red"}, 422, "colour"),
    ]
    for body, status, text in cases:
        response = api.request("POST", "/api/projects", json=body)
        assert response.status_code == status, (body, response.text)
        assert text in response.json()["error"]["message"], (body, response.text)

    malformed = api.request("POST", "/api/projects", content=b"{not json", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "bad_request"


def test_priority_validation_and_conflicts(server_factory: ServerFactory, api_for: Any, media: MediaFactory) -> None:
    server = server_factory.start()
    api: Api = api_for(server)
    project = api.create_project()
    api.upload(project, media.random_bytes(), name="junk.mp4")
    snapshot = api.wait_done(project)
    job_id = snapshot["jobs"][0]["id"]
    editor = project["editor_token"]

    bad_body = api.request("POST", f"/api/jobs/{job_id}/priority", token=editor, json={"priority": "high"})
    on_failed = api.request("POST", f"/api/jobs/{job_id}/priority", token=editor, json={"priority": 3})
    cancel_failed = api.request("POST", f"/api/jobs/{job_id}/cancel", token=editor)
    retried = api.request("POST", f"/api/jobs/{job_id}/retry", token=editor)

    assert bad_body.status_code == 422
    assert on_failed.status_code == 409
    assert cancel_failed.status_code == 409
    assert "only queued or running jobs can be cancelled" in cancel_failed.json()["error"]["message"]
    assert retried.status_code == 200
    snapshot = api.wait_snapshot(project, lambda s: s["jobs"][0]["attempt"] == 2 and s["jobs"][0]["state"] == "failed", "retry to fail again")
    # Each failed attempt is in the feed, with the retry between them.
    assert [entry["action"] for entry in snapshot["activity"]][-3:] == ["fail", "retry", "fail"]
    assert snapshot["activity"][-1]["actor"] == "system"
    assert snapshot["activity"][-1]["text"].startswith("The ingest failed: junk.mp4: ")


def test_service_endpoints(server_factory: ServerFactory, api_for: Any) -> None:
    server = server_factory.start()
    api: Api = api_for(server)
    project = api.create_project()

    platforms = api.request("GET", "/api/platforms").json()
    metrics = api.request("GET", "/metrics")
    openapi = api.request("GET", "/openapi.json").json()
    docs = api.request("GET", "/docs")
    share_page = api.request("GET", f"/p/{project['id']}")
    health = api.request("GET", "/healthz").json()

    assert "tiktok" in [preset["name"] for preset in platforms["platforms"]]
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'viralsplit_jobs{state="queued"} 0' in metrics.text
    assert "viralsplit_upload_bytes_total 0" in metrics.text
    assert "viralsplit_connections 0" in metrics.text
    assert "viralsplit_frames_published_total" in metrics.text
    assert "/api/projects/{project_id}" in openapi["paths"]
    assert docs.status_code == 200
    assert share_page.status_code == 200
    assert share_page.headers["content-type"].startswith("text/html")
    assert health["status"] == "ok"
