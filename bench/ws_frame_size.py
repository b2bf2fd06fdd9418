"""Bytes on the wire for one progress update: ViralSplit's frame against a JSON polling response.

    python bench/ws_frame_size.py

The JSON side is the kind of status object that polling web UIs return for one job every
second (status, progress, message, ids, speed, ETA), serialized compactly. The WebSocket
side is the progress array of docs/protocol.md. Both sizes include the WebSocket frame
header (RFC 6455 section 5.2: 2 bytes from the server for payloads under 126 bytes) or the
HTTP response head a poll needs, which is listed separately because it varies by server.
"""

from __future__ import annotations

import json

from viralsplit.media.progress import Progress
from viralsplit.realtime import protocol

# A minimal HTTP/1.1 response head as Hypercorn sends it for a JSON body.
HTTP_HEAD = (
    "HTTP/1.1 200 \r\n"
    "content-type: application/json\r\n"
    "content-length: 000\r\n"
    "cache-control: no-store\r\n"
    "date: Fri, 04 Dec 2026 20:00:00 GMT\r\n"
    "server: hypercorn-h11\r\n"
    "\r\n"
)


def websocket_header_bytes(payload: int) -> int:
    return 2 if payload < 126 else 4 if payload < 65536 else 10


def main() -> None:
    render = Progress(stage="render", fraction=0.4213, fps=48.5, speed=2.1, eta_s=31.4)
    download = Progress(stage="download", fraction=0.312, bytes_done=31457280, bytes_total=100663296, bytes_per_s=5242880.0, eta_s=12.8)
    rows = []
    for label, progress in (("render", render), ("download", download)):
        frame = protocol.encode(protocol.progress_frame(3, 4210, 2, progress))
        status = {
            "project_id": "071ee72817da30b1",
            "job_id": "af241d9c0e510339",
            "status": "running",
            "stage": progress.stage,
            "progress": round((progress.fraction or 0) * 100, 2),
            "message": f"{progress.stage} {round((progress.fraction or 0) * 100)}%",
            "fps": progress.fps,
            "speed": progress.speed,
            "eta": progress.eta_s,
            "downloaded_bytes": progress.bytes_done,
            "total_bytes": progress.bytes_total,
        }
        body = json.dumps(status, separators=(",", ":")).encode()
        ws_total = len(frame) + websocket_header_bytes(len(frame))
        rows.append((label, len(frame), ws_total, len(body), len(body) + len(HTTP_HEAD)))
    print(f"{'stage':<9} {'msgpack':>8} {'+ws hdr':>8} {'json body':>10} {'+http head':>11} {'ratio':>6}")
    for label, payload, ws_total, body, http_total in rows:
        print(f"{label:<9} {payload:>8} {ws_total:>8} {body:>10} {http_total:>11} {http_total / ws_total:>6.1f}")


if __name__ == "__main__":
    main()
