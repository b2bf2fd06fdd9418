"""Request and response bodies of the REST API, validated by quart-schema with pydantic."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from viralsplit.media.presets import DEFAULT_PLATFORMS, PRESETS

# Bounds of a job priority; nice values clamp anyway, these keep numbers readable.
MIN_PRIORITY = -100
MAX_PRIORITY = 100
MAX_URL_LENGTH = 2048


class CreateProject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field("", max_length=200, description="shown in the page and in output file names")
    platforms: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PLATFORMS),
        min_length=1,
        max_length=len(PRESETS),
        description="preset names from GET /api/platforms",
    )
    fill: Literal["crop", "blur", "pad"] = "crop"
    part_length: float | None = Field(
        None, ge=1.0, le=12 * 3600.0, description="maximum part length in seconds; default: min(60, platform limit)"
    )
    url: str | None = Field(None, max_length=MAX_URL_LENGTH, description="http(s) URL to fetch with yt-dlp instead of an upload")
    priority: int = Field(0, ge=MIN_PRIORITY, le=MAX_PRIORITY, description="priority of the project's jobs; higher runs first")

    @field_validator("platforms")
    @classmethod
    def known_platforms(cls, platforms: list[str]) -> list[str]:
        unknown = [name for name in platforms if name not in PRESETS]
        if unknown:
            raise ValueError(f"unknown platform {', '.join(unknown)}: use one of {', '.join(PRESETS)}")
        return list(dict.fromkeys(platforms))

    @field_validator("url")
    @classmethod
    def http_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        url = url.strip()
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("invalid URL: use an http:// or https:// address")
        return url


class CreatedProject(BaseModel):
    id: str
    editor_token: str = Field(description="shown only in this response; only its SHA-256 hash is stored")
    viewer_token: str = Field(description="shown only in this response; only its SHA-256 hash is stored")
    editor_url: str
    viewer_url: str
    ingest_job_id: str | None = Field(None, description="set when the project was created from a URL")


class SetPriority(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: int = Field(ge=MIN_PRIORITY, le=MAX_PRIORITY, description="higher runs first; a running job's nice is clamp(10 - priority, 0, 19)")


class Accepted(BaseModel):
    status: str = "ok"


class UploadAccepted(BaseModel):
    project_id: str
    ingest_job_id: str
    size_bytes: int
