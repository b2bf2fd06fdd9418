"""Scheduler behaviour with a real SQLite store and a scripted pipeline (no ffmpeg).

The scripted renders start a real `sleep` process in its own session where a test needs a
process to renice or to stop.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from viralsplit.auth import Actor, Role
from viralsplit.errors import NotFoundError, PermissionDeniedError, StateError
from viralsplit.events import Event, JobPriorityChanged, JobStateChanged
from viralsplit.jobs.model import JobKind, JobState
from viralsplit.jobs.pipeline import IngestResult, JobHooks, PlannedRender, RenderResult
from viralsplit.jobs.scheduler import Scheduler, nice_for_priority, process_nice, process_start_ticks
from viralsplit.storage import Storage
from viralsplit.store.db import JobRow, ProjectRow, Store

EDITOR = Actor("Ana", Role.EDITOR)
VIEWER = Actor("Bo", Role.VIEWER)
TIMEOUT_S = 10.0


class RecordingSink:
    """Records events and, for each state event, the state the store held when it was published."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.events: list[tuple[str, Event]] = []
        self.stored_state_at_publish: list[tuple[str, str, str]] = []

    def publish(self, project_id: str, event: Event) -> None:
        self.events.append((project_id, event))
        if isinstance(event, JobStateChanged):
            with sqlite3.connect(self.db_path) as db:
                row = db.execute("SELECT state FROM jobs WHERE id = ?", (event.job_id,)).fetchone()
            self.stored_state_at_publish.append((event.job_id, event.state.value, row[0]))


class ScriptedPipeline:
    """Ingests plan `renders_per_ingest` renders; renders wait until released, optionally in a real process."""

    def __init__(self, renders_per_ingest: int = 1, with_process: bool = False) -> None:
        self.renders_per_ingest = renders_per_ingest
        self.with_process = with_process
        self.started: list[str] = []
        self.release: dict[str, asyncio.Event] = {}
        # Projects whose renders fail.
        self.fail: set[str] = set()
        self.pids: dict[str, int] = {}
        self.ingest_gate: asyncio.Event | None = None

    def gate(self, job_id: str) -> asyncio.Event:
        return self.release.setdefault(job_id, asyncio.Event())

    async def ingest(self, job: JobRow, project: ProjectRow, hooks: JobHooks) -> IngestResult:
        if self.ingest_gate is not None:
            await self.ingest_gate.wait()
        renders = tuple(
            PlannedRender(f"{project.title} render {index}", ("tiktok",), {"index": index})
            for index in range(self.renders_per_ingest)
        )
        return IngestResult({"duration_s": 1.0}, renders)

    async def render(self, job: JobRow, project: ProjectRow, hooks: JobHooks) -> RenderResult:
        self.started.append(job.id)
        if job.project_id in self.fail:
            from viralsplit.errors import FFmpegError

            raise FFmpegError("ffmpeg", 1, "Invalid data found when processing input")
        if not self.with_process:
            await self.gate(job.id).wait()
            return RenderResult(())
        proc = await asyncio.create_subprocess_exec("sleep", "30", start_new_session=True)
        self.pids[job.id] = proc.pid
        hooks.on_process(proc.pid)
        try:
            await self.gate(job.id).wait()
            return RenderResult(())
        finally:
            if proc.returncode is None:
                os.killpg(proc.pid, 9)
                await proc.wait()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    storage = Storage(tmp_path / "data")
    storage.prepare()
    store = Store(tmp_path / "data" / "db.sqlite3")
    await store.open()
    objects: dict[str, Any] = {"storage": storage, "store": store, "tmp": tmp_path, "schedulers": []}
    yield objects
    for scheduler in objects["schedulers"]:
        await scheduler.stop()
    await store.close()


def make_scheduler(env: dict[str, Any], pipeline: ScriptedPipeline, max_jobs: int = 1) -> tuple[Scheduler, RecordingSink]:
    sink = RecordingSink(env["store"].path)
    scheduler = Scheduler(
        store=env["store"],
        storage=env["storage"],
        pipeline=pipeline,  # type: ignore[arg-type]
        max_jobs=max_jobs,
        max_ingest_jobs=2,
        sink=lambda: sink,
    )
    env["schedulers"].append(scheduler)
    return scheduler, sink


