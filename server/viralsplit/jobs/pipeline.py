"""Job work: the ingest (download, probe, plan) and one render per rendition.

The pipeline does the work and returns a result; the scheduler decides what it means for the
job's state. Cancelling the awaiting task stops the media tool's process group (the engine and
yt-dlp wrappers handle that) and re-raises CancelledError.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from viralsplit.config import Config
from viralsplit.errors import InputError
from viralsplit.media.plan import PlanOptions, Rendition, plan_renditions
from viralsplit.media.probe import MediaInfo, probe
from viralsplit.media.progress import Progress
from viralsplit.storage import Storage, run_blocking
from viralsplit.store.db import JobRow, NewOutput, ProjectRow, Store, new_id

log = logging.getLogger(__name__)

# Seconds between SIGTERM and SIGKILL when a render is cancelled or interrupted by shutdown.
# The outputs of a stopped render are deleted anyway, so ffmpeg gets no time to finish
# writing them (with +faststart that means rewriting the whole file), and a cancel returns
# as soon as the process group is gone.
STOP_GRACE_S = 0.0


class JobHooks:
    """Callbacks from a running job to the scheduler; both are synchronous and must not block."""

    def on_progress(self, progress: Progress) -> None:
        return None

    def on_process(self, pid: int) -> None:
        return None


@dataclasses.dataclass(frozen=True)
class PlannedRender:
    label: str
    platforms: tuple[str, ...]
    # Rendition.to_json(), stored with the render job so a restart needs no re-planning.
    rendition: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class IngestResult:
    # MediaInfo.to_json()
    info: dict[str, Any]
    renders: tuple[PlannedRender, ...]


@dataclasses.dataclass(frozen=True)
class RenderResult:
    outputs: tuple[NewOutput, ...]


class Pipeline:
    def __init__(self, config: Config, store: Store, storage: Storage) -> None:
        self.config = config
        self.store = store
        self.storage = storage

    async def ingest(self, job: JobRow, project: ProjectRow, hooks: JobHooks) -> IngestResult:
        """Fetch the source if it is a URL, probe it and plan one render per distinct rendition."""
        if project.source_path is None:
            if project.source_kind != "url" or not project.source_url:
                raise InputError(project.title, "the project has no source: upload a video first")
            project = await self._download(project, hooks)
        assert project.source_path is not None
        source = self.storage.absolute(project.source_path)
        display_name = project.source_name or source.name

        hooks.on_progress(Progress(stage="probe"))
        info = await probe(source, display_name=display_name)
        hooks.on_progress(Progress(stage="plan"))
        options = PlanOptions(fill=project.fill, part_length_s=project.part_length_s)
        plan = plan_renditions(info, project.platforms, options)
        hooks.on_progress(Progress(stage="plan", fraction=1.0))
        renders = tuple(
            PlannedRender(rendition.label, tuple(rendition.platforms), rendition.to_json())
            for rendition in plan.renditions
        )
        return IngestResult(info.to_json(), renders)

    async def _download(self, project: ProjectRow, hooks: JobHooks) -> ProjectRow:
        from viralsplit.media.ytdlp import download

        assert project.source_url is not None
        download_dir = self.storage.download_dir(project.id)
        await run_blocking(self.storage.remove_tree, download_dir)
        await run_blocking(lambda: download_dir.mkdir(parents=True, exist_ok=True))
        path = await download(
            project.source_url,
            download_dir,
            config=self.config,
            on_progress=hooks.on_progress,
            on_process=hooks.on_process,
        )
        size = path.stat().st_size
        source = await run_blocking(self.storage.commit_source, project.id, path, path.name)
        await run_blocking(self.storage.remove_tree, download_dir)
        await self.store.set_source(
            project.id, kind="url", name=path.name, size=size, path=self.storage.relative(source)
        )
        return await self.store.get_project(project.id)

    async def render(self, job: JobRow, project: ProjectRow, hooks: JobHooks) -> RenderResult:
        """Encode one rendition into its platform parts and thumbnails."""
        from viralsplit.media.render import RenderSettings, render_rendition

        if job.rendition is None or project.info is None or project.source_path is None:
            raise InputError(project.title, "the render has no plan or source; retry the ingest")
        source = self.storage.absolute(project.source_path)
        info = MediaInfo.from_json(project.info)
        rendition = Rendition.from_json(job.rendition)
        work_dir = self.storage.work_dir(project.id, job.id)
        out_dir = self.storage.output_dir(project.id, job.id)
        await run_blocking(lambda: out_dir.mkdir(parents=True, exist_ok=True))

        rendered = await render_rendition(
            source,
            info,
            rendition,
            work_dir=work_dir,
            out_dir=out_dir,
            settings=RenderSettings(x264_preset=self.config.x264_preset, grace_s=STOP_GRACE_S),
            on_progress=hooks.on_progress,
            on_process=hooks.on_process,
        )
        outputs = tuple(
            NewOutput(
                id=new_id(),
                platform=item.platform,
                part=item.part,
                parts=item.parts,
                width=item.width,
                height=item.height,
                duration_s=item.duration_s,
                size_bytes=item.size_bytes,
                path=self.storage.relative(Path(item.path)),
                thumbnail_path=self.storage.relative(Path(item.thumbnail)) if item.thumbnail else None,
            )
            for item in rendered
        )
        return RenderResult(outputs)

