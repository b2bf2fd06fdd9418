"""The hub: one channel per project that numbers, encodes, remembers and fans out its frames.

The hub is the app's EventSink. For every event it builds the frame of docs/protocol.md,
gives it the project's next sequence number, encodes it once and hands the same bytes to
every subscriber of the project, each of which queues them without blocking. A bounded
history per project lets a reconnecting client get exactly the frames it missed. The epoch
is new on every start and marks when that history cannot be trusted.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from viralsplit import events as ev
from viralsplit.jobs.model import JobState
from viralsplit.media.progress import Progress
from viralsplit.realtime import protocol

log = logging.getLogger(__name__)

DEFAULT_HISTORY = 1024
DEFAULT_PROGRESS_PER_S = 4.0
# Presence frames: by default at most one per this many seconds per project, listing at most
# this many viewers (the frame's "count" has the total).
PRESENCE_INTERVAL_S = 0.5
PRESENCE_LIST_MAX = 50
# Snapshot reads retried while job events keep arriving during the read; see Hub.subscribe.
SNAPSHOT_ATTEMPTS = 5

SnapshotLoader = Callable[[str], Awaitable[dict[str, Any]]]
OutputUrls = Callable[[str, str], dict[str, str]]


@dataclasses.dataclass(eq=False)
class Frame:
    """One published frame: its value, its MessagePack bytes (encoded once) and its JSON on demand."""

    seq: int
    kind: str
    value: Any
    data: bytes
    # (channel, job number) for progress frames, which replace each other in outbound queues.
    replace_key: tuple[int, int] | None = None
    _json: str | None = None

    def json(self) -> str:
        if self._json is None:
            self._json = json.dumps(self.value, separators=(",", ":"), ensure_ascii=False)
        return self._json


def make_frame(value: Any, seq: int = 0, kind: str | None = None, replace_key: tuple[int, int] | None = None) -> Frame:
    return Frame(seq, kind or protocol.frame_type(value), value, protocol.encode(value), replace_key)


class Subscriber(Protocol):
    def deliver(self, frame: Frame, replay: bool = False) -> None:
        """Queue a frame for sending; must not block or raise. `replay` marks missed frames sent on resume."""

    def shutdown(self) -> None:
        """Close with the "server shutting down" code because the server is stopping."""


@dataclasses.dataclass
class _Throttle:
    last_sent: float = float("-inf")
    pending: ev.JobProgress | None = None
    handle: asyncio.TimerHandle | None = None


class Channel:
    """The frames, history and subscribers of one project."""

    def __init__(self, project_id: str, ch: int, history_size: int) -> None:
        self.project_id = project_id
        self.ch = ch
        self.seq = 0
        # Sequence number of the last frame that reflects a stored change (not progress or
        # presence). A snapshot read is consistent if this did not move while it ran.
        self.state_seq = 0
        self.history: collections.deque[Frame] = collections.deque(maxlen=history_size)
        self.job_numbers: dict[str, int] = {}
        self.last_progress: dict[str, Progress] = {}
        self.throttles: dict[str, _Throttle] = {}
        # Subscriber -> presence entry, or None for subscribers not shown in presence (SSE).
        self.subscribers: dict[Subscriber, dict[str, str] | None] = {}
        self.presence_sent = float("-inf")
        self.presence_timer: asyncio.TimerHandle | None = None

    def job_number(self, job_id: str) -> int:
        number = self.job_numbers.get(job_id)
        if number is None:
            number = len(self.job_numbers) + 1
            self.job_numbers[job_id] = number
        return number

    def presence(self) -> tuple[list[dict[str, str]], int]:
        """Return the first PRESENCE_LIST_MAX presence entries in subscription order, and the total count."""
        entries = [entry for entry in self.subscribers.values() if entry is not None]
        return entries[:PRESENCE_LIST_MAX], len(entries)

    def frames_after(self, seq: int) -> list[Frame] | None:
        """Return the frames with a sequence number above `seq`, or None when history no longer has them all."""
        if seq > self.seq:
            return None
        if seq == self.seq:
            return []
        if not self.history or self.history[0].seq > seq + 1:
            return None
        return [frame for frame in self.history if frame.seq > seq]


class Hub:
    """Channels of every project; implements events.EventSink."""

    def __init__(
        self,
        *,
        progress_per_s: float = DEFAULT_PROGRESS_PER_S,
        history_size: int = DEFAULT_HISTORY,
        epoch: str | None = None,
        output_urls: OutputUrls | None = None,
        presence_interval_s: float = PRESENCE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.presence_interval_s = presence_interval_s
        self.epoch = epoch or secrets.token_hex(4)
        self.progress_interval = 1.0 / progress_per_s if progress_per_s > 0 else 0.0
        self.history_size = history_size
        self.output_urls = output_urls
        self.clock = clock
        self.channels: dict[str, Channel] = {}
        # Every open connection, subscribed or not, so shutdown can close them all.
        self.connections: set[Subscriber] = set()
        self._next_ch = 1

    def channel(self, project_id: str) -> Channel:
        channel = self.channels.get(project_id)
        if channel is None:
            # NOTE: channels live as long as the process, so a project's seq and history
            # survive its subscribers leaving. Each costs at most history_size frames.
            channel = Channel(project_id, self._next_ch, self.history_size)
            self._next_ch += 1
            self.channels[project_id] = channel
        return channel

    # Publishing ------------------------------------------------------------------------------

    def publish(self, project_id: str, event: ev.Event) -> None:
        """Turn an event into a frame and send it to every subscriber of the project."""
        channel = self.channel(project_id)
        if isinstance(event, ev.JobProgress):
            self._throttle_progress(channel, event)
            return
        value = self._event_value(channel, project_id, event)
        frame = self._emit(channel, value)
        channel.state_seq = frame.seq

    def _event_value(self, channel: Channel, project_id: str, event: ev.Event) -> dict[str, Any]:
        if isinstance(event, ev.JobStateChanged):
            self._drop_pending_progress(channel, event.job_id)
            channel.last_progress.pop(event.job_id, None)
            state = event.state.value if isinstance(event.state, JobState) else str(event.state)
            return {
                "t": "job",
                "job": event.job_id,
                "n": channel.job_number(event.job_id),
                "state": state,
                "error": event.error,
                "priority": event.priority,
                "attempt": event.attempt,
            }
        if isinstance(event, ev.JobAdded):
            return {
                "t": "job_added",
                "job": event.job_id,
                "n": channel.job_number(event.job_id),
                "kind": event.kind,
                "label": event.label,
                "priority": event.priority,
            }
        if isinstance(event, ev.JobPriorityChanged):
            return {
                "t": "priority",
                "job": event.job_id,
                "n": channel.job_number(event.job_id),
                "priority": event.priority,
                "queue": list(event.queue_order),
            }
        if isinstance(event, ev.OutputReady):
            output: dict[str, Any] = {
                "id": event.output_id,
                "job_id": event.job_id,
                "platform": event.platform,
                "part": event.part,
                "parts": event.parts,
                "width": event.width,
                "height": event.height,
                "duration_s": event.duration_s,
                "size_bytes": event.size_bytes,
            }
            if self.output_urls is not None:
                output.update(self.output_urls(project_id, event.output_id))
            return {"t": "output", "output": output}
        if isinstance(event, ev.SourceReady):
            return {"t": "source", "info": event.info}
        if isinstance(event, ev.Activity):
            return {"t": "activity", "activity": dataclasses.asdict(event)}
        raise TypeError(f"unknown event type {type(event).__name__}")

    def _emit(self, channel: Channel, value: Any, replace_key: tuple[int, int] | None = None) -> Frame:
        channel.seq += 1
        seq = channel.seq
        if isinstance(value, dict):
            # "ch" and "seq" go right after "t" so the map reads like the examples in the doc.
            value = {"t": value["t"], "ch": channel.ch, "seq": seq, **{k: v for k, v in value.items() if k != "t"}}
        frame = make_frame(value, seq, replace_key=replace_key)
        channel.history.append(frame)
        for subscriber in list(channel.subscribers):
            subscriber.deliver(frame)
        return frame

    def _throttle_progress(self, channel: Channel, event: ev.JobProgress) -> None:
        throttle = channel.throttles.setdefault(event.job_id, _Throttle())
        now = self.clock()
        if event.final or now - throttle.last_sent >= self.progress_interval:
            self._cancel_timer(throttle)
            throttle.pending = None
            throttle.last_sent = now
            self._emit_progress(channel, event)
            return
        throttle.pending = event
        if throttle.handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                # Without a loop, the pending value goes out with the next event after the interval.
                return
            delay = throttle.last_sent + self.progress_interval - now
            throttle.handle = loop.call_later(delay, self._flush_progress, channel, event.job_id)

    def _flush_progress(self, channel: Channel, job_id: str) -> None:
        throttle = channel.throttles.get(job_id)
        if throttle is None:
            return
        throttle.handle = None
        if throttle.pending is not None:
            event, throttle.pending = throttle.pending, None
            throttle.last_sent = self.clock()
            self._emit_progress(channel, event)

    def _emit_progress(self, channel: Channel, event: ev.JobProgress) -> None:
        number = channel.job_number(event.job_id)
        channel.last_progress[event.job_id] = event.progress
        # _emit assigns channel.seq + 1 to this frame, the seq the array is built with.
        value = protocol.progress_frame(channel.ch, channel.seq + 1, number, event.progress)
        self._emit(channel, value, replace_key=(channel.ch, number))

    def _drop_pending_progress(self, channel: Channel, job_id: str) -> None:
        throttle = channel.throttles.pop(job_id, None)
        if throttle is not None:
            self._cancel_timer(throttle)

    @staticmethod
    def _cancel_timer(throttle: _Throttle) -> None:
        if throttle.handle is not None:
            throttle.handle.cancel()
            throttle.handle = None

    def _presence_changed(self, channel: Channel) -> None:
        # Each presence frame goes to every subscriber, so frames are limited to one per
        # presence_interval_s per project and their lists to PRESENCE_LIST_MAX entries:
        # otherwise n subscribers joining would send O(n^3) bytes in total.
        if channel.presence_timer is not None:
            return
        wait = channel.presence_sent + self.presence_interval_s - self.clock()
        if wait <= 0:
            self._publish_presence(channel)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._publish_presence(channel)
            return
        channel.presence_timer = loop.call_later(wait, self._publish_presence, channel)

    def _publish_presence(self, channel: Channel) -> None:
        channel.presence_timer = None
        channel.presence_sent = self.clock()
        viewers, count = channel.presence()
        self._emit(channel, {"t": "presence", "viewers": viewers, "count": count})

    # Subscribing -----------------------------------------------------------------------------

    async def subscribe(
        self,
        project_id: str,
        subscriber: Subscriber,
        load_snapshot: SnapshotLoader,
        *,
        presence: dict[str, str] | None = None,
        seq: int | None = None,
        epoch: str | None = None,
        before_frames: Callable[[int, bool], None] | None = None,
    ) -> bool:
        """Attach a subscriber and send it the missed frames or a snapshot; return True on resume.

        `before_frames(ch, resumed)` is called right before the first frame is delivered (the
        connection queues its ack there). Errors of `load_snapshot` propagate and leave the
        subscriber detached.
        """
        channel = self.channel(project_id)
        self.unsubscribe(project_id, subscriber)
        missed = channel.frames_after(seq) if seq is not None and epoch == self.epoch else None
        if missed is not None:
            if before_frames is not None:
                before_frames(channel.ch, True)
            for frame in missed:
                subscriber.deliver(frame, replay=True)
            self._attach(channel, subscriber, presence)
            return True

        state = await self._consistent_snapshot(channel, load_snapshot)
        # From here to _attach nothing awaits, so no frame is published between the snapshot's
        # label and the subscriber joining: it gets every frame after `channel.seq`.
        frame = self._snapshot_frame(channel, state)
        if before_frames is not None:
            before_frames(channel.ch, False)
        subscriber.deliver(frame)
        self._attach(channel, subscriber, presence)
        return False

    async def _consistent_snapshot(self, channel: Channel, load_snapshot: SnapshotLoader) -> dict[str, Any]:
        # The job layer publishes an event after storing its change. A read during which no
        # such event was published reflects every event up to the current seq. Progress and
        # presence come from the hub itself, below. A read that kept changing after
        # SNAPSHOT_ATTEMPTS tries is used anyway: it may also show changes of frames that
        # follow it, which are absolute values, so applying them again is harmless.
        state: dict[str, Any] = {}
        for _ in range(SNAPSHOT_ATTEMPTS):
            before = channel.state_seq
            state = await load_snapshot(channel.project_id)
            if channel.state_seq == before:
                break
        return state

    def _snapshot_frame(self, channel: Channel, state: dict[str, Any]) -> Frame:
        state = dict(state)
        jobs = []
        for job in state.get("jobs") or []:
            job = dict(job)
            job["n"] = channel.job_number(job["id"])
            progress = channel.last_progress.get(job["id"])
            job["progress"] = protocol.progress_to_json(progress) if progress and job.get("state") == "running" else None
            jobs.append(job)
        state["jobs"] = jobs
        viewers, count = channel.presence()
        value = {
            "t": "snapshot",
            "ch": channel.ch,
            "project": channel.project_id,
            "seq": channel.seq,
            "epoch": self.epoch,
            "state": state,
            "presence": viewers,
            "presence_count": count,
        }
        return make_frame(value, channel.seq)

    def _attach(self, channel: Channel, subscriber: Subscriber, presence: dict[str, str] | None) -> None:
        channel.subscribers[subscriber] = presence
        if presence is not None:
            self._presence_changed(channel)

    def unsubscribe(self, project_id: str, subscriber: Subscriber) -> None:
        channel = self.channels.get(project_id)
        if channel is None or subscriber not in channel.subscribers:
            return
        presence = channel.subscribers.pop(subscriber)
        if presence is not None:
            self._presence_changed(channel)

    def register(self, connection: Subscriber) -> None:
        self.connections.add(connection)

    def unregister(self, connection: Subscriber) -> None:
        self.connections.discard(connection)
        for project_id in [c.project_id for c in self.channels.values() if connection in c.subscribers]:
            self.unsubscribe(project_id, connection)

    def shutdown(self) -> None:
        """Ask every connection to close with the "server shutting down" code."""
        for connection in list(self.connections):
            connection.shutdown()
        for channel in self.channels.values():
            for throttle in channel.throttles.values():
                self._cancel_timer(throttle)
            if channel.presence_timer is not None:
                channel.presence_timer.cancel()
                channel.presence_timer = None