async def new_project(store: Store, title: str, priority: int = 0) -> str:
    project, _, _ = await store.create_project(
        title=title, platforms=["tiktok"], fill="crop", part_length_s=None, priority=priority, source_url=None
    )
    return project.id


async def wait_for(predicate: Any, message: str) -> Any:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        value = await predicate() if asyncio.iscoroutinefunction(predicate) else predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await asyncio.sleep(0.01)


async def render_jobs(store: Store, project_id: str, count: int) -> list[JobRow]:
    async def ready() -> list[JobRow] | None:
        jobs = [job for job in await store.list_jobs(project_id) if job.kind == JobKind.RENDER]
        return jobs if len(jobs) >= count else None

    return await wait_for(ready, f"{count} render jobs of {project_id}")


async def job_state(store: Store, job_id: str) -> JobState:
    return (await store.get_job(job_id)).state


def test_nice_for_priority_clamps() -> None:
    assert nice_for_priority(0) == 10
    assert nice_for_priority(5) == 5
    assert nice_for_priority(10) == 0
    assert nice_for_priority(50) == 0
    assert nice_for_priority(-3) == 13
    assert nice_for_priority(-50) == 19


async def test_renders_start_by_priority_then_fifo(env: dict[str, Any]) -> None:
    pipeline = ScriptedPipeline()
    scheduler, _ = make_scheduler(env, pipeline)
    store: Store = env["store"]
    blocker = await new_project(store, "blocker", priority=100)
    await scheduler.start()
    await scheduler.submit_ingest(blocker, 100)
    (blocker_job,) = await render_jobs(store, blocker, 1)
    await wait_for(lambda: pipeline.started == [blocker_job.id], "blocker render start")

    low = await new_project(store, "low", priority=0)
    high = await new_project(store, "high", priority=5)
    high_second = await new_project(store, "high second", priority=5)
    for project_id, priority in ((low, 0), (high, 5), (high_second, 5)):
        await scheduler.submit_ingest(project_id, priority)
    low_job, high_job, high_second_job = [
        (await render_jobs(store, project_id, 1))[0] for project_id in (low, high, high_second)
    ]

    for expected in (blocker_job, high_job, high_second_job, low_job):
        await wait_for(lambda: expected.id in pipeline.started, f"start of {expected.label}")
        pipeline.gate(expected.id).set()
    assert pipeline.started == [blocker_job.id, high_job.id, high_second_job.id, low_job.id]


async def test_raising_queued_priority_moves_it_ahead(env: dict[str, Any]) -> None:
    pipeline = ScriptedPipeline(renders_per_ingest=3)
    scheduler, sink = make_scheduler(env, pipeline)
    store: Store = env["store"]
    project_id = await new_project(store, "three")
    await scheduler.start()
    await scheduler.submit_ingest(project_id, 0)
    first, second, third = await render_jobs(store, project_id, 3)
    await wait_for(lambda: pipeline.started == [first.id], "first render start")

    await scheduler.set_priority(third.id, 3, EDITOR)

    assert scheduler.queue_positions()[third.id] == 1
    assert scheduler.queue_positions()[second.id] == 2
    changed = [event for _, event in sink.events if isinstance(event, JobPriorityChanged)]
    assert changed[-1].queue_order == (third.id, second.id)
    pipeline.gate(first.id).set()
    await wait_for(lambda: len(pipeline.started) == 2, "second start")
    assert pipeline.started[1] == third.id
    assert (await store.get_job(third.id)).priority == 3


async def test_raising_running_priority_renices_process(env: dict[str, Any]) -> None:
    pipeline = ScriptedPipeline(with_process=True)
    scheduler, _ = make_scheduler(env, pipeline)
    store: Store = env["store"]
    project_id = await new_project(store, "renice")
    await scheduler.start()
    await scheduler.submit_ingest(project_id, 0)
    (job,) = await render_jobs(store, project_id, 1)
    pid = await wait_for(lambda: pipeline.pids.get(job.id), "render process")
    await wait_for(lambda: process_nice(pid) == 10, "nice 10 for priority 0")

    await scheduler.set_priority(job.id, 7, EDITOR)

    assert process_nice(pid) == 3
    pipeline.gate(job.id).set()


