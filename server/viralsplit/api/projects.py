"""REST routes for projects, jobs and outputs: thin wrappers over the store and the scheduler."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from quart import Blueprint, Response, current_app, request, send_file
from quart_schema import tag, validate_request, validate_response

from viralsplit.api.common import actor_name, authorize, error_response, no_store
from viralsplit.api.schemas import Accepted, CreatedProject, CreateProject, SetPriority, UploadAccepted
from viralsplit.auth import Actor, Role
from viralsplit.egress import EgressGuard, check_url
from viralsplit.errors import DownloadError, NotFoundError, UrlRejectedError
from viralsplit.media.presets import DEFAULT_PLATFORMS, PRESETS
from viralsplit.services import Services, get_services
from viralsplit.storage import safe_name
from viralsplit.store.db import OutputRow

log = logging.getLogger(__name__)

blueprint = Blueprint("projects", __name__)

# Seconds POST /api/projects waits for a URL's host name to resolve before the early check.
URL_CHECK_TIMEOUT_S = 3.0


def services() -> Services:
    return get_services(current_app)


async def _job_project(job_id: str) -> str | None:
    job = await services().store.find_job(job_id)
    return job.project_id if job else None


# Projects.


@blueprint.post("/api/projects")
@tag(["projects"])
@validate_request(CreateProject)
@validate_response(CreatedProject, 201)
async def create_project(data: CreateProject) -> tuple[CreatedProject, int] | Response:
    """Create a project; the response is the only place its tokens are ever shown."""
    svc = services()
    if data.url:
        rejection = await _reject_url_early(data.url, svc)
        if rejection is not None:
            return error_response(422, "url_rejected", rejection, field="url")
    title = data.title.strip() or "Untitled project"
    project, editor_token, viewer_token = await svc.store.create_project(
        title=title,
        platforms=data.platforms,
        fill=data.fill,
        part_length_s=data.part_length,
        priority=data.priority,
        source_url=data.url,
    )
    log.info("project %s created (%s)", project.id, "url" if data.url else "upload")
    creator = Actor(actor_name(Role.EDITOR), Role.EDITOR)
    text = f"{creator.name} created the project"
    await svc.scheduler.record_activity(project.id, creator, "create", text[0].upper() + text[1:])
    ingest_job_id = None
    if data.url:
        ingest_job_id = await svc.scheduler.submit_ingest(project.id, project.priority)
    created = CreatedProject(
        id=project.id,
        editor_token=editor_token,
        viewer_token=viewer_token,
        editor_url=f"/p/{project.id}#token={editor_token}",
        viewer_url=f"/p/{project.id}#token={viewer_token}",
        ingest_job_id=ingest_job_id,
    )
    return created, 201


async def _reject_url_early(url: str, svc: Services) -> str | None:
    """Return why the egress guard rejects `url`, checked before a project exists, or None.

    The ingest job checks every connection again, so a name that cannot be resolved in time
    here is left to it rather than failing the request.
    """
    try:
        await asyncio.wait_for(check_url(url, EgressGuard(svc.config.url_allowlist)), URL_CHECK_TIMEOUT_S)
    except UrlRejectedError as exc:
        log.info("project not created: %s", exc)
        return str(exc)
    except (DownloadError, asyncio.TimeoutError):
        return None
    return None


@blueprint.get("/api/projects/<project_id>")
@tag(["projects"])
@no_store
async def get_project(project_id: str) -> dict[str, Any]:
    """Return the project snapshot: project, source info, jobs with progress, outputs and activity."""
    authorize(project_id, editor=False)
    return await services().snapshot(project_id)


@blueprint.post("/api/projects/<project_id>/cancel")
@tag(["projects"])
@validate_response(Accepted)
async def cancel_project(project_id: str) -> Accepted:
    """Cancel every queued and running job of the project."""
    actor = authorize(project_id, editor=True)
    await services().scheduler.cancel_project(project_id, actor)
    return Accepted()


@blueprint.put("/api/projects/<project_id>/source")
@tag(["projects"])
@validate_response(UploadAccepted, 202)
async def upload_source(project_id: str) -> Response:
    """Upload the source video as the raw request body (any Content-Type), streamed to disk.

    `?name=clip.mp4` gives the file name shown to users. Returns 413 over the size limit and 409
    when the project already has a source. The upload middleware serves this path; this
    route only documents it.
    """
    return error_response(404, "not_found", "the upload route is served by the upload middleware")


# Jobs.


@blueprint.post("/api/jobs/<job_id>/cancel")
@tag(["jobs"])
@validate_response(Accepted)
async def cancel_job(job_id: str) -> Accepted:
    """Cancel a queued or running job; returns once its processes are stopped and its files removed."""
    actor = authorize(await _job_project(job_id), editor=True)
    await services().scheduler.cancel_job(job_id, actor)
    return Accepted()


@blueprint.post("/api/jobs/<job_id>/priority")
@tag(["jobs"])
@validate_request(SetPriority)
@validate_response(Accepted)
async def set_priority(job_id: str, data: SetPriority) -> Accepted:
    """Set a queued or running job's priority (higher runs first)."""
    actor = authorize(await _job_project(job_id), editor=True)
    await services().scheduler.set_priority(job_id, data.priority, actor)
    return Accepted()


