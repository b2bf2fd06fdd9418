"""CPU of the hub, the outbound queues and the writer tasks alone, with a no-op transport.

    python bench/ws_writer_overhead.py

1,000 Connection objects subscribe to one channel; the hub publishes 200 progress frames and
every writer task "sends" each frame to a transport whose send does nothing. The CPU time per
delivered frame is what ViralSplit's own code adds per socket and frame; bench/ws_fanout.py
measures the same path with Quart, Hypercorn, wsproto and the kernel included.
"""

from __future__ import annotations

import asyncio
import resource
from typing import Any

from viralsplit import events as ev
from viralsplit.media.progress import Progress
from viralsplit.realtime.connection import Connection
from viralsplit.realtime.hub import Hub

CONNECTIONS = 1000
FRAMES = 200


class NullTransport:
    def __init__(self) -> None:
        self.sent = 0
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue()

    async def receive(self) -> bytes:
        return await self.incoming.get()

    async def send(self, data: bytes) -> None:
        self.sent += 1

    async def close(self, code: int, reason: str) -> None:
        return None


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main() -> None:
    hub = Hub(progress_per_s=0)
    connections: list[tuple[Connection, asyncio.Task[Any]]] = []
    for _ in range(CONNECTIONS):
        connection = Connection(hub, None, NullTransport(), heartbeat_s=15.0)  # type: ignore[arg-type]
        hub.channel("p").subscribers[connection] = None
        connections.append((connection, asyncio.create_task(connection.run())))
    await asyncio.sleep(0.1)

    started = cpu_seconds()
    for index in range(FRAMES):
        hub.publish("p", ev.JobProgress("j", Progress(stage="render", fraction=index / FRAMES)))
        # Two passes let every writer task send before the next frame replaces it.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    await asyncio.sleep(0.2)
    cpu = cpu_seconds() - started

    sent = sum(connection.transport.sent for connection, _ in connections)  # type: ignore[attr-defined]
    print(f"{CONNECTIONS} connections, {sent} frames delivered, {1e6 * cpu / sent:.2f} us of CPU per delivered frame")
    for _, task in connections:
        task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