async def test_cancel_running_persists_before_publishing(env: dict[str, Any]) -> None:
    pipeline = ScriptedPipeline(with_process=True)
    scheduler, sink = make_scheduler(env, pipeline)
    store: Store = env["store"]
    storage: Storage = env["storage"]
    project_id = await new_project(store, "cancel")
    await scheduler.start()
    await scheduler.submit_ingest(project_id, 0)
    (job,) = await render_jobs(store, project_id, 1)
    pid = await wait_for(lambda: pipeline.pids.get(job.id), "render process")
    start_ticks = process_start_ticks(pid)
    assert start_ticks is not None
    work_file = storage.work_dir(project_id, job.id) / "partial.mp4"
    work_file.parent.mkdir(parents=True)
    work_file.write_bytes(b"partial")

    await scheduler.cancel_job(job.id, EDITOR)

    assert await job_state(store, job.id) == JobState.CANCELLED
    assert process_start_ticks(pid) != start_ticks
    assert not work_file.exists()
    assert (job.id, "cancelled", "cancelled") in sink.stored_state_at_publish
    for job_id, published, stored in sink.stored_state_at_publish:
        assert published == stored, f"{job_id} published {published} while the store held {stored}"
    # Rows may stay until the next start, but no recorded process is still alive.
    for recorded_pid, recorded_ticks, _ in await store.list_processes():
        assert process_start_ticks(recorded_pid) != recorded_ticks


async def test_cancel_queued_job_never_starts(env: dict[str, Any]) -> None:
    pipeline = ScriptedPipeline(renders_per_ingest=2)
    scheduler, _ = make_scheduler(env, pipeline)
    store: Store = env["store"]
    project_id = await new_project(store, "queued")
    await scheduler.start()
    await scheduler.submit_ingest(project_id, 0)
    first, second = await render_jobs(store, project_id, 2)
    await wait_for(lambda: pipeline.started == [first.id], "first start")

    await scheduler.cancel_job(second.id, EDITOR)
    pipeline.gate(first.id).set()

    await wait_for(lambda: scheduler.running_count() == 0 and scheduler.queue_length == 0, "idle scheduler")
    assert pipeline.started == [first.id]
    assert await job_state(store, second.id) == JobState.CANCELLED


async def test_cancel_ingest_cancels_its_renders(env: dict[str, Any]) -> None:
    pipeline = ScriptedPipeline(renders_per_ingest=2)
    scheduler, _ = make_scheduler(env, pipeline)
    store: Store = env["store"]
    project_id = await new_project(store, "cascade")
    await scheduler.start()
    ingest_id = await scheduler.submit_ingest(project_id, 0)
    first, second = await render_jobs(store, project_id, 2)
    await wait_for(lambda: pipeline.started == [first.id], "first start")
    # The ingest succeeded, so it cannot be cancelled; its renders are cancelled with the project.
    with pytest.raises(StateError):
        await scheduler.cancel_job(ingest_id, EDITOR)

    pipeline.ingest_gate = asyncio.Event()
    other = await new_project(store, "running ingest")
    other_ingest = await scheduler.submit_ingest(other, 0)
    await wait_for(lambda: scheduler.running_count(JobKind.INGEST) == 1, "ingest running")
    await scheduler.cancel_job(other_ingest, EDITOR)

    assert await job_state(store, other_ingest) == JobState.CANCELLED
    assert [job for job in await store.list_jobs(other) if job.kind == JobKind.RENDER] == []


async def test_cancel_project_cancels_all_open_jobs(env: dict[str, Any]) -> None:
    pipeline = ScriptedPipeline(renders_per_ingest=3)
    scheduler, _ = make_scheduler(env, pipeline)
    store: Store = env["store"]
    project_id = await new_project(store, "project")
    await scheduler.start()
    await scheduler.submit_ingest(project_id, 0)
    renders = await render_jobs(store, project_id, 3)
    await wait_for(lambda: len(pipeline.started) == 1, "first start")

    await scheduler.cancel_project(project_id, EDITOR)

    for job in renders:
        assert await job_state(store, job.id) == JobState.CANCELLED
    assert scheduler.queue_length == 0
    assert scheduler.running_count() == 0


