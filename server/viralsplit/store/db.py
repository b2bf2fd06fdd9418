"""The SQLite store: projects, jobs, outputs, the event log and job processes.

aiosqlite runs each connection's queries on its own thread, so the event loop never blocks
on the database. One connection does all writes and the reads of the scheduler; a second,
read-only one serves snapshots. The database is in WAL mode with synchronous=FULL, so a
committed state change (a cancel in particular) survives a crash of the server and, as far
as the disk honours fsync, of the machine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import secrets
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from viralsplit.auth import Role, hash_token, new_token
from viralsplit.errors import NotFoundError
from viralsplit.jobs.model import JobKind, JobState
from viralsplit.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)

def new_id() -> str:
    """Return a random 16-character hex id."""
    return secrets.token_hex(8)


@dataclasses.dataclass(frozen=True)
class ProjectRow:
    id: str
    title: str
    platforms: tuple[str, ...]
    fill: str
    part_length_s: float | None
    priority: int
    created_at: float
    source_kind: str | None
    source_name: str | None
    source_url: str | None
    source_size: int | None
    source_path: str | None
    info: dict[str, Any] | None


@dataclasses.dataclass(frozen=True)
class JobRow:
    id: str
    project_id: str
    parent_id: str | None
    kind: JobKind
    label: str
    platforms: tuple[str, ...]
    rendition: dict[str, Any] | None
    state: JobState
    priority: int
    seq: int
    attempt: int
    error: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None


@dataclasses.dataclass(frozen=True)
class OutputRow:
    id: str
    job_id: str
    project_id: str
    platform: str
    part: int
    parts: int
    width: int
    height: int
    duration_s: float
    size_bytes: int
    path: str
    thumbnail_path: str | None
    created_at: float


@dataclasses.dataclass(frozen=True)
class EventRow:
    id: int
    project_id: str
    at: float
    actor: str
    action: str
    text: str
    job_id: str | None


@dataclasses.dataclass(frozen=True)
class NewJob:
    """A job to insert; `seq` is assigned by the store."""

    id: str
    project_id: str
    kind: JobKind
    label: str
    platforms: tuple[str, ...]
    priority: int
    parent_id: str | None = None
    rendition: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class NewOutput:
    id: str
    platform: str
    part: int
    parts: int
    width: int
    height: int
    duration_s: float
    size_bytes: int
    path: str
    thumbnail_path: str | None


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        # A second connection for snapshots: in WAL mode it reads only committed data, never
        # a transaction the scheduler has open on the main connection.
        self._reader: aiosqlite.Connection | None = None
        self._read_lock = asyncio.Lock()
        self._next_seq = 1
        # Token hashes by project id, so authenticate() is a dictionary lookup.
        self._token_hashes: dict[str, tuple[str, str]] = {}

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    # Lifecycle.

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        self._db.row_factory = aiosqlite.Row
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=FULL")
        await self._db.execute("PRAGMA foreign_keys=ON")
        await self._db.execute("PRAGMA busy_timeout=5000")
        try:
            await self._migrate()
        except BaseException:
            await self.close()
            raise
        async with self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs") as cursor:
            row = await cursor.fetchone()
        self._next_seq = int(row[0]) + 1 if row else 1
        async with self._db.execute("SELECT id, editor_hash, viewer_hash FROM projects") as cursor:
            async for row in cursor:
                self._token_hashes[row["id"]] = (row["editor_hash"], row["viewer_hash"])
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        self._reader.row_factory = aiosqlite.Row
        await self._reader.execute("PRAGMA busy_timeout=5000")
        await self._reader.execute("PRAGMA query_only=ON")

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _migrate(self) -> None:
        async with self.db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"database {self.path} has schema version {version}, newer than this program's "
                f"{len(MIGRATIONS)}: upgrade viralsplit"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            log.info("applying database migration %d", number)
            await self.db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")

    async def schema_version(self) -> int:
        async with self.db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def journal_mode(self) -> str:
        async with self.db.execute("PRAGMA journal_mode") as cursor:
            row = await cursor.fetchone()
        return str(row[0]) if row else ""

    async def read_project_state(
        self, project_id: str, activity_limit: int
    ) -> tuple[ProjectRow, list[JobRow], list[OutputRow], list[EventRow]]:
        """Read a project with its jobs, outputs and newest events from one committed state.

        Raises NotFoundError for an unknown project.
        """
        if self._reader is None:
            raise RuntimeError("store is not open")
        reader = self._reader
        async with self._read_lock:
            await reader.execute("BEGIN")
            try:
                async with reader.execute("SELECT * FROM projects WHERE id = ?", (project_id,)) as cursor:
                    project_row = await cursor.fetchone()
                if project_row is None:
                    raise NotFoundError(f"project {project_id} not found")
                async with reader.execute(
                    "SELECT * FROM jobs WHERE project_id = ? ORDER BY created_at, seq", (project_id,)
                ) as cursor:
                    jobs = [_job(row) for row in await cursor.fetchall()]
                async with reader.execute(
                    "SELECT * FROM outputs WHERE project_id = ? ORDER BY created_at, platform, part", (project_id,)
                ) as cursor:
                    outputs = [_output(row) for row in await cursor.fetchall()]
                async with reader.execute(
                    "SELECT * FROM events WHERE project_id = ? ORDER BY id DESC LIMIT ?", (project_id, activity_limit)
                ) as cursor:
                    events = [_event(row) for row in reversed(await cursor.fetchall())]
            finally:
                await reader.execute("COMMIT")
        return _project(project_row), jobs, outputs, events

    # Transactions: `async with store.transaction():` groups writes into one commit.

    def transaction(self) -> _Transaction:
        return _Transaction(self.db)

    # Tokens.

    def authenticate(self, project_id: str, token: str | None) -> Role | None:
        """Return the role of a valid token of the project; None for any other token or project."""
        hashes = self._token_hashes.get(project_id)
        if hashes is None or not token:
            return None
        digest = hash_token(token)
        if hmac.compare_digest(digest, hashes[0]):
            return Role.EDITOR
        if hmac.compare_digest(digest, hashes[1]):
            return Role.VIEWER
        return None

    # Projects.

    async def create_project(
        self,
        *,
        title: str,
        platforms: Sequence[str],
        fill: str,
        part_length_s: float | None,
        priority: int,
        source_url: str | None,
    ) -> tuple[ProjectRow, str, str]:
        """Insert a project; return it with its editor and viewer tokens (only their hashes are stored)."""
        project_id = new_id()
        editor_token = new_token()
        viewer_token = new_token()
        hashes = (hash_token(editor_token), hash_token(viewer_token))
        await self.db.execute(
            """INSERT INTO projects (id, title, platforms, fill, part_length_s, priority, created_at,
                   editor_hash, viewer_hash, source_kind, source_url)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                project_id,
                title,
                json.dumps(list(platforms)),
                fill,
                part_length_s,
                priority,
                time.time(),
                hashes[0],
                hashes[1],
                "url" if source_url else None,
                source_url,
            ),
        )
        self._token_hashes[project_id] = hashes
        return await self.get_project(project_id), editor_token, viewer_token

    async def get_project(self, project_id: str) -> ProjectRow:
        async with self.db.execute("SELECT * FROM projects WHERE id = ?", (project_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise NotFoundError(f"project {project_id} not found")
        return _project(row)

    async def list_project_ids(self) -> list[str]:
        async with self.db.execute("SELECT id FROM projects") as cursor:
            return [row[0] for row in await cursor.fetchall()]

    async def set_source(self, project_id: str, *, kind: str, name: str, size: int, path: str) -> None:
        await self.db.execute(
            "UPDATE projects SET source_kind = ?, source_name = ?, source_size = ?, source_path = ? WHERE id = ?",
            (kind, name, size, path, project_id),
        )

    async def set_info(self, project_id: str, info: dict[str, Any]) -> None:
        await self.db.execute("UPDATE projects SET info = ? WHERE id = ?", (json.dumps(info), project_id))

    # Jobs.

    async def insert_job(self, job: NewJob) -> JobRow:
        seq = self._take_seq()
        await self.db.execute(
            """INSERT INTO jobs (id, project_id, parent_id, kind, label, platforms, rendition, state,
                   priority, seq, attempt, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)""",
            (
                job.id,
                job.project_id,
                job.parent_id,
                job.kind.value,
                job.label,
                json.dumps(list(job.platforms)),
                json.dumps(job.rendition) if job.rendition is not None else None,
                JobState.QUEUED.value,
                job.priority,
                seq,
                time.time(),
            ),
        )
        return await self.get_job(job.id)

    async def get_job(self, job_id: str) -> JobRow:
        async with self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise NotFoundError(f"job {job_id} not found")
        return _job(row)

    async def find_job(self, job_id: str) -> JobRow | None:
        try:
            return await self.get_job(job_id)
        except NotFoundError:
            return None

    async def list_jobs(self, project_id: str) -> list[JobRow]:
        async with self.db.execute(
            "SELECT * FROM jobs WHERE project_id = ? ORDER BY created_at, seq", (project_id,)
        ) as cursor:
            return [_job(row) for row in await cursor.fetchall()]

    async def jobs_in_states(self, states: Iterable[JobState]) -> list[JobRow]:
        values = [state.value for state in states]
        marks = ", ".join("?" for _ in values)
        async with self.db.execute(
            f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY seq", values
        ) as cursor:
            return [_job(row) for row in await cursor.fetchall()]

    async def children(self, job_id: str) -> list[JobRow]:
        async with self.db.execute("SELECT * FROM jobs WHERE parent_id = ? ORDER BY seq", (job_id,)) as cursor:
            return [_job(row) for row in await cursor.fetchall()]

    async def count_jobs_by_state(self) -> dict[str, int]:
        async with self.db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state") as cursor:
            return {row[0]: int(row[1]) for row in await cursor.fetchall()}

    async def set_job_state(
        self,
        job_id: str,
        state: JobState,
        *,
        error: str | None = None,
        started: bool = False,
        ended: bool = False,
        reset_run: bool = False,
        requeue: bool = False,
        next_attempt: bool = False,
    ) -> None:
        """Write a job's state. The caller (the scheduler) has checked the transition.

        `reset_run` clears the start and end times; `requeue` also moves the job to the back
        of its priority; `next_attempt` counts one more attempt (a retry; crash recovery keeps
        the count).
        """
        now = time.time()
        sets = ["state = ?", "error = ?"]
        values: list[Any] = [state.value, error]
        if started:
            sets.append("started_at = ?")
            values.append(now)
        if ended:
            sets.append("ended_at = ?")
            values.append(now)
        if reset_run:
            sets += ["started_at = NULL", "ended_at = NULL"]
        if requeue:
            sets.append("seq = ?")
            values.append(self._take_seq())
        if next_attempt:
            sets.append("attempt = attempt + 1")
        values.append(job_id)
        await self.db.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?", values)

    async def set_job_priority(self, job_id: str, priority: int) -> None:
        await self.db.execute("UPDATE jobs SET priority = ? WHERE id = ?", (priority, job_id))

    def _take_seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        return seq

    # Outputs.

    async def insert_outputs(self, job_id: str, project_id: str, outputs: Sequence[NewOutput]) -> list[OutputRow]:
        now = time.time()
        await self.db.executemany(
            """INSERT INTO outputs (id, job_id, project_id, platform, part, parts, width, height,
                   duration_s, size_bytes, path, thumbnail_path, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                (
                    output.id,
                    job_id,
                    project_id,
                    output.platform,
                    output.part,
                    output.parts,
                    output.width,
                    output.height,
                    output.duration_s,
                    output.size_bytes,
                    output.path,
                    output.thumbnail_path,
                    now,
                )
                for output in outputs
            ],
        )
        async with self.db.execute("SELECT * FROM outputs WHERE job_id = ? ORDER BY platform, part", (job_id,)) as cursor:
            return [_output(row) for row in await cursor.fetchall()]

    async def list_outputs(self, project_id: str) -> list[OutputRow]:
        async with self.db.execute(
            "SELECT * FROM outputs WHERE project_id = ? ORDER BY created_at, platform, part", (project_id,)
        ) as cursor:
            return [_output(row) for row in await cursor.fetchall()]

    async def get_output(self, output_id: str) -> OutputRow:
        async with self.db.execute("SELECT * FROM outputs WHERE id = ?", (output_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise NotFoundError(f"output {output_id} not found")
        return _output(row)

    async def output_job_ids(self) -> set[str]:
        async with self.db.execute("SELECT DISTINCT job_id FROM outputs") as cursor:
            return {row[0] for row in await cursor.fetchall()}

    # Event log.

    async def add_event(self, project_id: str, *, actor: str, action: str, text: str, job_id: str | None) -> EventRow:
        at = time.time()
        cursor = await self.db.execute(
            "INSERT INTO events (project_id, at, actor, action, text, job_id) VALUES (?, ?, ?, ?, ?, ?)",
            (project_id, at, actor, action, text, job_id),
        )
        event_id = int(cursor.lastrowid or 0)
        await cursor.close()
        return EventRow(event_id, project_id, at, actor, action, text, job_id)

    async def list_events(self, project_id: str, limit: int = 50) -> list[EventRow]:
        async with self.db.execute(
            "SELECT * FROM events WHERE project_id = ? ORDER BY id DESC LIMIT ?", (project_id, limit)
        ) as cursor:
            rows = await cursor.fetchall()
        return [_event(row) for row in reversed(rows)]

    # Processes.

    async def add_process(self, pid: int, start_ticks: int, job_id: str) -> None:
        await self.db.execute(
            "INSERT OR REPLACE INTO processes (pid, start_ticks, job_id) VALUES (?, ?, ?)",
            (pid, start_ticks, job_id),
        )

    async def remove_processes(self, job_id: str) -> None:
        await self.db.execute("DELETE FROM processes WHERE job_id = ?", (job_id,))

    async def list_processes(self) -> list[tuple[int, int, str]]:
        async with self.db.execute("SELECT pid, start_ticks, job_id FROM processes") as cursor:
            return [(int(r[0]), int(r[1]), str(r[2])) for r in await cursor.fetchall()]

    async def clear_processes(self) -> None:
        await self.db.execute("DELETE FROM processes")


class _Transaction:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def __aenter__(self) -> None:
        await self.db.execute("BEGIN IMMEDIATE")

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            await self.db.execute("COMMIT")
        else:
            await self.db.execute("ROLLBACK")


def _project(row: aiosqlite.Row) -> ProjectRow:
    return ProjectRow(
        id=row["id"],
        title=row["title"],
        platforms=tuple(json.loads(row["platforms"])),
        fill=row["fill"],
        part_length_s=row["part_length_s"],
        priority=row["priority"],
        created_at=row["created_at"],
        source_kind=row["source_kind"],
        source_name=row["source_name"],
        source_url=row["source_url"],
        source_size=row["source_size"],
        source_path=row["source_path"],
        info=json.loads(row["info"]) if row["info"] else None,
    )


def _job(row: aiosqlite.Row) -> JobRow:
    return JobRow(
        id=row["id"],
        project_id=row["project_id"],
        parent_id=row["parent_id"],
        kind=JobKind(row["kind"]),
        label=row["label"],
        platforms=tuple(json.loads(row["platforms"])),
        rendition=json.loads(row["rendition"]) if row["rendition"] else None,
        state=JobState(row["state"]),
        priority=row["priority"],
        seq=row["seq"],
        attempt=row["attempt"],
        error=row["error"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
    )


def _event(row: aiosqlite.Row) -> EventRow:
    return EventRow(row["id"], row["project_id"], row["at"], row["actor"], row["action"], row["text"], row["job_id"])


def _output(row: aiosqlite.Row) -> OutputRow:
    return OutputRow(**{field.name: row[field.name] for field in dataclasses.fields(OutputRow)})
