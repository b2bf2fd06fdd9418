"""The scheduler: the only code that changes job states.

It keeps the queue in memory and rebuilds it from the store at startup. Jobs start in order:
higher priority first, then first in, first out. At most `max_jobs` renders and
`max_ingest_jobs` ingests run at once. Cancel, priority and retry requests go through here.

Every state change is committed to the store before the matching event is published, so a
snapshot read after an event reflects it and a restart never brings back a cancelled job.
One asyncio lock serializes state changes; the pipeline's work runs outside it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from viralsplit.auth import SYSTEM, Actor, Role
from viralsplit.errors import PermissionDeniedError, StateError, ViralSplitError
from viralsplit.events import (
    Activity,
    Event,
    EventSink,
    JobAdded,
    JobPriorityChanged,
    JobProgress,
    JobStateChanged,
    OutputReady,
    SourceReady,
)
from viralsplit.jobs.model import JobKind, JobState, check_transition
from viralsplit.jobs.pipeline import IngestResult, JobHooks, Pipeline, RenderResult
from viralsplit.media.ffmpeg import renice_process_group
from viralsplit.media.progress import Progress
from viralsplit.storage import Storage, run_blocking
from viralsplit.store.db import EventRow, JobRow, NewJob, Store, new_id

__all__ = ["Actor", "Role", "Scheduler", "nice_for_priority", "process_nice", "process_start_ticks"]

log = logging.getLogger(__name__)

# Seconds between two progress events of one job; the last one of a run is always sent.
PROGRESS_INTERVAL_S = 0.2
# Seconds a cancel or shutdown waits for a job's task (and its processes) to end.
STOP_TIMEOUT_S = 10.0
# Seconds crash recovery waits for a left-over process group to disappear after SIGKILL.
LEFTOVER_TIMEOUT_S = 5.0
# Maximum characters of a failure message quoted in the activity feed; the job keeps all of it.
FAILURE_TEXT_MAX_CHARS = 300


def nice_for_priority(priority: int) -> int:
    """Map a job priority to the nice value of its processes: higher priority, lower nice."""
    return min(19, max(0, 10 - priority))


@dataclasses.dataclass
class _Queued:
    job_id: str
    project_id: str
    kind: JobKind
    priority: int
    seq: int

    def order_key(self) -> tuple[int, int]:
        return (-self.priority, self.seq)


@dataclasses.dataclass
class _Running:
    job_id: str
    project_id: str
    kind: JobKind
    label: str
    priority: int
    attempt: int
    started: float
    task: asyncio.Task[None] | None = None
    pgids: set[int] = dataclasses.field(default_factory=set)
    # Set under the lock by cancel, which has already stored CANCELLED, or by shutdown, which
    # stores QUEUED. The task's own ending then writes nothing.
    stopping: bool = False
    pending_writes: list[asyncio.Task[None]] = dataclasses.field(default_factory=list)
    last_progress_publish: float = 0.0


class Scheduler:
    def __init__(
        self,
        *,
        store: Store,
        storage: Storage,
        pipeline: Pipeline,
        max_jobs: int,
        max_ingest_jobs: int,
        sink: Callable[[], EventSink],
    ) -> None:
        self.store = store
        self.storage = storage
        self.pipeline = pipeline
        self.max_jobs = max_jobs
        self.max_ingest_jobs = max_ingest_jobs
        self._sink = sink
        self._queued: dict[str, _Queued] = {}
        self._running: dict[str, _Running] = {}
        self._progress: dict[str, Progress] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        # Totals for /metrics.
        self.encode_seconds_total = 0.0
        self.jobs_finished_total: dict[str, int] = {}

    # Lifecycle.

    async def start(self) -> None:
        """Recover from an unclean stop, load the queue and start dispatching."""
        await self._recover()
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="scheduler-dispatch")
        self._wake.set()

    async def stop(self) -> None:
        """Stop dispatching and interrupt running jobs; they go back to the queue for the next start."""
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
            self._dispatcher = None
        async with self._lock:
            running = list(self._running.values())
            for job in running:
                job.stopping = True
                _hasten_exit(job.pgids)
                if job.task is not None:
                    job.task.cancel()
            await self._wait_stopped(running)
            async with self.store.transaction():
                for job in running:
                    check_transition(JobState.RUNNING, JobState.QUEUED)
                    await self.store.set_job_state(job.job_id, JobState.QUEUED, reset_run=True)
                    await self.store.remove_processes(job.job_id)
            for job in running:
                await run_blocking(self.storage.remove_job_files, job.project_id, job.job_id, True)
                self._running.pop(job.job_id, None)
                log.info("job %s interrupted by shutdown; queued again", job.job_id)

    async def _recover(self) -> None:
        await self._stop_leftover_processes()
        async with self._lock:
            running = await self.store.jobs_in_states([JobState.RUNNING])
            async with self.store.transaction():
                for job in running:
                    check_transition(job.state, JobState.QUEUED)
                    await self.store.set_job_state(job.id, JobState.QUEUED, reset_run=True)
            for job in running:
                log.info("job %s was running when the server stopped; queued again (attempt %d)", job.id, job.attempt)
            project_ids = await self.store.list_project_ids()
            with_outputs = await self.store.output_job_ids()
            removed = await run_blocking(self.storage.clean_orphans, project_ids, with_outputs)
            for path in removed:
                log.info("removed left-over %s", path)
            for job in await self.store.jobs_in_states([JobState.QUEUED]):
                self._queued[job.id] = _Queued(job.id, job.project_id, job.kind, job.priority, job.seq)

    async def _stop_leftover_processes(self) -> None:
        """SIGKILL the process groups that a killed server left running, if they are still the same processes."""
        for pid, start_ticks, job_id in await self.store.list_processes():
            if process_start_ticks(pid) != start_ticks:
                continue
            log.warning("stopping process group %d left over from job %s", pid, job_id)
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue
            deadline = time.monotonic() + LEFTOVER_TIMEOUT_S
            while time.monotonic() < deadline and process_start_ticks(pid) == start_ticks:
                await asyncio.sleep(0.02)
        await self.store.clear_processes()

    # Reading.

    def progress(self, job_id: str) -> Progress | None:
        return self._progress.get(job_id)

    def queue_positions(self) -> dict[str, int]:
        """Return each queued job's 1-based place among queued jobs of its kind; 1 starts next."""
        positions: dict[str, int] = {}
        for kind in JobKind:
            lane = sorted((q for q in self._queued.values() if q.kind == kind), key=_Queued.order_key)
            for index, queued in enumerate(lane, start=1):
                positions[queued.job_id] = index
        return positions

    def running_pgids(self, job_id: str) -> set[int]:
        running = self._running.get(job_id)
        return set(running.pgids) if running else set()

    @property
    def queue_length(self) -> int:
        return len(self._queued)

    def running_count(self, kind: JobKind | None = None) -> int:
        return sum(1 for job in self._running.values() if kind is None or job.kind == kind)

    # Commands.

    async def submit_ingest(self, project_id: str, priority: int, actor: Actor = SYSTEM) -> str:
        """Queue the ingest job of a project whose source is in place; return its id."""
        async with self._lock:
            job = await self.store.insert_job(
                NewJob(new_id(), project_id, JobKind.INGEST, "Ingest", (), priority)
            )
            self._queued[job.id] = _Queued(job.id, project_id, job.kind, job.priority, job.seq)
            self._publish(project_id, JobAdded(job.id, job.kind.value, job.label, job.priority))
            self._publish(project_id, self._state_event(job))
        self._wake.set()
        return job.id

    async def cancel_job(self, job_id: str, actor: Actor) -> None:
        """Cancel a queued or running job (and, for an ingest, the renders it planned).

        Raises NotFoundError, PermissionDeniedError for a viewer, and StateError when the job
        has already ended. Returns after the job's processes have been stopped and reaped.
        """
        _check_editor(actor)
        async with self._lock:
            job = await self.store.get_job(job_id)
            if job.state.terminal:
                raise StateError(f"job {job_id} has already {_ended_word(job.state)}; only queued or running jobs can be cancelled")
            targets = [job]
            if job.kind == JobKind.INGEST:
                targets += [child for child in await self.store.children(job.id) if not child.state.terminal]
            text = f"{actor.name} cancelled {_describe(job)}"
            await self._cancel_locked(job.project_id, targets, actor, "cancel", text, job.id)

    async def cancel_project(self, project_id: str, actor: Actor) -> None:
        """Cancel every queued and running job of a project; a project with none is left as it is."""
        _check_editor(actor)
        async with self._lock:
            await self.store.get_project(project_id)
            targets = [job for job in await self.store.list_jobs(project_id) if not job.state.terminal]
            text = f"{actor.name} cancelled the project"
            await self._cancel_locked(project_id, targets, actor, "cancel_project", text, None)

    async def set_priority(self, job_id: str, priority: int, actor: Actor) -> None:
        """Change a queued job's place in the queue or a running job's nice value."""
        _check_editor(actor)
        async with self._lock:
            job = await self.store.get_job(job_id)
            if job.state.terminal:
                raise StateError(
                    f"job {job_id} has already {_ended_word(job.state)}; only queued or running jobs can change priority"
                )
            async with self.store.transaction():
                await self.store.set_job_priority(job_id, priority)
                event = await self.store.add_event(
                    job.project_id,
                    actor=actor.name,
                    action="set_priority",
                    text=f"{actor.name} set the priority of {_describe(job)} to {priority}",
                    job_id=job_id,
                )
            if job_id in self._queued:
                self._queued[job_id].priority = priority
            running = self._running.get(job_id)
            if running is not None:
                running.priority = priority
                for pgid in running.pgids:
                    renice_process_group(pgid, nice_for_priority(priority))
            self._publish(job.project_id, JobPriorityChanged(job_id, priority, self._queue_order(job.project_id)))
            self._publish(job.project_id, _activity(event))
        self._wake.set()

    async def retry_job(self, job_id: str, actor: Actor) -> None:
        """Queue a failed or cancelled job again, as its next attempt."""
        _check_editor(actor)
        async with self._lock:
            job = await self.store.get_job(job_id)
            if job.state not in (JobState.FAILED, JobState.CANCELLED):
                raise StateError(f"job {job_id} is {job.state.value}; only failed or cancelled jobs can be retried")
            check_transition(job.state, JobState.QUEUED)
            await run_blocking(self.storage.remove_job_files, job.project_id, job.id, True)
            async with self.store.transaction():
                await self.store.set_job_state(job_id, JobState.QUEUED, reset_run=True, requeue=True, next_attempt=True)
                event = await self.store.add_event(
                    job.project_id, actor=actor.name, action="retry", text=f"{actor.name} retried {_describe(job)}", job_id=job_id
                )
            job = await self.store.get_job(job_id)
            self._queued[job_id] = _Queued(job.id, job.project_id, job.kind, job.priority, job.seq)
            self._progress.pop(job_id, None)
            self._publish(job.project_id, self._state_event(job))
            self._publish(job.project_id, _activity(event))
        self._wake.set()

    async def record_activity(self, project_id: str, actor: Actor, action: str, text: str) -> None:
        """Persist and publish an activity that is not a job command (project created, source uploaded)."""
        event = await self.store.add_event(project_id, actor=actor.name, action=action, text=text, job_id=None)
        self._publish(project_id, _activity(event))

    async def _cancel_locked(
        self, project_id: str, targets: list[JobRow], actor: Actor, action: str, text: str, job_id: str | None
    ) -> None:
        started = time.monotonic()
        # Persist first: once this commit is done, no restart can bring these jobs back.
        async with self.store.transaction():
            for job in targets:
                check_transition(job.state, JobState.CANCELLED)
                await self.store.set_job_state(job.id, JobState.CANCELLED, ended=True)
            event = await self.store.add_event(project_id, actor=actor.name, action=action, text=text, job_id=job_id)
        committed = time.monotonic()

        running: list[_Running] = []
        for job in targets:
            self._queued.pop(job.id, None)
            current = self._running.get(job.id)
            if current is not None:
                current.stopping = True
                _hasten_exit(current.pgids)
                if current.task is not None:
                    current.task.cancel()
                running.append(current)
        await self._wait_stopped(running)
        stopped = time.monotonic()
        # The rows of processes that are now gone stay until the job's next start or the
        # server's next start: recovery skips them because their start times no longer match.
        for current in running:
            self._running.pop(current.job_id, None)
        leftovers = [(job.project_id, job.id) for job in targets if not self.storage.remove_empty_job_dirs(job.project_id, job.id)]
        if leftovers:
            await run_blocking(self.storage.remove_jobs_files, leftovers)
        cleaned = time.monotonic()
        for job in targets:
            self._count_finished(JobState.CANCELLED)
        log.info(
            "cancelled %s by %s in %.0f ms (commit %.0f ms, processes stopped %.0f ms, files removed %.0f ms)",
            ", ".join(job.id for job in targets) or "nothing",
            actor.name,
            (cleaned - started) * 1000,
            (committed - started) * 1000,
            (stopped - committed) * 1000,
            (cleaned - stopped) * 1000,
        )

        for job in targets:
            self._publish(project_id, JobStateChanged(job.id, JobState.CANCELLED, None, job.priority, job.attempt))
        self._publish(project_id, _activity(event))
        self._wake.set()

    async def _wait_stopped(self, running: Iterable[_Running]) -> None:
        tasks = [job.task for job in running if job.task is not None]
        if not tasks:
            return
        done, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
        for task in pending:
            log.error("task %s did not stop within %.0f s of being cancelled", task.get_name(), STOP_TIMEOUT_S)

    # Dispatching.

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            async with self._lock:
                while (queued := self._next_startable()) is not None:
                    try:
                        await self._start_locked(queued)
                    except Exception:
                        # Dropped from the in-memory queue so the loop cannot spin on it; the
                        # row stays queued in the store and runs after the next start.
                        log.exception("could not start job %s; it stays queued until the next start", queued.job_id)
                        self._queued.pop(queued.job_id, None)

    def _next_startable(self) -> _Queued | None:
        limits = {JobKind.RENDER: self.max_jobs, JobKind.INGEST: self.max_ingest_jobs}
        best: _Queued | None = None
        for kind, limit in limits.items():
            if self.running_count(kind) >= limit:
                continue
            lane = [q for q in self._queued.values() if q.kind == kind]
            if lane:
                candidate = min(lane, key=_Queued.order_key)
                if best is None or candidate.order_key() < best.order_key():
                    best = candidate
        return best

    async def _start_locked(self, queued: _Queued) -> None:
        job = await self.store.get_job(queued.job_id)
        check_transition(job.state, JobState.RUNNING)
        async with self.store.transaction():
            await self.store.remove_processes(job.id)
            await self.store.set_job_state(job.id, JobState.RUNNING, started=True)
        del self._queued[job.id]
        running = _Running(job.id, job.project_id, job.kind, job.label, job.priority, job.attempt, time.monotonic())
        self._running[job.id] = running
        self._progress.pop(job.id, None)
        running.task = asyncio.create_task(self._run(running), name=f"job-{job.id}")
        log.info("job %s (%s, %s) started, attempt %d", job.id, job.kind.value, job.label, job.attempt)
        self._publish(job.project_id, JobStateChanged(job.id, JobState.RUNNING, None, job.priority, job.attempt))

    async def _run(self, running: _Running) -> None:
        hooks = _Hooks(self, running)
        try:
            job = await self.store.get_job(running.job_id)
            project = await self.store.get_project(running.project_id)
            if job.kind == JobKind.INGEST:
                result: IngestResult | RenderResult = await self.pipeline.ingest(job, project, hooks)
            else:
                result = await self.pipeline.render(job, project, hooks)
        except asyncio.CancelledError:
            # The canceller (cancel or shutdown) owns the state change and the cleanup.
            raise
        except ViralSplitError as exc:
            await self._finish_failed(running, str(exc))
        except Exception as exc:
            log.exception("job %s failed with an unexpected error", running.job_id)
            await self._finish_failed(running, f"internal error: {exc.__class__.__name__}: {exc}")
        else:
            await self._finish_succeeded(running, result)

    async def _finish_succeeded(self, running: _Running, result: IngestResult | RenderResult) -> None:
        async with self._lock:
            if running.stopping:
                return
            check_transition(JobState.RUNNING, JobState.SUCCEEDED)
            await self._forget_processes(running)
            if isinstance(result, IngestResult):
                await self._commit_ingest(running, result)
            else:
                await self._commit_render(running, result)
            self._running.pop(running.job_id, None)
            self._count_finished(JobState.SUCCEEDED)
            log.info("job %s succeeded in %.1f s", running.job_id, time.monotonic() - running.started)
        self._wake.set()

    async def _commit_ingest(self, running: _Running, result: IngestResult) -> None:
        project = await self.store.get_project(running.project_id)
        added: list[JobRow] = []
        async with self.store.transaction():
            await self.store.set_info(running.project_id, result.info)
            for render in result.renders:
                new_job = NewJob(
                    new_id(),
                    running.project_id,
                    JobKind.RENDER,
                    render.label,
                    render.platforms,
                    project.priority,
                    parent_id=running.job_id,
                    rendition=render.rendition,
                )
                added.append(await self.store.insert_job(new_job))
            await self.store.set_job_state(running.job_id, JobState.SUCCEEDED, ended=True)
        self._publish(running.project_id, SourceReady(result.info))
        for job in added:
            self._queued[job.id] = _Queued(job.id, job.project_id, job.kind, job.priority, job.seq)
            self._publish(running.project_id, JobAdded(job.id, job.kind.value, job.label, job.priority))
        self._publish_final_progress(running)
        self._publish(
            running.project_id,
            JobStateChanged(running.job_id, JobState.SUCCEEDED, None, running.priority, running.attempt),
        )

    async def _commit_render(self, running: _Running, result: RenderResult) -> None:
        async with self.store.transaction():
            rows = await self.store.insert_outputs(running.job_id, running.project_id, result.outputs)
            await self.store.set_job_state(running.job_id, JobState.SUCCEEDED, ended=True)
        self.encode_seconds_total += time.monotonic() - running.started
        for row in rows:
            self._publish(
                running.project_id,
                OutputReady(
                    row.id, row.job_id, row.platform, row.part, row.parts, row.width, row.height, row.duration_s, row.size_bytes
                ),
            )
        self._publish_final_progress(running)
        self._publish(
            running.project_id,
            JobStateChanged(running.job_id, JobState.SUCCEEDED, None, running.priority, running.attempt),
        )

    async def _finish_failed(self, running: _Running, message: str) -> None:
        async with self._lock:
            if running.stopping:
                return
            check_transition(JobState.RUNNING, JobState.FAILED)
            await self._forget_processes(running)
            async with self.store.transaction():
                await self.store.set_job_state(running.job_id, JobState.FAILED, error=message, ended=True)
                # The feed shows failures too, so everyone watching learns why a job stopped.
                subject = "The ingest" if running.kind == JobKind.INGEST else f"The {running.label} render"
                event = await self.store.add_event(
                    running.project_id, actor="system", action="fail",
                    text=f"{subject} failed: {_shorten(message, FAILURE_TEXT_MAX_CHARS)}", job_id=running.job_id,
                )
            await run_blocking(self.storage.remove_job_files, running.project_id, running.job_id, True)
            self._running.pop(running.job_id, None)
            self._count_finished(JobState.FAILED)
            log.warning("job %s failed: %s", running.job_id, message)
            self._publish(
                running.project_id,
                JobStateChanged(running.job_id, JobState.FAILED, message, running.priority, running.attempt),
            )
            self._publish(running.project_id, _activity(event))
        self._wake.set()

    async def _forget_processes(self, running: _Running) -> None:
        if running.pending_writes:
            await asyncio.gather(*running.pending_writes, return_exceptions=True)
            running.pending_writes.clear()
        await self.store.remove_processes(running.job_id)

    # Events.

    def _publish(self, project_id: str, event: Event) -> None:
        try:
            self._sink().publish(project_id, event)
        except Exception:
            log.exception("event sink failed to publish %s for project %s", type(event).__name__, project_id)

    def _publish_final_progress(self, running: _Running) -> None:
        progress = self._progress.get(running.job_id)
        if progress is not None:
            self._publish(running.project_id, JobProgress(running.job_id, progress, final=True))

    def _state_event(self, job: JobRow) -> JobStateChanged:
        return JobStateChanged(job.id, job.state, job.error, job.priority, job.attempt)

    def _queue_order(self, project_id: str) -> tuple[str, ...]:
        queued = sorted((q for q in self._queued.values() if q.project_id == project_id), key=_Queued.order_key)
        return tuple(q.job_id for q in queued)

    def _count_finished(self, state: JobState) -> None:
        self.jobs_finished_total[state.value] = self.jobs_finished_total.get(state.value, 0) + 1

    # Called by _Hooks from the pipeline.

    def _on_progress(self, running: _Running, progress: Progress) -> None:
        self._progress[running.job_id] = progress
        now = time.monotonic()
        if now - running.last_progress_publish >= PROGRESS_INTERVAL_S:
            running.last_progress_publish = now
            self._publish(running.project_id, JobProgress(running.job_id, progress))

    def _on_process(self, running: _Running, pid: int) -> None:
        running.pgids.add(pid)
        renice_process_group(pid, nice_for_priority(running.priority))
        start_ticks = process_start_ticks(pid)
        if start_ticks is not None:
            write = asyncio.create_task(self.store.add_process(pid, start_ticks, running.job_id))
            running.pending_writes.append(write)