async def test_retry_failed_job_counts_attempt(env: dict[str, Any]) -> None:
    pipeline = ScriptedPipeline()
    scheduler, _ = make_scheduler(env, pipeline)
    store: Store = env["store"]
    project_id = await new_project(store, "retry")
    pipeline.fail.add(project_id)
    await scheduler.start()
    await scheduler.submit_ingest(project_id, 0)
    (job,) = await render_jobs(store, project_id, 1)
    await wait_for(lambda: scheduler.running_count() == 0 and scheduler.queue_length == 0, "render end")
    row = await store.get_job(job.id)
    assert row.state == JobState.FAILED
    assert "ffmpeg failed" in (row.error or "")

    pipeline.fail.discard(project_id)
    await scheduler.retry_job(job.id, EDITOR)
    pipeline.gate(job.id).set()

    await wait_for(lambda: len(pipeline.started) == 2, "second start")
    await wait_for(lambda: scheduler.running_count() == 0, "second end")
    row = await store.get_job(job.id)
    assert row.state == JobState.SUCCEEDED
    assert row.attempt == 2
    assert row.error is None


async def test_retry_of_succeeded_job_raises(env: dict[str, Any]) -> None:
    pipeline = ScriptedPipeline()
    scheduler, _ = make_scheduler(env, pipeline)
    store: Store = env["store"]
    project_id = await new_project(store, "done")
    await scheduler.start()
    await scheduler.submit_ingest(project_id, 0)
    (job,) = await render_jobs(store, project_id, 1)
    pipeline.gate(job.id).set()
    await wait_for(lambda: scheduler.running_count() == 0 and scheduler.queue_length == 0, "idle")

    with pytest.raises(StateError, match="only failed or cancelled jobs can be retried"):
        await scheduler.retry_job(job.id, EDITOR)
    with pytest.raises(StateError):
        await scheduler.cancel_job(job.id, EDITOR)
    with pytest.raises(NotFoundError):
        await scheduler.cancel_job("0000000000000000", EDITOR)


async def test_viewer_cannot_act(env: dict[str, Any]) -> None:
    pipeline = ScriptedPipeline()
    scheduler, _ = make_scheduler(env, pipeline)
    store: Store = env["store"]
    project_id = await new_project(store, "viewer")
    await scheduler.start()
    ingest_id = await scheduler.submit_ingest(project_id, 0)

    with pytest.raises(PermissionDeniedError):
        await scheduler.cancel_job(ingest_id, VIEWER)
    with pytest.raises(PermissionDeniedError):
        await scheduler.set_priority(ingest_id, 5, VIEWER)
    with pytest.raises(PermissionDeniedError):
        await scheduler.retry_job(ingest_id, VIEWER)
    with pytest.raises(PermissionDeniedError):
        await scheduler.cancel_project(project_id, VIEWER)


async def test_recovery_requeues_running_and_keeps_cancelled(env: dict[str, Any]) -> None:
    store: Store = env["store"]
    storage: Storage = env["storage"]
    project_id = await new_project(store, "recovery")
    pipeline = ScriptedPipeline(renders_per_ingest=2)
    scheduler, _ = make_scheduler(env, pipeline)
    await scheduler.start()
    await scheduler.submit_ingest(project_id, 0)
    running, queued = await render_jobs(store, project_id, 2)
    await wait_for(lambda: pipeline.started == [running.id], "first start")
    await scheduler.cancel_job(queued.id, EDITOR)
    # Simulate a crash: stop the dispatcher and the job's task without any store write, so
    # the row stays running as after a SIGKILL.
    assert scheduler._dispatcher is not None
    scheduler._dispatcher.cancel()
    for current in scheduler._running.values():
        current.stopping = True
        assert current.task is not None
        current.task.cancel()
        await asyncio.gather(current.task, return_exceptions=True)
    env["schedulers"].remove(scheduler)
    assert await job_state(store, running.id) == JobState.RUNNING
    work_file = storage.work_dir(project_id, running.id) / "rendition.mp4"
    work_file.parent.mkdir(parents=True)
    work_file.write_bytes(b"partial")
    orphan_upload = storage.new_upload_file(project_id)
    stray_project = storage.project_dir("feedfeedfeedfeed")
    stray_project.mkdir()

    second_pipeline = ScriptedPipeline()
    restarted, _ = make_scheduler(env, second_pipeline)
    await restarted.start()

    await wait_for(lambda: second_pipeline.started == [running.id], "re-run of the interrupted render")
    row = await store.get_job(running.id)
    assert row.state == JobState.RUNNING
    assert row.attempt == 1
    assert await job_state(store, queued.id) == JobState.CANCELLED
    assert not work_file.exists()
    assert not orphan_upload.exists()
    assert not stray_project.exists()
    second_pipeline.gate(running.id).set()
