"""The SQLite store: WAL mode, migrations, token hashes and consistent snapshot reads."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from viralsplit.auth import Role, hash_token
from viralsplit.errors import NotFoundError
from viralsplit.jobs.model import JobKind, JobState
from viralsplit.store.db import NewJob, Store, new_id
from viralsplit.store.migrations import MIGRATIONS


async def open_store(path: Path) -> Store:
    store = Store(path)
    await store.open()
    return store


async def test_store_uses_wal_and_migrates_once(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = await open_store(path)
    assert await store.journal_mode() == "wal"
    assert await store.schema_version() == len(MIGRATIONS)
    await store.close()

    reopened = await open_store(path)

    assert await reopened.schema_version() == len(MIGRATIONS)
    await reopened.close()


async def test_store_rejects_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")

    with pytest.raises(RuntimeError, match="newer than this program"):
        await open_store(path)


async def test_tokens_stored_only_as_hashes(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = await open_store(path)
    project, editor, viewer = await store.create_project(
        title="t", platforms=["x"], fill="crop", part_length_s=None, priority=0, source_url=None
    )
    await store.close()

    # Closing checkpoints the WAL into the main file and removes it.
    raw = b"".join(file.read_bytes() for file in tmp_path.glob("db.sqlite3*"))
    assert editor.encode() not in raw
    assert viewer.encode() not in raw
    assert hash_token(editor).encode() in raw
    reopened = await open_store(path)
    assert reopened.authenticate(project.id, editor) == Role.EDITOR
    assert reopened.authenticate(project.id, viewer) == Role.VIEWER
    assert reopened.authenticate(project.id, "guess") is None
    assert reopened.authenticate("0000000000000000", editor) is None
    assert reopened.authenticate(project.id, None) is None
    await reopened.close()


async def test_snapshot_read_ignores_open_transaction(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "db.sqlite3")
    project, _, _ = await store.create_project(
        title="t", platforms=["x"], fill="crop", part_length_s=None, priority=0, source_url=None
    )
    job = await store.insert_job(NewJob(new_id(), project.id, JobKind.INGEST, "Ingest", (), 0))

    async with store.transaction():
        await store.set_job_state(job.id, JobState.RUNNING, started=True)
        _, jobs, _, _ = await store.read_project_state(project.id, 50)
        assert jobs[0].state == JobState.QUEUED

    _, jobs, _, _ = await store.read_project_state(project.id, 50)
    assert jobs[0].state == JobState.RUNNING
    with pytest.raises(NotFoundError):
        await store.read_project_state("0000000000000000", 50)
    await store.close()
