"""Versioned schema migrations, applied in order; `PRAGMA user_version` records the last one applied.

Append new migrations to MIGRATIONS; never edit one that has shipped.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: projects, jobs, outputs, the per-project event log, and processes started for jobs.
    """
    CREATE TABLE projects (
        id             TEXT PRIMARY KEY,
        title          TEXT NOT NULL,
        platforms      TEXT NOT NULL,          -- JSON list of preset names
        fill           TEXT NOT NULL,
        part_length_s  REAL,
        priority       INTEGER NOT NULL DEFAULT 0,
        created_at     REAL NOT NULL,          -- Unix time, seconds
        editor_hash    TEXT NOT NULL,          -- SHA-256 hex of the editor token
        viewer_hash    TEXT NOT NULL,          -- SHA-256 hex of the viewer token
        source_kind    TEXT,                   -- upload | url; NULL until a source is given
        source_name    TEXT,
        source_url     TEXT,
        source_size    INTEGER,
        source_path    TEXT,                   -- relative to the data dir
        info           TEXT                    -- MediaInfo JSON once probed
    );

    CREATE TABLE jobs (
        id          TEXT PRIMARY KEY,
        project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        parent_id   TEXT REFERENCES jobs(id),  -- the ingest job that planned a render
        kind        TEXT NOT NULL,             -- ingest | render
        label       TEXT NOT NULL,
        platforms   TEXT NOT NULL,             -- JSON list
        rendition   TEXT,                      -- Rendition JSON for render jobs
        state       TEXT NOT NULL,
        priority    INTEGER NOT NULL DEFAULT 0,
        seq         INTEGER NOT NULL,          -- enqueue order, FIFO within a priority
        attempt     INTEGER NOT NULL DEFAULT 1,
        error       TEXT,
        created_at  REAL NOT NULL,
        started_at  REAL,
        ended_at    REAL
    );
    CREATE INDEX jobs_project ON jobs(project_id);
    CREATE INDEX jobs_state ON jobs(state);

    CREATE TABLE outputs (
        id             TEXT PRIMARY KEY,
        job_id         TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        project_id     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        platform       TEXT NOT NULL,
        part           INTEGER NOT NULL,
        parts          INTEGER NOT NULL,
        width          INTEGER NOT NULL,
        height         INTEGER NOT NULL,
        duration_s     REAL NOT NULL,
        size_bytes     INTEGER NOT NULL,
        path           TEXT NOT NULL,          -- relative to the data dir
        thumbnail_path TEXT,                   -- relative to the data dir
        created_at     REAL NOT NULL
    );
    CREATE INDEX outputs_project ON outputs(project_id);

    CREATE TABLE events (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        at          REAL NOT NULL,
        actor       TEXT NOT NULL,
        action      TEXT NOT NULL,
        text        TEXT NOT NULL,
        job_id      TEXT
    );
    CREATE INDEX events_project ON events(project_id, id);

    -- Media tool processes started for running jobs, so that crash recovery can stop the
    -- ones a killed server left behind. start_ticks (field 22 of /proc/PID/stat) tells a
    -- live process from a later one that reused the pid.
    CREATE TABLE processes (
        pid          INTEGER NOT NULL,
        start_ticks  INTEGER NOT NULL,
        job_id       TEXT NOT NULL,
        PRIMARY KEY (pid, start_ticks)
    );
    """,
)
