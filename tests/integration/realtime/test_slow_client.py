"""A client that stops reading is closed with the resync code; 20 readers keep going meanwhile."""

from __future__ import annotations

import asyncio
import socket
import time
from urllib.parse import urlsplit

import msgpack
import websockets

from conftest import Peer, create_project, is_type, ws_url

READERS = 20
# Resubscribes per reader at most. Each publishes two presence frames of about 1.7 KB with
# 20 readers of 40-character names; the stalled socket is closed once its kernel send buffer
# (up to 4 MiB with Linux's default tcp_wmem), the transport buffer and 256 queued frames
# are full, which takes about 3000 frames.
MAX_ROUNDS = 150


async def open_stalled(server) -> tuple[websockets.ClientConnection, str]:
    """A socket with a tiny receive buffer whose reads stop after the welcome."""
    parts = urlsplit(server.url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname, parts.port))
    sock.setblocking(False)
    # No keepalive pings: the library would close the socket itself when pongs stop arriving.
    ws = await websockets.connect(ws_url(server), sock=sock, max_queue=1, compression=None, ping_interval=None)
    await ws.send(msgpack.packb({"t": "hello", "id": 1, "versions": [1], "name": "stalled"}))
    welcome = msgpack.unpackb(await ws.recv())
    return ws, welcome["conn"]


async def test_stalled_client_closed_others_unaffected(server_factory, peers) -> None:
    # Presence frames without their 0.5 s spacing are the fastest way to fill the buffers.
    server = server_factory.start(env={"VIRALSPLIT_PRESENCE_INTERVAL_S": "0"})
    project = create_project(server, ["tiktok"])
    stalled, stalled_conn = await open_stalled(server)
    await stalled.send(msgpack.packb({"t": "subscribe", "id": 2, "project": project.id, "token": project.viewer}))

    for index in range(READERS):
        peer = await Peer.open(server, f"reader-{index:02d}-".ljust(40, "x"), [project.viewer])
        peers.append(peer)
        await peer.subscribe(project.id)

    def stalled_gone(frame) -> bool:
        return is_type("presence")(frame) and all(v["conn"] != stalled_conn for v in frame["viewers"]) and len(frame["viewers"]) == READERS

    gone = asyncio.Event()
    ack_latencies: list[float] = []

    async def churn(peer: Peer) -> None:
        for _ in range(MAX_ROUNDS):
            if gone.is_set():
                return
            started = time.monotonic()
            await peer.subscribe(project.id)
            ack_latencies.append(time.monotonic() - started)
            # Stay under the command rate limit of 10 per second.
            await asyncio.sleep(0.1)

    async def watch_presence() -> None:
        await peers[0].wait_for(stalled_gone, timeout=60)
        gone.set()

    watcher = asyncio.create_task(watch_presence())
    await asyncio.gather(*(churn(peer) for peer in peers))
    await asyncio.wait_for(watcher, 30)

    # The stalled client, once it reads again, finds the resync close code at the end.
    async def drain() -> None:
        try:
            async for _ in stalled:
                pass
        except websockets.ConnectionClosed:
            pass

    await asyncio.wait_for(drain(), 30)
    assert stalled.close_code == 4000

    # The readers were never closed, got their acks quickly and agree on who is present.
    assert all(peer.close_code is None for peer in peers)
    assert max(ack_latencies) < 5.0, max(ack_latencies)
    await asyncio.sleep(0.3)
    finals = [[f for f in peer.frames if is_type("presence")(f)][-1] for peer in peers]
    assert all(final == finals[0] for final in finals)
    assert len(finals[0]["viewers"]) == READERS