@blueprint.post("/api/jobs/<job_id>/retry")
@tag(["jobs"])
@validate_response(Accepted)
async def retry_job(job_id: str) -> Accepted:
    """Queue a failed or cancelled job again."""
    actor = authorize(await _job_project(job_id), editor=True)
    await services().scheduler.retry_job(job_id, actor)
    return Accepted()


# Outputs: the token may also come as ?token= because <video> and <img> cannot send headers.


@blueprint.get("/api/outputs/<output_id>")
@tag(["outputs"])
async def download_output(output_id: str) -> Response:
    """Send an output MP4 with Range and ETag support; `?download=1` makes it an attachment."""
    output = await _authorized_output(output_id)
    project = await services().store.get_project(output.project_id)
    path = _existing_file(output.path, f"output {output_id}")
    response = await send_file(path, mimetype="video/mp4", conditional=True)
    disposition = "attachment" if request.args.get("download") else "inline"
    response.headers["Content-Disposition"] = f'{disposition}; filename="{output_file_name(project.title, output)}"'
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@blueprint.get("/api/outputs/<output_id>/thumbnail")
@tag(["outputs"])
async def output_thumbnail(output_id: str) -> Response:
    """Send an output's JPEG thumbnail."""
    output = await _authorized_output(output_id)
    if not output.thumbnail_path:
        raise NotFoundError(f"output {output_id} has no thumbnail")
    path = _existing_file(output.thumbnail_path, f"the thumbnail of output {output_id}")
    response = await send_file(path, mimetype="image/jpeg", conditional=True)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


async def _authorized_output(output_id: str) -> OutputRow:
    """Return the output after checking the token (header or ?token=) against its project."""
    try:
        output: OutputRow | None = await services().store.get_output(output_id)
    except NotFoundError:
        output = None
    authorize(output.project_id if output else None, editor=False, allow_query=True)
    assert output is not None
    return output


def _existing_file(relative: str, what: str) -> Path:
    path = services().storage.absolute(relative)
    if not path.is_file():
        raise NotFoundError(f"{what} is missing from the data dir")
    return path


def output_file_name(title: str, output: OutputRow) -> str:
    """Return e.g. "holiday-video-tiktok-part-2-of-3.mp4", or without the part for a single one."""
    stem = safe_name(title.lower().replace(" ", "-"), default="viralsplit")
    name = f"{stem}-{output.platform}"
    if output.parts > 1:
        name += f"-part-{output.part}-of-{output.parts}"
    return f"{name}.mp4"


# Platforms.


@blueprint.get("/api/platforms")
@tag(["platforms"])
async def platforms() -> dict[str, Any]:
    """List the platform presets and the default selection."""
    return {
        "platforms": [preset.to_json() for preset in PRESETS.values()],
        "default": list(DEFAULT_PLATFORMS),
    }
