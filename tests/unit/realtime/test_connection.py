"""A connection over a fake transport: handshake, commands, limits, heartbeats and slow peers."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack
import pytest

from viralsplit import events as ev
from viralsplit.errors import StateError
from viralsplit.jobs.model import JobState
from viralsplit.realtime import protocol as p
from viralsplit.realtime.connection import Connection, OutboundQueue
from viralsplit.realtime.hub import Hub


class FakeTransport:
    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes | str] = asyncio.Queue()
        self.sent: list[Any] = []
        self.closed: tuple[int, str] | None = None
        self.writable = asyncio.Event()
        self.writable.set()
        self.got_frame = asyncio.Event()

    async def receive(self) -> bytes | str:
        return await self.incoming.get()

    async def send(self, data: bytes) -> None:
        await self.writable.wait()
        self.sent.append(msgpack.unpackb(data))
        self.got_frame.set()

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def put(self, value: Any) -> None:
        self.incoming.put_nowait(msgpack.packb(value))

    async def next_frames(self, count: int, timeout: float = 2.0) -> list[Any]:
        async def wait() -> None:
            while len(self.sent) < count:
                self.got_frame.clear()
                await self.got_frame.wait()

        await asyncio.wait_for(wait(), timeout)
        return self.sent[:count]


class FakeBackend:
    def __init__(self) -> None:
        self.tokens = {"edit": "editor", "view": "viewer"}
        self.calls: list[tuple[Any, ...]] = []

    async def authenticate(self, project_id: str, token: str) -> str | None:
        return self.tokens.get(token) if project_id == "p" else None

    async def snapshot(self, project_id: str) -> dict[str, Any]:
        return {"project": {"id": project_id}, "jobs": [], "outputs": [], "activity": []}

    async def cancel(self, project_id: str, job_id: str | None, name: str, role: str) -> None:
        self.calls.append(("cancel", project_id, job_id, name))

    async def set_priority(self, project_id: str, job_id: str, priority: int, name: str, role: str) -> None:
        self.calls.append(("set_priority", job_id, priority))

    async def retry(self, project_id: str, job_id: str, name: str, role: str) -> None:
        raise StateError("job cannot move from succeeded to queued")


def start(limits: p.Limits = p.Limits(), heartbeat_s: float = 15.0) -> tuple[Hub, FakeTransport, FakeBackend, Connection, asyncio.Task[None]]:
    hub, transport, backend = Hub(), FakeTransport(), FakeBackend()
    conn = Connection(hub, backend, transport, limits=limits, heartbeat_s=heartbeat_s)
    return hub, transport, backend, conn, asyncio.create_task(conn.run())


async def hello(transport: FakeTransport, tokens: list[str]) -> None:
    transport.put({"t": "hello", "id": 1, "versions": [1], "name": "Ana", "tokens": tokens})
    await transport.next_frames(1)


async def test_hello_subscribe_ack_then_snapshot() -> None:
    hub, transport, _, conn, task = start()
    await hello(transport, ["view"])
    transport.put({"t": "subscribe", "id": 2, "project": "p"})
    welcome, ack, snapshot, presence = await transport.next_frames(4)
    assert welcome["t"] == "welcome"
    assert welcome["conn"] == conn.id
    assert welcome["limits"]["max_frame_bytes"] == 65536
    assert ack == {"t": "ack", "id": 2, "project": "p", "ch": 1, "role": "viewer", "resumed": False}
    assert snapshot["t"] == "snapshot"
    assert snapshot["epoch"] == hub.epoch
    assert presence["viewers"] == [{"conn": conn.id, "name": "Ana", "role": "viewer"}]
    task.cancel()


async def test_wrong_token_is_unauthorized() -> None:
    _, transport, _, _, task = start()
    await hello(transport, ["nope"])
    transport.put({"t": "subscribe", "id": 2, "project": "p", "token": "also-nope"})
    error = (await transport.next_frames(2))[1]
    assert error["code"] == p.UNAUTHORIZED
    assert "nope" not in error["message"]
    task.cancel()


async def test_viewer_cancel_is_denied_and_changes_nothing() -> None:
    _, transport, backend, _, task = start()
    await hello(transport, ["view"])
    transport.put({"t": "subscribe", "id": 2, "project": "p"})
    transport.put({"t": "cancel", "id": 3, "project": "p", "job": "j1"})
    frames = await transport.next_frames(5)
    assert frames[4] == {"t": "error", "id": 3, "code": p.PERMISSION_DENIED, "message": frames[4]["message"]}
    assert backend.calls == []
    task.cancel()


async def test_editor_commands_reach_backend() -> None:
    _, transport, backend, _, task = start()
    await hello(transport, ["edit"])
    transport.put({"t": "subscribe", "id": 2, "project": "p"})
    transport.put({"t": "cancel", "id": 3, "project": "p", "job": "j1"})
    transport.put({"t": "set_priority", "id": 4, "project": "p", "job": "j1", "priority": 3})
    transport.put({"t": "retry", "id": 5, "project": "p", "job": "j1"})
    frames = await transport.next_frames(7)
    assert frames[4] == {"t": "ack", "id": 3}
    assert frames[5] == {"t": "ack", "id": 4}
    assert frames[6]["code"] == p.INVALID_STATE
    assert backend.calls == [("cancel", "p", "j1", "Ana"), ("set_priority", "j1", 3)]
    task.cancel()


async def test_malformed_frames_answered_then_closed() -> None:
    _, transport, _, _, task = start(p.Limits(max_errors=3))
    await hello(transport, [])
    transport.incoming.put_nowait(b"\xc1")
    transport.put({"t": "nonsense", "id": 7})
    transport.incoming.put_nowait("text")
    await asyncio.wait_for(task, 2)
    codes = [frame["code"] for frame in transport.sent[1:]]
    assert codes == [p.BAD_FRAME, p.UNKNOWN_TYPE, p.BAD_FRAME]
    assert transport.closed is not None
    assert transport.closed[0] == p.CLOSE_PROTOCOL_ERRORS


async def test_oversized_frame_closes_1009() -> None:
    _, transport, _, _, task = start(p.Limits(max_frame_bytes=100))
    await hello(transport, [])
    transport.incoming.put_nowait(b"\x00" * 101)
    await asyncio.wait_for(task, 2)
    assert transport.closed is not None
    assert transport.closed[0] == 1009


async def test_hello_timeout_closes_4408() -> None:
    _, transport, _, _, task = start(p.Limits(hello_timeout_s=0.05))
    await asyncio.wait_for(task, 2)
    assert transport.closed is not None
    assert transport.closed[0] == p.CLOSE_HELLO_TIMEOUT


async def test_silent_peer_closed_4002_after_heartbeats() -> None:
    _, transport, _, _, task = start(heartbeat_s=0.05)
    await hello(transport, [])
    await asyncio.wait_for(task, 2)
    assert [0] in transport.sent
    assert transport.closed is not None
    assert transport.closed[0] == p.CLOSE_HEARTBEAT_TIMEOUT


async def test_rate_limit_error_keeps_connection() -> None:
    _, transport, _, _, task = start(p.Limits(commands_per_s=0.001, command_burst=3))
    await hello(transport, [])
    for index in range(4):
        transport.put({"t": "ping", "id": 10 + index})
    frames = await transport.next_frames(5)
    assert [frame["t"] for frame in frames[1:]] == ["ack", "ack", "error", "error"]
    assert frames[3]["code"] == p.TOO_MANY_REQUESTS
    assert not task.done()
    task.cancel()


async def test_stuck_writer_overflow_closes_4000() -> None:
    hub, transport, _, conn, task = start(p.Limits(max_queued_frames=5))
    await hello(transport, ["view"])
    transport.put({"t": "subscribe", "id": 2, "project": "p"})
    await transport.next_frames(4)
    transport.writable.clear()
    for index in range(10):
        hub.publish("p", ev.JobStateChanged(f"j{index}", JobState.QUEUED))
    await asyncio.wait_for(task, 2)
    assert transport.closed is not None
    assert transport.closed[0] == p.CLOSE_RESYNC


async def test_write_deadline_closes_4000() -> None:
    hub, transport, _, conn, task = start(p.Limits(write_deadline_s=0.1))
    await hello(transport, ["view"])
    transport.writable.clear()
    transport.put({"t": "ping", "id": 2})
    await asyncio.wait_for(task, 2)
    assert transport.closed is not None
    assert transport.closed[0] == p.CLOSE_RESYNC


def test_queue_replaces_progress_and_keeps_others() -> None:
    queue = OutboundQueue(max_frames=2)
    assert queue.push(b"p1", (1, 1))
    assert queue.push(b"s1")
    assert queue.push(b"p2", (1, 1))
    assert queue.push(b"q1", (1, 2))
    assert queue.push(b"s2")
    assert not queue.push(b"s3")
    assert queue.push(b"p3", (1, 1))
    assert len(queue) == 4
    drained = []
    while (data := queue.pop()) is not None:
        drained.append(data)
    assert drained == [b"s1", b"q1", b"s2", b"p3"]


def test_queue_compacts_replaced_entries() -> None:
    queue = OutboundQueue(max_frames=4)
    for index in range(1000):
        queue.push(str(index).encode(), (1, 1))
    assert len(queue._entries) <= 10
    assert queue.pop() == b"999"


@pytest.mark.parametrize("versions", [[2], [0, 99]])
async def test_unsupported_version_closes_4406(versions: list[int]) -> None:
    _, transport, _, _, task = start()
    transport.put({"t": "hello", "id": 1, "versions": versions})
    await asyncio.wait_for(task, 2)
    assert transport.sent[0]["code"] == p.UNSUPPORTED_VERSION
    assert transport.closed is not None
    assert transport.closed[0] == p.CLOSE_UNSUPPORTED_VERSION


def test_queue_keeps_every_replayed_frame() -> None:
    queue = OutboundQueue(max_frames=2)
    for index in range(10):
        assert queue.push(str(index).encode(), (1, 1), replay=True)
    assert queue.push(b"live", (1, 1))
    assert queue.push(b"s1")
    assert queue.push(b"s2")
    drained = []
    while (data := queue.pop()) is not None:
        drained.append(data)
    assert drained == [str(index).encode() for index in range(10)] + [b"live", b"s1", b"s2"]
    assert len(queue) == 0
