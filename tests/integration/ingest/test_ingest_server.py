"""A URL project through a real `viralsplit serve`: download, probe, plan, render, outputs."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
from mediaserver import MediaServer
from servers import ServerFactory, wait_until


def collect_events(url: str, token: str, events: list[tuple[str, Any]], stop: threading.Event) -> None:
    """Append (event, data) from the project's server-sent events until `stop` is set.

    The stream ends with an error when the test stops the server; the events read so far count.
    """
    with contextlib.suppress(httpx.HTTPError):
        with httpx.stream("GET", url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as response:
            event = ""
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    events.append((event, json.loads(line.split(":", 1)[1])))
                if stop.is_set():
                    return


def probe_streams(path: Path) -> dict[str, dict[str, Any]]:
    command = ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", str(path)]
    streams = json.loads(subprocess.run(command, capture_output=True, check=True).stdout)["streams"]
    return {stream["codec_type"]: stream for stream in streams}


def test_url_project_renders(server_factory: ServerFactory, threaded_media_server: MediaServer, clip: Path, tmp_path: Path) -> None:
    # About 1 s of throttled transfer, so progress frames arrive while the events stream is open.
    threaded_media_server.file("/clip.mp4", clip, chunk_bytes=8 * 1024, chunk_delay_s=0.08)
    server = server_factory.start(env={"VIRALSPLIT_URL_ALLOWLIST": threaded_media_server.allowlist_entry})

    created = httpx.post(
        f"{server.url}/api/projects",
        json={"title": "From a link", "url": f"{threaded_media_server.origin}/clip.mp4", "platforms": ["x"]},
    )
    assert created.status_code == 201, created.text
    project = created.json()
    token = project["editor_token"]
    events: list[tuple[str, Any]] = []
    stop = threading.Event()
    reader = threading.Thread(
        target=collect_events, args=(f"{server.url}/api/projects/{project['id']}/events", token, events, stop), daemon=True
    )
    reader.start()

    def snapshot() -> dict[str, Any]:
        response = httpx.get(f"{server.url}/api/projects/{project['id']}", headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        return response.json()

    def finished() -> dict[str, Any] | None:
        state = snapshot()
        jobs = state["jobs"]
        done = len(jobs) >= 2 and all(job["state"] in ("succeeded", "failed", "cancelled") for job in jobs)
        return state if done else None

    state = wait_until(finished, timeout=180, message="every job of the URL project ended")
    stop.set()

    assert [job["state"] for job in state["jobs"]] == ["succeeded"] * len(state["jobs"])
    assert state["project"]["source"]["kind"] == "url"
    assert state["project"]["source"]["size_bytes"] == clip.stat().st_size

    # Download progress frames: [2, ch, seq, n, fraction, bytes_done, bytes_total, rate, eta].
    downloads = [data for event, data in events if event == "download"]
    assert downloads, f"no download progress among {[event for event, _ in events]}"
    receiving = [frame for frame in downloads if frame[5]]
    assert receiving, f"no download frame carried bytes: {downloads}"
    assert [frame[6] for frame in receiving] == [clip.stat().st_size] * len(receiving)
    byte_counts = [frame[5] for frame in receiving]
    assert byte_counts == sorted(byte_counts)
    assert byte_counts[-1] <= clip.stat().st_size

    assert len(state["outputs"]) == 1
    output = state["outputs"][0]
    assert (output["platform"], output["width"], output["height"]) == ("x", 1280, 720)
    media = httpx.get(f"{server.url}{output['url']}", headers={"Authorization": f"Bearer {token}"})
    assert media.status_code == 200
    rendered = tmp_path / "x.mp4"
    rendered.write_bytes(media.content)
    streams = probe_streams(rendered)
    assert (streams["video"]["codec_name"], streams["video"]["width"], streams["video"]["height"]) == ("h264", 1280, 720)
    assert streams["audio"]["codec_name"] == "aac"
    assert threaded_media_server.hits.count("/clip.mp4") >= 1
    assert not list((server.data_dir).rglob("*.part"))


def test_url_project_rejected_before_creation(server_factory: ServerFactory, threaded_media_server: MediaServer, clip: Path) -> None:
    threaded_media_server.file("/clip.mp4", clip)
    server = server_factory.start()

    created = httpx.post(
        f"{server.url}/api/projects",
        json={"title": "Loopback", "url": f"{threaded_media_server.origin}/clip.mp4?sig=s3cret", "platforms": ["x"]},
    )

    assert created.status_code == 422, created.text
    error = created.json()["error"]
    assert error["code"] == "url_rejected"
    assert error["field"] == "url"
    assert "loopback address" in error["message"]
    assert "VIRALSPLIT_URL_ALLOWLIST" in error["message"]
    assert "s3cret" not in error["message"]
    assert threaded_media_server.hits == []
    # No project folder was made for the rejected request.
    projects = server.data_dir / "projects"
    assert not projects.exists() or not any(projects.iterdir())


def child_pids(pid: int) -> set[int]:
    """Return the direct children of pid, read from /proc (Linux)."""
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text()
        children.update(int(child) for child in text.split())
    return children


def pid_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_cancel_ingest_stops_download(server_factory: ServerFactory, threaded_media_server: MediaServer, media, tmp_path: Path) -> None:
    # 2 MiB at 16 KiB per 50 ms: about 6 s of download to cancel in.
    threaded_media_server.file("/slow.mp4", media.random_bytes(2 * 1024 * 1024), chunk_bytes=16 * 1024, chunk_delay_s=0.05)
    server = server_factory.start(env={"VIRALSPLIT_URL_ALLOWLIST": threaded_media_server.allowlist_entry})
    created = httpx.post(
        f"{server.url}/api/projects",
        json={"title": "Slow link", "url": f"{threaded_media_server.origin}/slow.mp4", "platforms": ["x"]},
    ).json()
    headers = {"Authorization": f"Bearer {created['editor_token']}"}
    job_id = created["ingest_job_id"]

    def downloading() -> bool:
        jobs = httpx.get(f"{server.url}/api/projects/{created['id']}", headers=headers).json()["jobs"]
        progress = jobs[0]["progress"] or {}
        return progress.get("stage") == "download" and (progress.get("bytes_done") or 0) > 0

    wait_until(downloading, timeout=30, message="the download started")
    yt_dlp_pids = child_pids(server.pid)
    assert yt_dlp_pids, "the server should have a yt-dlp child while downloading"

    response = httpx.post(f"{server.url}/api/jobs/{job_id}/cancel", headers=headers)
    assert response.status_code in (200, 202), response.text
    wait_until(lambda: not any(pid_running(pid) for pid in yt_dlp_pids), timeout=1.0, message="yt-dlp exited")

    def job_state() -> str | None:
        state = httpx.get(f"{server.url}/api/projects/{created['id']}", headers=headers).json()["jobs"][0]["state"]
        return state if state != "running" else None

    assert wait_until(job_state, timeout=10, message="the ingest job left running") == "cancelled"
    assert not list(server.data_dir.rglob("*.part"))
    assert not list(server.data_dir.rglob("*.mp4"))


def test_submit_url_follows_to_outputs(server_factory: ServerFactory, threaded_media_server: MediaServer, clip: Path) -> None:
    threaded_media_server.file("/clip.mp4", clip)
    server = server_factory.start(env={"VIRALSPLIT_URL_ALLOWLIST": threaded_media_server.allowlist_entry})
    command = [sys.executable, "-m", "viralsplit", "submit", f"{threaded_media_server.origin}/clip.mp4",
               "--server", server.url, "--platform", "x"]

    result = subprocess.run(command, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)

    assert result.returncode == 0, result.stderr
    project_id = result.stderr.split("project ", 1)[1].split(":", 1)[0]
    outputs = list((server.data_dir / "projects" / project_id).rglob("*.mp4"))
    assert any(path.parent.name != "source" for path in outputs), result.stderr
