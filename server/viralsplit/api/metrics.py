"""GET /metrics in the Prometheus text exposition format (version 0.0.4)."""

from __future__ import annotations

from quart import Blueprint, Response, current_app

from viralsplit.jobs.model import JobState
from viralsplit.realtime.hub import Hub
from viralsplit.services import Services, get_services

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
async def metrics() -> Response:
    """Return job, queue, encode and upload metrics, plus lines from registered collectors."""
    services = get_services(current_app)
    text = "\n".join(await render_metrics(services)) + "\n"
    return Response(text, content_type="text/plain; version=0.0.4; charset=utf-8")


async def render_metrics(services: Services) -> list[str]:
    scheduler = services.scheduler
    counts = await services.store.count_jobs_by_state()
    lines = [
        "# HELP viralsplit_jobs Jobs in the store by state.",
        "# TYPE viralsplit_jobs gauge",
    ]
    lines += [f'viralsplit_jobs{{state="{state.value}"}} {counts.get(state.value, 0)}' for state in JobState]
    lines += [
        "# HELP viralsplit_queue_length Jobs waiting to start.",
        "# TYPE viralsplit_queue_length gauge",
        f"viralsplit_queue_length {scheduler.queue_length}",
        "# HELP viralsplit_running_encodes Render jobs running now.",
        "# TYPE viralsplit_running_encodes gauge",
        f"viralsplit_running_encodes {services.running_encodes()}",
        "# HELP viralsplit_encode_seconds_total Wall-clock seconds of render jobs that succeeded since the start.",
        "# TYPE viralsplit_encode_seconds_total counter",
        f"viralsplit_encode_seconds_total {scheduler.encode_seconds_total:.3f}",
        "# HELP viralsplit_upload_bytes_total Upload bytes received since the start.",
        "# TYPE viralsplit_upload_bytes_total counter",
        f"viralsplit_upload_bytes_total {services.upload_bytes_total}",
        "# HELP viralsplit_jobs_finished_total Jobs that ended since the start, by final state.",
        "# TYPE viralsplit_jobs_finished_total counter",
    ]
    lines += [
        f'viralsplit_jobs_finished_total{{state="{state.value}"}} {scheduler.jobs_finished_total.get(state.value, 0)}'
        for state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
    ]
    for collector in services.metric_collectors:
        lines += list(collector())
    return lines


def realtime_metrics(hub: Hub) -> list[str]:
    """Return the realtime hub's connection, subscription and frame counts as metric lines."""
    channels = list(hub.channels.values())
    return [
        "# HELP viralsplit_connections Open WebSocket connections.",
        "# TYPE viralsplit_connections gauge",
        f"viralsplit_connections {len(hub.connections)}",
        "# HELP viralsplit_subscriptions Project subscriptions of WebSocket connections and SSE streams.",
        "# TYPE viralsplit_subscriptions gauge",
        f"viralsplit_subscriptions {sum(len(channel.subscribers) for channel in channels)}",
        "# HELP viralsplit_frames_published_total Frames the hub published to project channels since the start.",
        "# TYPE viralsplit_frames_published_total counter",
        f"viralsplit_frames_published_total {sum(channel.seq for channel in channels)}",
    ]
