"""The Python client's pure parts: URLs, backoff and folding frames into project state."""

from __future__ import annotations

import random

import pytest

from viralsplit.client import BACKOFF_MAX_S, ProjectState, backoff_delay, websocket_url


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/api/ws"),
        ("https://split.example/", "wss://split.example/api/ws"),
        ("ws://127.0.0.1:9/api/ws", "ws://127.0.0.1:9/api/ws"),
    ],
)
def test_websocket_url(server: str, expected: str) -> None:
    assert websocket_url(server) == expected


def test_websocket_url_rejects_other_schemes() -> None:
    with pytest.raises(ValueError, match="invalid server URL"):
        websocket_url("ftp://example")


def test_backoff_grows_then_caps() -> None:
    rng = random.Random(1)
    for attempt in range(1, 30):
        cap = min(BACKOFF_MAX_S, 0.5 * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, rng) for _ in range(50)]
        assert all(0 <= delay <= cap for delay in delays)
    assert max(backoff_delay(20, rng) for _ in range(200)) > BACKOFF_MAX_S / 2


def snapshot() -> dict:
    return {
        "t": "snapshot", "ch": 1, "project": "p", "seq": 10, "epoch": "e1",
        "state": {
            "project": {"id": "p"},
            "jobs": [{"id": "j1", "n": 1, "state": "running", "progress": None}],
            "outputs": [], "activity": [],
        },
        "presence": [], "presence_count": 0,
    }


def test_state_applies_frames_after_snapshot() -> None:
    state = ProjectState()
    state.apply(snapshot())
    state.apply([1, 1, 9, 1, 3, 1000, 250, 100, 5])  # older than the snapshot: ignored
    assert state.jobs["j1"]["progress"] is None
    state.apply([1, 1, 12, 1, 3, 5000, 250, 100, 5])  # seq 11 was skipped: still applied
    assert state.jobs["j1"]["progress"]["fraction"] == 0.5
    state.apply({"t": "job_added", "ch": 1, "seq": 13, "job": "j2", "n": 2, "kind": "render", "label": "X", "priority": 0})
    state.apply({"t": "job", "ch": 1, "seq": 14, "job": "j1", "n": 1, "state": "succeeded", "error": None, "priority": 0, "attempt": 1})
    assert state.jobs["j1"]["progress"] is None
    assert not state.all_ended
    state.apply({"t": "job", "ch": 1, "seq": 15, "job": "j2", "n": 2, "state": "failed", "error": "boom", "priority": 0, "attempt": 1})
    assert state.all_ended
    assert state.jobs["j2"]["error"] == "boom"


def test_state_duplicate_frame_ignored() -> None:
    state = ProjectState()
    state.apply(snapshot())
    frame = {"t": "activity", "ch": 1, "seq": 11, "activity": {"event_id": 1, "text": "x"}}
    state.apply(frame)
    state.apply(frame)
    assert len(state.activity) == 1


def test_state_priority_sets_queue_positions() -> None:
    state = ProjectState()
    state.apply(snapshot())
    state.apply({"t": "job_added", "ch": 1, "seq": 11, "job": "j2", "n": 2, "kind": "render", "label": "X", "priority": 0})
    state.apply({"t": "job_added", "ch": 1, "seq": 12, "job": "j3", "n": 3, "kind": "render", "label": "Y", "priority": 0})
    state.apply({"t": "priority", "ch": 1, "seq": 13, "job": "j3", "n": 3, "priority": 5, "queue": ["j3", "j2"]})
    assert state.jobs["j3"]["queue_position"] == 0
    assert state.jobs["j2"]["queue_position"] == 1
    assert state.jobs["j3"]["priority"] == 5
