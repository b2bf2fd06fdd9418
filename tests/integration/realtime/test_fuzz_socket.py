"""Malformed input on a live socket: the server answers as docs/protocol.md says and keeps running."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from conftest import create_project, ws_url

MAX_FRAME_BYTES = 65536
MAX_ERRORS = 10
# A fresh connection has 20 command tokens; hello takes one, so 18 frames stay under the limit.
FRAMES_PER_CONNECTION = 18
ERROR_CODES = {
    "bad_frame", "unknown_type", "hello_required", "unsupported_version", "unauthorized",
    "not_subscribed", "permission_denied", "not_found", "invalid_state", "too_many_requests",
}
MALFORMED = {"bad_frame", "unknown_type", "hello_required"}


def deep(levels: int) -> bytes:
    return b"\x91" * levels + b"\x00"


scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=30) | st.binary(max_size=30)
values = st.recursive(scalars, lambda c: st.lists(c, max_size=6) | st.dictionaries(st.text(max_size=10), c, max_size=6), max_leaves=40)
commands = st.sampled_from(["hello", "subscribe", "unsubscribe", "cancel", "set_priority", "retry", "ping", "explode", "", "SUBSCRIBE"])
command_maps = st.fixed_dictionaries(
    {"t": commands | values, "id": st.integers(-5, 2**40) | values},
    optional={"project": values, "job": values, "priority": values | st.integers(-1000, 1000), "seq": values, "epoch": values, "versions": values, "tokens": values},
)
frames = st.one_of(
    st.binary(max_size=300),
    values.map(lambda v: msgpack.packb(v, use_bin_type=True)),
    command_maps.map(lambda v: msgpack.packb(v, use_bin_type=True)),
    st.integers(257, 100_000).map(lambda n: b"\xdd" + n.to_bytes(4, "big") + b"\x00" * min(n, 1000)),
    st.integers(9, 5000).map(deep),
    st.integers(MAX_FRAME_BYTES + 1, MAX_FRAME_BYTES * 3).map(lambda n: b"\x00" * n),
    st.text(max_size=50),
)


class Session:
    """One connection and what the test has learned about it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: ClientConnection | None = None
        self.sent = 0
        self.malformed = 0
        self.closes: list[int] = []

    def socket(self) -> ClientConnection:
        if self.ws is None or self.sent >= FRAMES_PER_CONNECTION:
            if self.ws is not None:
                self.ws.close()
            self.ws = connect(self.url, max_size=None, compression=None, legacy=True)
            self.ws.send(msgpack.packb({"t": "hello", "id": 1, "versions": [1], "name": "fuzz"}))
            assert msgpack.unpackb(self.ws.recv(timeout=5))["t"] == "welcome"
            self.sent = 0
            self.malformed = 0
        return self.ws

    def exchange(self, frame: bytes | str) -> None:
        ws = self.socket()
        self.sent += 1
        try:
            ws.send(frame)
            reply = msgpack.unpackb(ws.recv(timeout=5))
        except ConnectionClosed:
            code = ws.close_code
            self.closes.append(code)
            self.ws = None
            if isinstance(frame, (bytes, str)) and len(frame) > MAX_FRAME_BYTES:
                assert code == 1009
            else:
                assert code in (4400, 4406), code
            return
        assert isinstance(frame, str) or len(frame) <= MAX_FRAME_BYTES, "an oversized frame must close with 1009"
        assert reply["t"] in ("error", "ack", "welcome"), reply
        if reply["t"] == "error":
            assert reply["code"] in ERROR_CODES, reply
            assert isinstance(reply["message"], str) and reply["message"]
            if reply["code"] in MALFORMED:
                self.malformed += 1
                if self.malformed >= MAX_ERRORS:
                    with pytest.raises(ConnectionClosed):
                        ws.recv(timeout=5)
                    assert ws.close_code == 4400
                    self.ws = None


@pytest.fixture
def session(server) -> Iterator[Session]:
    session = Session(ws_url(server))
    yield session
    if session.ws is not None:
        session.ws.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batch=st.lists(frames, min_size=1, max_size=4))
def test_malformed_frames_answered_as_documented(server, session: Session, batch: list[bytes | str]) -> None:
    for frame in batch:
        session.exchange(frame)
    assert server.proc.poll() is None


def test_server_healthy_after_fuzzing(server, session: Session) -> None:
    for frame in [b"\xc1", deep(10000), b"\x00" * (MAX_FRAME_BYTES + 1), msgpack.packb({"t": "explode", "id": 3})]:
        session.exchange(frame)
    assert session.closes == [1009]
    project = create_project(server, ["tiktok"])
    with connect(ws_url(server)) as ws:
        ws.send(msgpack.packb({"t": "hello", "id": 1, "versions": [1], "tokens": [project.viewer]}))
        ws.send(msgpack.packb({"t": "subscribe", "id": 2, "project": project.id}))
        assert msgpack.unpackb(ws.recv(timeout=5))["t"] == "welcome"
        assert msgpack.unpackb(ws.recv(timeout=5)) ["resumed"] is False
    assert httpx.get(server.url + "/healthz").status_code == 200
