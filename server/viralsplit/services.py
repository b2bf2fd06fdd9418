"""The services one server shares between its HTTP routes and the realtime layer.

    services = get_services(app)           # or current_app inside a request
    services.store.authenticate(project_id, token) -> Role | None
    await services.snapshot(project_id) -> dict   # same dict as GET /api/projects/{id}
    services.scheduler.cancel_job(job_id, actor)  # and cancel_project, set_priority, retry_job
    services.events                        # the EventSink; the realtime hub replaces it
    services.metric_collectors.append(fn)  # fn() returns Prometheus text lines for /metrics
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from typing import Any

from quart import Quart

from viralsplit.config import Config
from viralsplit.events import EventSink, NullSink
from viralsplit.jobs.model import JobKind
from viralsplit.jobs.pipeline import Pipeline
from viralsplit.jobs.scheduler import Scheduler
from viralsplit.media.progress import Progress
from viralsplit.storage import Storage, run_blocking
from viralsplit.store.db import JobRow, OutputRow, ProjectRow, Store

log = logging.getLogger(__name__)

SERVICES_KEY = "viralsplit.services"
# Ingest jobs (download, probe, plan) that run at once, besides the max_jobs renders.
MAX_INGEST_JOBS = 2
# Activity entries included in a snapshot, newest last.
SNAPSHOT_ACTIVITY = 50


class Services:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.storage = Storage(config.data_dir)
        self.store = Store(config.db_path)
        self.pipeline = Pipeline(config, self.store, self.storage)
        # The placeholder sink; realtime's hub replaces it before the server starts.
        self.events: EventSink = NullSink()
        self.scheduler = Scheduler(
            store=self.store,
            storage=self.storage,
            pipeline=self.pipeline,
            max_jobs=config.max_jobs,
            max_ingest_jobs=MAX_INGEST_JOBS,
            sink=lambda: self.events,
        )
        self.listen_url = ""
        self.upload_bytes_total = 0
        self.uploads_in_progress: set[str] = set()
        self.metric_collectors: list[Callable[[], Iterable[str]]] = []

    async def start(self) -> None:
        await run_blocking(self.storage.prepare)
        await self.store.open()
        await self.scheduler.start()
        log.info(
            "data dir %s, max %d renders at once, x264 preset %s",
            self.storage.data_dir,
            self.config.max_jobs,
            self.config.x264_preset,
        )
        if self.listen_url:
            log.info("listening on %s", self.listen_url)

    async def stop(self) -> None:
        await self.scheduler.stop()
        await self.store.close()
        log.info("stopped")

    async def snapshot(self, project_id: str) -> dict[str, Any]:
        """Return the project's full state as JSON-able data; raise NotFoundError for an unknown id."""
        project, jobs, outputs, events = await self.store.read_project_state(project_id, SNAPSHOT_ACTIVITY)
        positions = self.scheduler.queue_positions()
        return {
            "project": project_json(project),
            "jobs": [self._job_json(job, positions) for job in jobs],
            "outputs": [output_json(output) for output in outputs],
            "activity": [
                {
                    "event_id": event.id,
                    "at": event.at,
                    "actor": event.actor,
                    "action": event.action,
                    "text": event.text,
                    "job_id": event.job_id,
                }
                for event in events
            ],
        }

    def _job_json(self, job: JobRow, positions: dict[str, int]) -> dict[str, Any]:
        progress = self.scheduler.progress(job.id)
        return {
            "id": job.id,
            "kind": job.kind.value,
            "label": job.label,
            "platforms": list(job.platforms),
            "state": job.state.value,
            "priority": job.priority,
            "attempt": job.attempt,
            "error": job.error,
            "created_at": job.created_at,
            "started_at": job.started_at,
            "ended_at": job.ended_at,
            "progress": progress_json(progress) if progress is not None else None,
            "queue_position": positions.get(job.id),
        }

    def running_encodes(self) -> int:
        return self.scheduler.running_count(JobKind.RENDER)


def project_json(project: ProjectRow) -> dict[str, Any]:
    source = None
    if project.source_kind is not None:
        source = {"kind": project.source_kind, "name": project.source_name, "size_bytes": project.source_size}
        if project.source_kind == "url":
            source["url"] = project.source_url
    return {
        "id": project.id,
        "title": project.title,
        "platforms": list(project.platforms),
        "fill": project.fill,
        "part_length_s": project.part_length_s,
        "priority": project.priority,
        "created_at": project.created_at,
        "source": source,
        "info": project.info,
    }


def output_json(output: OutputRow) -> dict[str, Any]:
    return {
        "id": output.id,
        "job_id": output.job_id,
        "platform": output.platform,
        "part": output.part,
        "parts": output.parts,
        "width": output.width,
        "height": output.height,
        "duration_s": output.duration_s,
        "size_bytes": output.size_bytes,
        "url": f"/api/outputs/{output.id}",
        "thumbnail_url": f"/api/outputs/{output.id}/thumbnail" if output.thumbnail_path else None,
    }


def progress_json(progress: Progress) -> dict[str, Any]:
    return dataclasses.asdict(progress)


def get_services(app: Quart) -> Services:
    services: Services = app.extensions[SERVICES_KEY]
    return services
