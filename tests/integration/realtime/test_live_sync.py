"""Every viewer of a project sees the same frames; late joiners and SSE readers agree with them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from conftest import QUICK_VIDEO, Peer, create_project, is_job
from viralsplit.client import ProjectState

PLATFORMS = ["tiktok", "x"]
STATE_FRAMES = {"job", "job_added", "output", "source", "activity", "priority"}


def state_frames(peer: Peer) -> list[bytes]:
    """The raw bytes of every frame that reflects a stored change, in arrival order."""
    return [raw for raw, frame in zip(peer.raw, peer.frames) if isinstance(frame, dict) and frame.get("t") in STATE_FRAMES]


def job_states(state: ProjectState) -> dict[str, str]:
    return {job_id: job["state"] for job_id, job in state.jobs.items()}


async def wait_all_ended(peer: Peer, jobs_expected: int, timeout: float = 60.0) -> ProjectState:
    state = ProjectState()

    def ended(_: Any) -> bool:
        state.__init__()  # type: ignore[misc]
        for frame in peer.frames:
            state.apply(frame)
        return len(state.jobs) >= jobs_expected and state.all_ended

    await peer.wait_for(ended, timeout)
    return state


async def test_three_clients_and_late_joiner_agree(server, media, peers) -> None:
    project = create_project(server, PLATFORMS)
    for name in ("Ana", "Bo", "Cy"):
        peer = await Peer.open(server, name, [project.viewer])
        peers.append(peer)
        await peer.subscribe(project.id)
    first = peers[0]
    project.upload(media.video(QUICK_VIDEO))

    # The fourth joins once a render is running, so its snapshot shows a render in progress.
    added = await first.wait_for(lambda f: isinstance(f, dict) and f.get("t") == "job_added" and f["kind"] == "render")
    await first.wait_for(is_job("running", added["job"]))
    late = await Peer.open(server, "Di", [project.viewer])
    peers.append(late)
    await late.subscribe(project.id)
    snapshot = await late.wait_for(lambda f: isinstance(f, dict) and f.get("t") == "snapshot")

    expected_jobs = 1 + len(PLATFORMS)
    finals = [await wait_all_ended(peer, expected_jobs) for peer in peers[:3]]
    late_final = await wait_all_ended(late, expected_jobs)

    # Same state frames, byte for byte and in the same order, for the three early peers.
    assert state_frames(peers[0]) == state_frames(peers[1])
    assert state_frames(peers[0]) == state_frames(peers[2])
    seqs = [frame["seq"] for frame in first.project_frames() if isinstance(frame, dict)]
    assert seqs == sorted(seqs)
    assert len(seqs) == len(set(seqs))

    # The snapshot equals what the others had applied up to its seq.
    replay = ProjectState()
    for frame in first.frames:
        seq = _seq(frame)
        is_snapshot = isinstance(frame, dict) and frame.get("t") == "snapshot"
        if is_snapshot or (seq is not None and seq <= snapshot["seq"]):
            replay.apply(frame)
    snapshot_jobs = {job["id"]: job["state"] for job in snapshot["state"]["jobs"]}
    assert snapshot_jobs == job_states(replay)
    assert snapshot_jobs[added["job"]] == "running"

    # And everyone ends in the same state.
    assert job_states(late_final) == job_states(finals[0])
    assert job_states(finals[0]) == job_states(finals[1]) == job_states(finals[2])
    assert set(job_states(finals[0]).values()) == {"succeeded"}
    assert len(late_final.outputs) == len(finals[0].outputs) >= len(PLATFORMS)


def _seq(frame: Any) -> int | None:
    if isinstance(frame, dict):
        return frame.get("seq")
    if isinstance(frame, list) and frame and frame[0] in (1, 2):
        return int(frame[2])
    return None


async def read_sse(url: str, token: str, events: list[dict[str, Any]], done: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=None) as client:
        async with client.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            event: dict[str, Any] = {}
            async for line in response.aiter_lines():
                if line == "":
                    if "data" in event:
                        events.append(event)
                        if done.is_set():
                            return
                    event = {}
                elif not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    event[key] = value


async def test_sse_and_socket_carry_same_events(server, media, peers) -> None:
    project = create_project(server, ["tiktok"])
    peer = await Peer.open(server, "Ana", [project.viewer])
    peers.append(peer)
    await peer.subscribe(project.id)
    await peer.wait_for(lambda f: isinstance(f, dict) and f.get("t") == "snapshot")

    events: list[dict[str, Any]] = []
    done = asyncio.Event()
    reader = asyncio.create_task(read_sse(f"{server.url}/api/projects/{project.id}/events", project.viewer, events, done))
    await asyncio.sleep(0.3)
    project.upload(media.video(QUICK_VIDEO))
    await wait_all_ended(peer, 2)
    last_seq = max(s for f in peer.frames if (s := _seq(f)) is not None)
    while not events or events[-1]["id"].split(":")[1] != str(last_seq):
        await asyncio.sleep(0.05)
        assert not reader.done(), reader.exception() if reader.done() else None
    done.set()
    reader.cancel()

    assert events[0]["event"] == "snapshot"
    epoch, _, snapshot_seq = events[0]["id"].partition(":")
    sse_frames = {int(e["id"].split(":")[1]): json.loads(e["data"]) for e in events[1:]}
    socket_frames = {s: f for f in peer.frames if (s := _seq(f)) is not None and s > int(snapshot_seq)}
    # Every frame except progress reaches both. A socket that falls 250 ms behind may skip a
    # progress frame (a newer one replaces it), so progress is compared where both have it.
    def named(frames: dict[int, Any]) -> dict[int, Any]:
        return {seq: frame for seq, frame in frames.items() if isinstance(frame, dict)}

    assert named(sse_frames) == named(socket_frames)
    for seq, frame in socket_frames.items():
        assert sse_frames[seq] == frame
    assert {e["event"] for e in events[1:]} >= {"job", "job_added", "output", "activity"}
    assert epoch == peer.frames[[i for i, f in enumerate(peer.frames) if isinstance(f, dict) and f.get("t") == "snapshot"][0]]["epoch"]


async def test_sse_resumes_from_last_event_id(server, media) -> None:
    project = create_project(server, ["tiktok"])
    url = f"{server.url}/api/projects/{project.id}/events"
    events: list[dict[str, Any]] = []
    done = asyncio.Event()
    reader = asyncio.create_task(read_sse(url, project.viewer, events, done))
    await asyncio.sleep(0.3)
    project.upload(media.video(QUICK_VIDEO))
    while len(events) < 6:
        await asyncio.sleep(0.05)
    reader.cancel()
    resume_from = events[3]["id"]
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("GET", url, headers={"Authorization": f"Bearer {project.viewer}", "Last-Event-ID": resume_from}) as response:
            lines = []
            async for line in response.aiter_lines():
                lines.append(line)
                if line.startswith("id: ") and line[4:] == events[5]["id"]:
                    break
    ids = [line[4:] for line in lines if line.startswith("id: ")]
    assert ids[:2] == [events[4]["id"], events[5]["id"]]


async def test_sse_rejects_wrong_token(server) -> None:
    project = create_project(server, ["tiktok"])
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{server.url}/api/projects/{project.id}/events", params={"token": "wrong"})
    assert response.status_code == 403
