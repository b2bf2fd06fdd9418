"""Editor tokens act, viewer tokens only read, and a missing or wrong token learns nothing."""

from __future__ import annotations

from typing import Any

import httpx

from conftest import Api
from mediagen import MediaFactory
from servers import ServerFactory


def test_viewer_cannot_act(server_factory: ServerFactory, api_for: Any, media: MediaFactory) -> None:
    server = server_factory.start()
    api: Api = api_for(server)
    project = api.create_project()
    job_id = api.upload(project, media.random_bytes(), name="junk.mp4").json()["ingest_job_id"]
    viewer = project["viewer_token"]

    reads = api.request("GET", f"/api/projects/{project['id']}", token=viewer)
    cancel = api.request("POST", f"/api/jobs/{job_id}/cancel", token=viewer)
    priority = api.request("POST", f"/api/jobs/{job_id}/priority", token=viewer, json={"priority": 5})
    retry = api.request("POST", f"/api/jobs/{job_id}/retry", token=viewer)
    cancel_project = api.request("POST", f"/api/projects/{project['id']}/cancel", token=viewer)

    assert reads.status_code == 200
    for response in (cancel, priority, retry, cancel_project):
        assert response.status_code == 403, response.text
        assert response.json()["error"]["message"] == "a viewer token can only watch; use the editor link to act"
    snapshot = api.snapshot(project)
    ingest = next(job for job in snapshot["jobs"] if job["id"] == job_id)
    assert ingest["priority"] == 0
    assert [entry["action"] for entry in snapshot["activity"]] == ["create", "upload"]


def test_missing_token_cannot_read(server_factory: ServerFactory, api_for: Any) -> None:
    server = server_factory.start()
    api: Api = api_for(server)
    project = api.create_project()

    missing = api.request("GET", f"/api/projects/{project['id']}")
    wrong = api.request("GET", f"/api/projects/{project['id']}", token="not-a-token")
    other = api.create_project()
    crossed = api.request("GET", f"/api/projects/{project['id']}", token=other["editor_token"])
    unknown = api.request("GET", "/api/projects/0123456789abcdef", token=project["editor_token"])
    unknown_job = api.request("POST", "/api/jobs/0123456789abcdef/cancel", token=project["editor_token"])
    unknown_output = api.request("GET", "/api/outputs/0123456789abcdef", params={"token": project["editor_token"]})
    query_token = api.request("GET", f"/api/projects/{project['id']}", params={"token": project["editor_token"]})

    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert project["id"] not in missing.text
    # A wrong token, another project's token and an unknown id all get the same response.
    for response in (wrong, crossed, unknown, unknown_job, unknown_output):
        assert response.status_code == 403, response.text
        assert response.json() == {"error": {"code": "forbidden", "message": "the token is not valid for this resource"}}
    # ?token= is accepted only on media URLs.
    assert query_token.status_code == 401


def test_upload_needs_editor_token(server_factory: ServerFactory, api_for: Any) -> None:
    server = server_factory.start()
    api: Api = api_for(server)
    project = api.create_project()
    path = f"/api/projects/{project['id']}/source"

    missing = api.request("PUT", path, content=b"x" * 1000)
    viewer = api.request("PUT", path, token=project["viewer_token"], content=b"x" * 1000)

    assert missing.status_code == 401
    assert viewer.status_code == 403
    assert api.snapshot(project)["project"]["source"] is None


def test_create_activity_names_creator(server_factory: ServerFactory) -> None:
    server = server_factory.start()
    body = {"title": "Names", "platforms": ["x"]}

    named = httpx.post(f"{server.url}/api/projects", json=body, headers={"X-Viralsplit-Name": "Ana"}).json()
    anonymous = httpx.post(f"{server.url}/api/projects", json=body).json()

    def first_activity(project: dict[str, Any]) -> str:
        headers = {"Authorization": f"Bearer {project['viewer_token']}"}
        snapshot = httpx.get(f"{server.url}/api/projects/{project['id']}", headers=headers).json()
        return str(snapshot["activity"][0]["text"])

    assert first_activity(named) == "Ana created the project"
    assert first_activity(anonymous) == "An editor created the project"
