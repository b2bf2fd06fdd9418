"""The built SPA at `/`, index.html for share links `/p/<id>`, and GET /healthz."""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint, Response, current_app, send_from_directory
from werkzeug.exceptions import NotFound

from viralsplit.services import get_services

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

NOT_BUILT = """<!doctype html>
<html lang="en"><meta charset="utf-8"><title>ViralSplit</title>
<p>The web page is not built. Run <code>make web</code> (or <code>make serve</code>) and reload.
The REST API is available under <a href="/docs">/docs</a>.</p></html>
"""

blueprint = Blueprint("web", __name__)


@blueprint.get("/healthz")
async def healthz() -> dict[str, object]:
    """Return {"status": "ok"} once the store is open and the scheduler runs."""
    services = get_services(current_app)
    return {
        "status": "ok",
        "queue_length": services.scheduler.queue_length,
        "running_encodes": services.running_encodes(),
    }


@blueprint.get("/")
@blueprint.get("/p/<project_id>")
async def index(project_id: str | None = None) -> Response:
    if not (STATIC_DIR / "index.html").is_file():
        return Response(NOT_BUILT, content_type="text/html; charset=utf-8")
    response = await send_from_directory(STATIC_DIR, "index.html")
    response.headers["Cache-Control"] = "no-cache"
    return response


@blueprint.get("/<path:filename>")
async def static_file(filename: str) -> Response:
    """Serve a file of the built SPA (assets, icons); anything else is 404."""
    if filename.startswith("api/") or not STATIC_DIR.is_dir():
        raise NotFound()
    return await send_from_directory(STATIC_DIR, filename)
