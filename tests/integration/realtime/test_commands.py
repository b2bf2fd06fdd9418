"""Commands on the socket: cancel and set_priority reach the jobs, and every subscriber sees them."""

from __future__ import annotations

import asyncio
import time

from conftest import SLOW_ENV, SLOW_VIDEO, Peer, child_processes, create_project, is_job, is_type, process_nice


async def wait_for_ffmpeg(pid: int, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = child_processes(pid)
        if found:
            return found
        await asyncio.sleep(0.05)
    raise TimeoutError("no ffmpeg process started")


async def test_cancel_from_socket(server_factory, media, peers) -> None:
    server = server_factory.start(env=SLOW_ENV)
    project = create_project(server, ["tiktok"])
    editor = await Peer.open(server, "Ana", [project.editor])
    viewer = await Peer.open(server, "Bo", [project.viewer])
    watcher = await Peer.open(server, "Cy", [project.viewer])
    peers.extend([editor, viewer, watcher])
    for peer in peers:
        await peer.subscribe(project.id)
    project.upload(media.video(SLOW_VIDEO))
    added = await editor.wait_for(lambda f: is_type("job_added")(f) and f["kind"] == "render")
    render_job = added["job"]
    await editor.wait_for(is_job("running", render_job))
    ffmpeg = await wait_for_ffmpeg(server.pid)

    # A viewer's cancel is refused and changes nothing.
    start = len(editor.frames)
    denied = await viewer.request({"t": "cancel", "project": project.id, "job": render_job})
    assert denied["t"] == "error"
    assert denied["code"] == "permission_denied"
    await asyncio.sleep(0.3)
    assert not any(is_job("cancelled")(f) for f in editor.frames[start:])
    assert child_processes(server.pid) == ffmpeg

    sent = time.monotonic()
    ack = await editor.request({"t": "cancel", "project": project.id, "job": render_job})
    assert ack == {"t": "ack", "id": ack["id"]}
    while child_processes(server.pid) and time.monotonic() - sent < 1.0:
        await asyncio.sleep(0.02)
    assert child_processes(server.pid) == [], "ffmpeg still running 1 s after the cancel"

    for peer in peers:
        cancelled = await peer.wait_for(is_job("cancelled", render_job), timeout=5)
        activity = await peer.wait_for(lambda f: is_type("activity")(f) and f["activity"]["action"] == "cancel", timeout=5)
        assert activity["activity"]["actor"] == "Ana"
        assert "Ana" in activity["activity"]["text"]
        assert activity["activity"]["job_id"] == render_job
        assert cancelled["job"] == render_job

    # The activity is stored: a new subscriber's snapshot shows it.
    late = await Peer.open(server, "Di", [project.viewer])
    peers.append(late)
    await late.subscribe(project.id)
    snapshot = await late.wait_for(is_type("snapshot"))
    assert any(a["action"] == "cancel" and a["actor"] == "Ana" for a in snapshot["state"]["activity"])
    assert {j["id"]: j["state"] for j in snapshot["state"]["jobs"]}[render_job] == "cancelled"


async def test_set_priority_on_queued_and_running(server_factory, media, peers) -> None:
    server = server_factory.start(env=SLOW_ENV, max_jobs=1)
    project = create_project(server, ["tiktok", "x", "instagram_feed"])
    editor = await Peer.open(server, "Ana", [project.editor])
    viewer = await Peer.open(server, "Bo", [project.viewer])
    peers.extend([editor, viewer])
    for peer in peers:
        await peer.subscribe(project.id)
    project.upload(media.video(SLOW_VIDEO))

    ingest_done = await editor.wait_for(is_job("succeeded"))
    renders = [f["job"] for f in editor.frames if is_type("job_added")(f) and f["kind"] == "render"]
    assert len(renders) >= 3, renders
    running = await editor.wait_for(lambda f: is_job("running")(f) and f["job"] in renders, start=editor.frames.index(ingest_done))
    queued = [job for job in renders if job != running["job"]]

    # Queued: the last one moves to the front of the queue.
    last = queued[-1]
    ack = await editor.request({"t": "set_priority", "project": project.id, "job": last, "priority": 10})
    assert ack["t"] == "ack"
    for peer in peers:
        frame = await peer.wait_for(lambda f: is_type("priority")(f) and f["job"] == last, timeout=5)
        assert frame["priority"] == 10
        assert frame["queue"][0] == last
        assert set(frame["queue"]) == set(queued)

    # Running: the ffmpeg process gets nice 10 - priority (clamped to 0..19).
    ffmpeg = await wait_for_ffmpeg(server.pid)
    assert process_nice(ffmpeg[0]) == 10
    ack = await editor.request({"t": "set_priority", "project": project.id, "job": running["job"], "priority": -5})
    assert ack["t"] == "ack"
    assert process_nice(ffmpeg[0]) == 15
    for peer in peers:
        frame = await peer.wait_for(lambda f: is_type("priority")(f) and f["job"] == running["job"], timeout=5)
        assert frame["priority"] == -5

    # A viewer may not reprioritise.
    denied = await viewer.request({"t": "set_priority", "project": project.id, "job": last, "priority": 0})
    assert denied["code"] == "permission_denied"

    await editor.request({"t": "cancel", "project": project.id})
    for job in renders:
        await editor.wait_for(is_job("cancelled", job), timeout=10)


async def test_command_errors_on_live_server(server, peers) -> None:
    project = create_project(server, ["tiktok"])
    other = create_project(server, ["tiktok"])
    editor = await Peer.open(server, "Ana", [project.editor])
    peers.append(editor)
    await editor.subscribe(project.id)

    not_found = await editor.request({"t": "cancel", "project": project.id, "job": "0000000000000000"})
    assert not_found["code"] == "not_found"
    not_subscribed = await editor.request({"t": "cancel", "project": other.id})
    assert not_subscribed["code"] == "not_subscribed"
    unauthorized = await editor.request({"t": "subscribe", "project": other.id})
    assert unauthorized["code"] == "unauthorized"
    with_token = await editor.request({"t": "subscribe", "project": other.id, "token": other.viewer})
    assert with_token["role"] == "viewer"
