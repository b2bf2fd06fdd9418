"""The hub without sockets: sequence numbers, encode once, resume, snapshots, throttling, presence."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack

from viralsplit import events as ev
from viralsplit.jobs.model import JobState
from viralsplit.media.progress import Progress
from viralsplit.realtime.hub import Frame, Hub


class Recorder:
    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.closed = False

    def deliver(self, frame: Frame, replay: bool = False) -> None:
        self.frames.append(frame)

    def shutdown(self) -> None:
        self.closed = True

    def values(self) -> list[Any]:
        return [msgpack.unpackb(f.data) for f in self.frames]

    def kinds(self) -> list[str]:
        return [f.kind for f in self.frames]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def state_event(job: str, state: JobState) -> ev.JobStateChanged:
    return ev.JobStateChanged(job_id=job, state=state)


def render(fraction: float) -> Progress:
    return Progress(stage="render", fraction=fraction, fps=30.0, speed=2.0, eta_s=5.0)


async def empty_snapshot(project_id: str) -> dict[str, Any]:
    return {"project": {"id": project_id}, "jobs": [], "outputs": [], "activity": []}


async def test_frames_get_consecutive_seq_and_same_bytes() -> None:
    hub = Hub(progress_per_s=0)
    first, second = Recorder(), Recorder()
    await hub.subscribe("p", first, empty_snapshot)
    await hub.subscribe("p", second, empty_snapshot)
    hub.publish("p", state_event("j1", JobState.RUNNING))
    hub.publish("p", ev.JobProgress("j1", render(0.5)))
    hub.publish("p", state_event("j1", JobState.SUCCEEDED))
    assert first.kinds() == ["snapshot", "job", "progress", "job"]
    assert [f.seq for f in first.frames[1:]] == [1, 2, 3]
    assert all(a is b for a, b in zip(first.frames[1:], second.frames[1:]))


async def test_job_frame_fields() -> None:
    hub = Hub()
    sub = Recorder()
    await hub.subscribe("p", sub, empty_snapshot)
    hub.publish("p", ev.JobStateChanged("j1", JobState.FAILED, error="boom", priority=2, attempt=3))
    assert sub.values()[-1] == {
        "t": "job", "ch": 1, "seq": 1, "job": "j1", "n": 1, "state": "failed",
        "error": "boom", "priority": 2, "attempt": 3,
    }


async def test_progress_array_carries_seq_and_job_number() -> None:
    hub = Hub()
    sub = Recorder()
    await hub.subscribe("p", sub, empty_snapshot)
    hub.publish("p", ev.JobAdded("j1", "render", "TikTok", 0))
    hub.publish("p", ev.JobAdded("j2", "render", "X", 0))
    hub.publish("p", ev.JobProgress("j2", render(0.25)))
    assert sub.values()[-1] == [1, 1, 3, 2, 3, 2500, 300, 200, 5]
    assert sub.frames[-1].replace_key == (1, 2)


async def test_resume_gets_exactly_missed_frames() -> None:
    hub = Hub(progress_per_s=0)
    sub = Recorder()
    await hub.subscribe("p", sub, empty_snapshot)
    for index in range(5):
        hub.publish("p", ev.JobProgress("j1", render(index / 10)))
    hub.unsubscribe("p", sub)
    for index in range(5, 9):
        hub.publish("p", ev.JobProgress("j1", render(index / 10)))
    again = Recorder()
    acks: list[tuple[int, bool]] = []
    resumed = await hub.subscribe("p", again, empty_snapshot, seq=5, epoch=hub.epoch,
                                  before_frames=lambda ch, r: acks.append((ch, r)))
    assert resumed
    assert acks == [(1, True)]
    assert [f.seq for f in again.frames] == [6, 7, 8, 9]


async def test_resume_with_other_epoch_gets_snapshot() -> None:
    hub = Hub(progress_per_s=0)
    hub.publish("p", state_event("j1", JobState.RUNNING))
    sub = Recorder()
    resumed = await hub.subscribe("p", sub, empty_snapshot, seq=1, epoch="00000000")
    assert not resumed
    assert sub.kinds() == ["snapshot"]
    assert sub.values()[0]["seq"] == 1


async def test_resume_beyond_history_gets_snapshot() -> None:
    hub = Hub(progress_per_s=0, history_size=4)
    for index in range(10):
        hub.publish("p", ev.JobProgress("j1", render(index / 10)))
    sub = Recorder()
    assert not await hub.subscribe("p", sub, empty_snapshot, seq=3, epoch=hub.epoch)
    assert await hub.subscribe("p", Recorder(), empty_snapshot, seq=6, epoch=hub.epoch)


async def test_resume_at_current_seq_sends_nothing() -> None:
    hub = Hub()
    hub.publish("p", state_event("j1", JobState.RUNNING))
    sub = Recorder()
    assert await hub.subscribe("p", sub, empty_snapshot, seq=1, epoch=hub.epoch)
    assert sub.frames == []


async def test_resume_from_future_seq_gets_snapshot() -> None:
    hub = Hub()
    sub = Recorder()
    assert not await hub.subscribe("p", sub, empty_snapshot, seq=50, epoch=hub.epoch)


async def test_snapshot_is_reread_while_events_arrive() -> None:
    hub = Hub()
    reads = 0

    async def busy_snapshot(project_id: str) -> dict[str, Any]:
        nonlocal reads
        reads += 1
        if reads < 3:
            hub.publish(project_id, state_event(f"j{reads}", JobState.QUEUED))
        await asyncio.sleep(0)
        return {"project": {}, "jobs": [{"id": f"j{i}", "state": "queued"} for i in range(1, reads)], "outputs": [], "activity": []}

    sub = Recorder()
    await hub.subscribe("p", sub, busy_snapshot)
    assert reads == 3
    snapshot = sub.values()[0]
    assert snapshot["seq"] == 2
    assert [job["id"] for job in snapshot["state"]["jobs"]] == ["j1", "j2"]
    assert [job["n"] for job in snapshot["state"]["jobs"]] == [1, 2]


async def test_snapshot_progress_comes_from_sent_frames() -> None:
    clock = Clock()
    hub = Hub(clock=clock)
    hub.publish("p", ev.JobProgress("j1", render(0.1)))
    # Throttled: not sent, so not in the snapshot either.
    hub.publish("p", ev.JobProgress("j1", render(0.2)))

    async def running(project_id: str) -> dict[str, Any]:
        return {"jobs": [{"id": "j1", "state": "running", "progress": {"stage": "render", "fraction": 0.9}},
                         {"id": "j2", "state": "queued", "progress": None}]}

    sub = Recorder()
    await hub.subscribe("p", sub, running)
    jobs = sub.values()[0]["state"]["jobs"]
    assert jobs[0]["progress"]["fraction"] == 0.1
    assert jobs[1]["progress"] is None
    hub.shutdown()


async def test_progress_throttled_and_latest_flushed() -> None:
    hub = Hub(progress_per_s=20)
    sub = Recorder()
    await hub.subscribe("p", sub, empty_snapshot)
    for index in range(10):
        hub.publish("p", ev.JobProgress("j1", render(index / 100)))
    assert [f.kind for f in sub.frames].count("progress") == 1
    await asyncio.sleep(0.1)
    progress = [v for v in sub.values() if isinstance(v, list)]
    assert len(progress) == 2
    assert progress[-1][5] == 900


async def test_final_progress_always_sent() -> None:
    clock = Clock()
    hub = Hub(clock=clock)
    sub = Recorder()
    await hub.subscribe("p", sub, empty_snapshot)
    hub.publish("p", ev.JobProgress("j1", render(0.5)))
    hub.publish("p", ev.JobProgress("j1", render(0.6)))
    hub.publish("p", ev.JobProgress("j1", render(1.0), final=True))
    fractions = [v[5] for v in sub.values() if isinstance(v, list)]
    assert fractions == [5000, 10000]
    hub.shutdown()


async def test_state_change_drops_pending_progress() -> None:
    hub = Hub(progress_per_s=20)
    sub = Recorder()
    await hub.subscribe("p", sub, empty_snapshot)
    hub.publish("p", ev.JobProgress("j1", render(0.5)))
    hub.publish("p", ev.JobProgress("j1", render(0.6)))
    hub.publish("p", state_event("j1", JobState.CANCELLED))
    await asyncio.sleep(0.1)
    assert sub.kinds() == ["snapshot", "progress", "job"]


async def test_presence_lists_subscribers() -> None:
    clock = Clock()
    hub = Hub(clock=clock)
    ana, bo = Recorder(), Recorder()
    await hub.subscribe("p", ana, empty_snapshot, presence={"conn": "c1", "name": "Ana", "role": "editor"})
    clock.now += 1
    await hub.subscribe("p", bo, empty_snapshot, presence={"conn": "c2", "name": "Bo", "role": "viewer"})
    assert ana.values()[-1]["viewers"] == [
        {"conn": "c1", "name": "Ana", "role": "editor"},
        {"conn": "c2", "name": "Bo", "role": "viewer"},
    ]
    assert ana.values()[-1]["count"] == 2
    assert bo.values()[0]["presence"] == [{"conn": "c1", "name": "Ana", "role": "editor"}]
    clock.now += 1
    hub.unregister(bo)
    assert ana.values()[-1]["viewers"] == [{"conn": "c1", "name": "Ana", "role": "editor"}]


async def test_presence_frames_are_limited() -> None:
    hub = Hub()
    first = Recorder()
    await hub.subscribe("p", first, empty_snapshot, presence={"conn": "c0", "name": "n", "role": "viewer"})
    for index in range(1, 80):
        await hub.subscribe("p", Recorder(), empty_snapshot, presence={"conn": f"c{index}", "name": "n", "role": "viewer"})
    # One frame right away, then one for the burst after the interval.
    assert first.kinds().count("presence") == 1
    await asyncio.sleep(0.6)
    presence = [v for v in first.values() if v["t"] == "presence"]
    assert len(presence) == 2
    assert presence[-1]["count"] == 80
    assert len(presence[-1]["viewers"]) == 50
    late = Recorder()
    await hub.subscribe("p", late, empty_snapshot)
    assert late.values()[0]["presence_count"] == 80
    hub.shutdown()


async def test_other_events_become_frames() -> None:
    urls = {"url": "/o/1", "thumbnail_url": "/o/1.jpg"}
    hub = Hub(output_urls=lambda project, output: urls)
    sub = Recorder()
    await hub.subscribe("p", sub, empty_snapshot)
    hub.publish("p", ev.JobPriorityChanged("j1", 5, ("j1", "j2")))
    hub.publish("p", ev.OutputReady("o1", "j1", "tiktok", 1, 2, 1080, 1920, 59.5, 1000))
    hub.publish("p", ev.SourceReady({"duration_s": 3.0}))
    hub.publish("p", ev.Activity(7, 1.5, "Ana", "cancel", "Ana cancelled the TikTok render", "j1"))
    priority, output, source, activity = sub.values()[1:]
    assert priority["queue"] == ["j1", "j2"]
    assert output["output"]["url"] == "/o/1"
    assert output["output"]["size_bytes"] == 1000
    assert source["info"] == {"duration_s": 3.0}
    assert activity["activity"]["text"] == "Ana cancelled the TikTok render"
    assert activity["seq"] == 4


async def test_channels_get_distinct_numbers() -> None:
    hub = Hub()
    assert hub.channel("a").ch == 1
    assert hub.channel("b").ch == 2
    assert hub.channel("a").ch == 1


async def test_shutdown_closes_connections() -> None:
    hub = Hub()
    sub = Recorder()
    hub.register(sub)
    hub.shutdown()
    assert sub.closed


def test_frame_json_matches_value() -> None:
    hub = Hub()
    sub = Recorder()
    hub.channel("p").subscribers[sub] = None
    hub.publish("p", ev.JobProgress("j1", render(0.5), final=True))
    assert sub.frames[0].json() == "[1,1,1,1,3,5000,300,200,5]"
