"""Job states, kinds and the legal transitions between states."""

from __future__ import annotations

import enum

from viralsplit.errors import StateError


class JobState(str, enum.Enum):
    """A job's lifecycle state, stored as its lowercase value."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


class JobKind(str, enum.Enum):
    """What a job does: fetch and probe the source and plan, or encode one rendition."""

    INGEST = "ingest"
    RENDER = "render"


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})

# RUNNING -> QUEUED happens only in crash recovery; FAILED/CANCELLED -> QUEUED is a retry.
_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED}),
    JobState.RUNNING: frozenset(
        {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.QUEUED}
    ),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset({JobState.QUEUED}),
    JobState.CANCELLED: frozenset({JobState.QUEUED}),
}


def check_transition(current: JobState, new: JobState) -> None:
    """Raise StateError unless a job may move from `current` to `new`."""
    if new not in _TRANSITIONS[current]:
        raise StateError(f"job cannot move from {current.value} to {new.value}")
