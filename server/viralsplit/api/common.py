"""Shared HTTP pieces: the JSON error format, error handlers and token checks.

Every error response has the body {"error": {"code": CODE, "message": MESSAGE}}. Messages
never contain a token, and a missing project, job or output answers exactly like a wrong
token (403), so a caller without a valid token learns nothing about what exists.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

from quart import Quart, Response, current_app, g, jsonify, request
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from viralsplit.auth import Actor, Role
from viralsplit.errors import (
    InputError,
    NotFoundError,
    PermissionDeniedError,
    StateError,
    ViralSplitError,
)

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

NAME_HEADER = "X-Viralsplit-Name"
MAX_NAME_LENGTH = 40


class AuthError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


MISSING_TOKEN = AuthError(401, "unauthorized", "missing token: send the header Authorization: Bearer TOKEN")
INVALID_TOKEN = AuthError(403, "forbidden", "the token is not valid for this resource")


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, field: str | None = None
) -> Response:
    """Build the JSON error body; `field` names the request field at fault, when there is one."""
    error: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    response = jsonify({"error": error})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def install_error_handlers(app: Quart) -> None:
    @app.errorhandler(AuthError)
    async def auth_error(exc: AuthError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, headers)

    @app.errorhandler(RequestSchemaValidationError)
    async def schema_error(exc: RequestSchemaValidationError) -> Response:
        return error_response(422, "invalid_request", describe_validation_error(exc.validation_error))

    @app.errorhandler(NotFoundError)
    async def not_found(exc: NotFoundError) -> Response:
        return error_response(404, "not_found", str(exc))

    @app.errorhandler(StateError)
    async def conflict(exc: StateError) -> Response:
        return error_response(409, "conflict", str(exc))

    @app.errorhandler(PermissionDeniedError)
    async def denied(exc: PermissionDeniedError) -> Response:
        return error_response(403, "forbidden", str(exc))

    @app.errorhandler(InputError)
    async def invalid_input(exc: InputError) -> Response:
        return error_response(422, "invalid_input", str(exc))

    @app.errorhandler(ViralSplitError)
    async def other_error(exc: ViralSplitError) -> Response:
        log.error("request %s %s failed: %s", request.method, request.path, exc)
        return error_response(500, "internal", str(exc))

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        code = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name or "error"
        if exc.code == 400:
            message = "invalid request body: send a JSON object with the header Content-Type: application/json"
        return error_response(exc.code or 500, code, message)


def describe_validation_error(error: Exception) -> str:
    """Turn a pydantic ValidationError into one line: "platforms: list should have at least 1 item"."""
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return str(error)
    parts = []
    for item in errors():
        location = ".".join(str(part) for part in item.get("loc", ()) if part != "body") or "body"
        parts.append(f"{location}: {item.get('msg', 'invalid value')}")
    return "; ".join(parts) or "invalid request body"


def bearer_token(*, allow_query: bool = False) -> str | None:
    """Return the request's token from the Authorization header, or from ?token= when `allow_query`."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if allow_query:
        return request.args.get("token") or None
    return None


def actor_name(role: Role) -> str:
    name = " ".join(request.headers.get(NAME_HEADER, "").split())[:MAX_NAME_LENGTH]
    return name or f"an {role.value}"


def authorize(project_id: str | None, *, editor: bool, allow_query: bool = False) -> Actor:
    """Check the request's token against a project and return the acting Actor; raise AuthError.

    `project_id` None means the resource does not exist, which answers like a wrong token.
    """
    from viralsplit.app import get_services

    token = bearer_token(allow_query=allow_query)
    if token is None:
        raise MISSING_TOKEN
    if project_id is None:
        raise INVALID_TOKEN
    role = get_services(current_app).store.authenticate(project_id, token)
    if role is None:
        raise INVALID_TOKEN
    if editor and role != Role.EDITOR:
        raise AuthError(403, "forbidden", "a viewer token can only watch; use the editor link to act")
    actor = Actor(actor_name(role), role)
    g.actor = actor
    return actor


def no_store(function: F) -> F:
    """Mark a JSON response as not cacheable (snapshots change constantly)."""

    @wraps(function)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        response = await current_app.make_response(await function(*args, **kwargs))
        response.headers["Cache-Control"] = "no-store"
        return response

    return wrapper  # type: ignore[return-value]
