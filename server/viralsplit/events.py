"""Events that the job layer publishes and the realtime layer turns into frames.

The scheduler and pipeline call `EventSink.publish` after the change the event describes has
been committed to the store, so a snapshot read after an event was published reflects it.
`publish` is synchronous and must not block: the hub encodes and queues, nothing more.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from viralsplit.jobs.model import JobState
from viralsplit.media.progress import Progress


@dataclasses.dataclass(frozen=True)
class JobStateChanged:
    job_id: str
    state: JobState
    # Set when state is FAILED: the message shown to users.
    error: str | None = None
    priority: int = 0
    attempt: int = 1


@dataclasses.dataclass(frozen=True)
class JobProgress:
    job_id: str
    progress: Progress
    # True for the last progress event of a run; the hub never throttles it away.
    final: bool = False


@dataclasses.dataclass(frozen=True)
class JobPriorityChanged:
    job_id: str
    priority: int
    # Queue position of every queued job of the project after the change, first to run first.
    queue_order: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class JobAdded:
    """A new job was created (the ingest queued its renders, or a retry re-queued one)."""

    job_id: str
    kind: str
    label: str
    priority: int


@dataclasses.dataclass(frozen=True)
class OutputReady:
    output_id: str
    job_id: str
    platform: str
    part: int
    parts: int
    width: int
    height: int
    duration_s: float
    size_bytes: int


@dataclasses.dataclass(frozen=True)
class SourceReady:
    """The ingest probed the source; `info` is the JSON form of MediaInfo shown to users."""

    info: dict[str, object]


@dataclasses.dataclass(frozen=True)
class Activity:
    """A record of who did what, persisted in the project's event log and shown in the activity feed."""

    event_id: int
    at: float  # Unix time, seconds
    actor: str  # display name; "system" for the server itself
    action: str  # cancel, cancel_project, set_priority, retry, upload, create, fail
    text: str  # "Ana cancelled the Shorts render"
    job_id: str | None = None


Event = (
    JobStateChanged
    | JobProgress
    | JobPriorityChanged
    | JobAdded
    | OutputReady
    | SourceReady
    | Activity
)


class EventSink(Protocol):
    def publish(self, project_id: str, event: Event) -> None: ...


class NullSink:
    """An EventSink that drops everything, for the CLI and tests without a hub."""

    def publish(self, project_id: str, event: Event) -> None:
        return None