class _Hooks(JobHooks):
    def __init__(self, scheduler: Scheduler, running: _Running) -> None:
        self._scheduler = scheduler
        self._running = running

    def on_progress(self, progress: Progress) -> None:
        self._scheduler._on_progress(self._running, progress)

    def on_process(self, pid: int) -> None:
        self._scheduler._on_process(self._running, pid)


def _hasten_exit(pgids: Iterable[int]) -> None:
    """Set nice 0 on process groups about to be killed.

    A process handles SIGKILL only when it is next scheduled, and at nice 10 on a busy
    machine that can take hundreds of milliseconds. Lowering the nice value needs
    CAP_SYS_NICE (or RLIMIT_NICE), so without it the kill simply waits its turn.
    """
    for pgid in pgids:
        try:
            os.setpriority(os.PRIO_PGRP, pgid, 0)
        except (PermissionError, ProcessLookupError):
            pass


def process_start_ticks(pid: int) -> int | None:
    """Return the start time of a live process (field 22 of /proc/PID/stat, clock ticks since boot), else None."""
    fields = _proc_stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return None
    return int(fields[19])


def process_nice(pid: int) -> int | None:
    fields = _proc_stat_fields(pid)
    return int(fields[16]) if fields else None


def _proc_stat_fields(pid: int) -> list[str] | None:
    """Return the fields of /proc/PID/stat after the command name: index 0 is field 3 (state)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _check_editor(actor: Actor) -> None:
    if actor.role != Role.EDITOR:
        raise PermissionDeniedError("a viewer token can only watch; use the editor link to act")


def _describe(job: JobRow) -> str:
    if job.kind == JobKind.INGEST:
        return "the ingest"
    return f"the {job.label} render"


def _ended_word(state: JobState) -> str:
    return {JobState.SUCCEEDED: "succeeded", JobState.FAILED: "failed", JobState.CANCELLED: "been cancelled"}.get(
        state, state.value
    )


def _activity(event: EventRow) -> Activity:
    return Activity(event.id, event.at, event.actor, event.action, event.text, event.job_id)

