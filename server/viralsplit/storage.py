"""The data directory: where each project's files live, atomic moves and cleanup.

    DATA_DIR/
      viralsplit.sqlite3          the store (plus its -wal and -shm files)
      projects/PROJECT_ID/
        .upload-*.tmp             an upload in progress; renamed into source/ when complete
        source/NAME               the uploaded or downloaded source video
        download/                 yt-dlp's working folder for a URL source
        work/JOB_ID/              a running job's scratch files
        outputs/JOB_ID/           finished outputs, placed only by atomic rename

Every path handed out is inside the data dir; names that come from users are reduced to a
safe file name first. The blocking calls here run in a worker thread when called from the
event loop (see `run_blocking`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

UPLOAD_PREFIX = ".upload-"
UPLOAD_SUFFIX = ".tmp"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


async def run_blocking(function: Callable[..., T], *args: object) -> T:
    return await asyncio.to_thread(function, *args)


def safe_name(name: str, default: str = "source") -> str:
    """Reduce a user-given file name to letters, digits, dot, dash and underscore (at most 100 characters)."""
    base = Path(name.replace("\\", "/")).name
    cleaned = _UNSAFE.sub("_", base).strip("._")
    return cleaned[:100] or default


class Storage:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.projects_dir = self.data_dir / "projects"

    def prepare(self) -> None:
        self.projects_dir.mkdir(parents=True, exist_ok=True)

    # Paths.

    def project_dir(self, project_id: str) -> Path:
        return self.projects_dir / project_id

    def source_dir(self, project_id: str) -> Path:
        return self.project_dir(project_id) / "source"

    def download_dir(self, project_id: str) -> Path:
        return self.project_dir(project_id) / "download"

    def work_dir(self, project_id: str, job_id: str) -> Path:
        return self.project_dir(project_id) / "work" / job_id

    def output_dir(self, project_id: str, job_id: str) -> Path:
        return self.project_dir(project_id) / "outputs" / job_id

    def relative(self, path: Path) -> str:
        """Return `path` relative to the data dir, as stored in the database."""
        return str(path.resolve().relative_to(self.data_dir))

    def absolute(self, relative: str) -> Path:
        """Resolve a stored relative path; raise ValueError if it points outside the data dir."""
        path = (self.data_dir / relative).resolve()
        if not path.is_relative_to(self.data_dir):
            raise ValueError(f"stored path {relative!r} is outside the data dir")
        return path

    # Uploads.

    def new_upload_file(self, project_id: str) -> Path:
        """Create an empty temporary upload file in the project's folder and return its path."""
        project_dir = self.project_dir(project_id)
        project_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=UPLOAD_PREFIX, suffix=UPLOAD_SUFFIX, dir=project_dir)
        os.close(fd)
        return Path(name)

    def commit_source(self, project_id: str, temp_path: Path, name: str) -> Path:
        """Move a finished upload or download into source/ by atomic rename; return the new path."""
        source_dir = self.source_dir(project_id)
        source_dir.mkdir(parents=True, exist_ok=True)
        target = source_dir / safe_name(name)
        os.replace(temp_path, target)
        _fsync_dir(source_dir)
        return target

    # Cleanup.

    def remove_file(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass

    def remove_tree(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def remove_job_files(self, project_id: str, job_id: str, outputs: bool = True) -> None:
        """Delete a job's scratch folder and, with `outputs`, its output folder."""
        self.remove_tree(self.work_dir(project_id, job_id))
        if outputs:
            self.remove_tree(self.output_dir(project_id, job_id))

    def remove_empty_job_dirs(self, project_id: str, job_id: str) -> bool:
        """Remove a job's scratch and output folders if they are empty or absent; return False if one contains files.

        A cancelled render has already deleted its own files, so this usually finishes with
        two rmdir calls, cheap enough for the event loop; the caller falls back to
        `remove_job_files` in a worker thread when it returns False.
        """
        for folder in (self.work_dir(project_id, job_id), self.output_dir(project_id, job_id)):
            try:
                folder.rmdir()
            except FileNotFoundError:
                continue
            except OSError:
                return False
        return True

    def remove_jobs_files(self, jobs: Iterable[tuple[str, str]]) -> None:
        """Delete the scratch and output folders of each (project id, job id)."""
        for project_id, job_id in jobs:
            self.remove_job_files(project_id, job_id, True)

    def clean_orphans(self, project_ids: Iterable[str], jobs_with_outputs: set[str]) -> list[Path]:
        """Delete what no live job owns; call only while no job runs (at startup). Return what was deleted.

        Removed: folders of projects the store does not know, partial uploads, yt-dlp
        working folders, every job's scratch folder, and output folders of jobs that have
        no outputs in the store (a render that did not finish).
        """
        known = set(project_ids)
        removed: list[Path] = []
        if not self.projects_dir.is_dir():
            return removed
        for project_dir in self.projects_dir.iterdir():
            if project_dir.name not in known:
                removed.append(project_dir)
                self.remove_tree(project_dir)
                continue
            for temp in project_dir.glob(f"{UPLOAD_PREFIX}*{UPLOAD_SUFFIX}"):
                removed.append(temp)
                self.remove_file(temp)
            for folder in (project_dir / "download", project_dir / "work"):
                if folder.exists():
                    removed.append(folder)
                    self.remove_tree(folder)
            outputs_dir = project_dir / "outputs"
            if outputs_dir.is_dir():
                for job_dir in outputs_dir.iterdir():
                    if job_dir.name not in jobs_with_outputs:
                        removed.append(job_dir)
                        self.remove_tree(job_dir)
        return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
