"""Roles and actors: who has which token of a project, and how tokens are stored."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import secrets


class Role(str, enum.Enum):
    """Permission level of a token: an editor may act on jobs, a viewer may only read."""

    EDITOR = "editor"
    VIEWER = "viewer"


@dataclasses.dataclass(frozen=True)
class Actor:
    """Requester of an action: the display name shown in the activity feed and the token's role."""

    name: str
    role: Role


SYSTEM = Actor("system", Role.EDITOR)


def new_token() -> str:
    """Return a random URL-safe token with 192 bits of entropy."""
    return secrets.token_urlsafe(24)


def hash_token(token: str) -> str:
    """Return the SHA-256 hex digest stored in place of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
