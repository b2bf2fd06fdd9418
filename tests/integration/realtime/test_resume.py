"""Resubscribing with the last seq gets exactly the missed frames; a restart forces a snapshot."""

from __future__ import annotations

import asyncio
from typing import Any

from conftest import QUICK_VIDEO, Peer, create_project, is_type


def seq_of(frame: Any) -> int | None:
    if isinstance(frame, dict):
        return frame.get("seq") if frame.get("t") != "snapshot" else None
    if isinstance(frame, list) and frame and frame[0] in (1, 2):
        return int(frame[2])
    return None


async def test_resume_gets_exactly_missed_frames(server, media, peers) -> None:
    project = create_project(server, ["tiktok", "x"])
    watcher = await Peer.open(server, "Bo", [project.viewer])
    leaver = await Peer.open(server, "Ana", [project.viewer])
    peers.extend([watcher, leaver])
    await watcher.subscribe(project.id)
    await leaver.subscribe(project.id)
    snapshot = await leaver.wait_for(is_type("snapshot"))
    project.upload(media.video(QUICK_VIDEO))

    await leaver.wait_for(lambda f: seq_of(f) is not None and seq_of(f) >= snapshot["seq"] + 4)
    await leaver.close()
    last_seen = max(s for f in leaver.frames if (s := seq_of(f)) is not None)
    # Let frames happen while it is away: at least its own presence change and a few more.
    await watcher.wait_for(lambda f: (seq_of(f) or 0) >= last_seen + 5)

    back = await Peer.open(server, "Ana", [project.viewer])
    peers.append(back)
    ack = await back.subscribe(project.id, seq=last_seen, epoch=snapshot["epoch"])
    assert ack["resumed"] is True
    await asyncio.sleep(0.5)

    resumed = [f for f in back.frames if seq_of(f) is not None]
    assert not any(isinstance(f, dict) and f.get("t") == "snapshot" for f in back.frames)
    newest = min(seq_of(resumed[-1]), max(seq_of(f) or 0 for f in watcher.frames))
    got = {seq_of(f): f for f in resumed if seq_of(f) <= newest}
    # Replayed frames are never skipped, so the seqs are contiguous.
    assert sorted(got) == list(range(last_seen + 1, newest + 1))
    assert [seq_of(f) for f in resumed] == sorted(seq_of(f) for f in resumed)
    # They are the frames the live watcher got; a live socket may skip progress frames.
    seen = {s: f for f in watcher.frames if (s := seq_of(f)) is not None and last_seen < s <= newest}
    assert all(got[s] == f for s, f in seen.items())
    assert {s for s, f in got.items() if isinstance(f, dict)} == {s for s, f in seen.items() if isinstance(f, dict)}


async def test_restart_changes_epoch_and_sends_snapshot(server, peers) -> None:
    project = create_project(server, ["tiktok"])
    peer = await Peer.open(server, "Ana", [project.viewer])
    await peer.subscribe(project.id)
    snapshot = await peer.wait_for(is_type("snapshot"))
    presence = await peer.wait_for(is_type("presence"))
    await peer.close()

    restarted = server.restart()
    again = await Peer.open(restarted, "Ana", [project.viewer])
    peers.append(again)
    ack = await again.subscribe(project.id, seq=presence["seq"], epoch=snapshot["epoch"])
    assert ack["resumed"] is False
    fresh = await again.wait_for(is_type("snapshot"))
    assert fresh["epoch"] != snapshot["epoch"]
    assert fresh["state"]["project"]["id"] == project.id
    assert [a["action"] for a in fresh["state"]["activity"]] == [a["action"] for a in snapshot["state"]["activity"]]


async def test_python_client_reconnects_after_restart(server_factory) -> None:
    from viralsplit.client import ProjectState, RealtimeClient

    server = server_factory.start()
    port = server.url.rsplit(":", 1)[1]
    project = create_project(server, ["tiktok"])
    client = RealtimeClient(server.url, name="script", tokens=[project.viewer])
    await client.connect()
    try:
        ack = await client.subscribe(project.id)
        assert ack["role"] == "viewer"
        frames = client.frames()
        first = await asyncio.wait_for(frames.__anext__(), 10)
        assert first["t"] == "snapshot"

        server.stop()
        # The same port, so the client's reconnect loop finds the new process.
        server_factory.start(data_dir=server.data_dir, args=["--port", port])
        while True:
            frame = await asyncio.wait_for(frames.__anext__(), 30)
            if isinstance(frame, dict) and frame.get("t") == "snapshot":
                break
        assert client.reconnects >= 1
        assert frame["epoch"] != first["epoch"]
        state = ProjectState()
        state.apply(frame)
        assert state.project["id"] == project.id
        assert (await client.ping())["t"] == "ack"
    finally:
        await client.close()
