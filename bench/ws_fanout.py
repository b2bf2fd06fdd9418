"""Realtime fan-out on loopback: ViralSplit's socket against a minimal `websockets` broadcast server.

    python bench/ws_fanout.py                       # 1,000 subscribers, 10 s, both servers
    python bench/ws_fanout.py --clients 200 --seconds 5
    python bench/ws_fanout.py --idle 10000          # memory per idle subscriber only
    python bench/ws_fanout.py --deflate             # clients offer permessage-deflate

For each server, N clients (spread over client processes) subscribe to one project, then the
server publishes progress of 2 jobs at 4 frames per second each for the given time. Every
client records when each frame arrived; the server records when it handed each frame to
the socket layer and how much CPU time it used in that window (getrusage). The script prints
delivery latency p50/p99 and server CPU per delivered frame for both servers and their ratio.

ViralSplit runs its real app (Quart on Hypercorn, the hub, one Connection per socket, a real
store with a real project and token); only the job events are synthetic, so no encoder
competes for the CPU. The baseline is `websockets.serve` plus `websockets.broadcast()` sending
the same bytes. Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack

JOBS = ("bench-job-a", "bench-job-b")
FRAMES_PER_S_PER_JOB = 4.0
CONNECT_CONCURRENCY = 100
READY_TIMEOUT_S = 900.0


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found")


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def wait_for_go(work: Path) -> dict[str, Any]:
    go = work / "go.json"
    while not go.exists():
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.05)
    return json.loads(go.read_text())


async def publish_loop(work: Path, emit, emitted: dict[int, float]) -> None:  # type: ignore[no-untyped-def]
    """Wait for go.json, call emit(job_index, progress) on schedule, write publish.json.

    `emitted` maps each frame's seq to the time the server handed it to its sockets.
    """
    from viralsplit.media.progress import Progress

    go = await wait_for_go(work)
    interval = 1.0 / FRAMES_PER_S_PER_JOB
    cpu_start = cpu_seconds()
    started = time.monotonic()
    tick = 0
    while True:
        # The jobs alternate, half an interval apart. A frame that comes less than 250 ms after
        # its job's previous one is deferred by the hub's throttle, as in production.
        due = started + tick * (interval / len(JOBS))
        if due - started > go["seconds"]:
            break
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        job = tick % len(JOBS)
        fraction = min(1.0, tick / (go["seconds"] * FRAMES_PER_S_PER_JOB * len(JOBS)))
        progress = Progress(stage="render", fraction=fraction, fps=48.5, speed=2.1, eta_s=30.0)
        emit(job, progress)
        tick += 1
    cpu = cpu_seconds() - cpu_start
    await asyncio.sleep(1.0)
    (work / "publish.json").write_text(json.dumps({"sent": emitted, "cpu_s": cpu, "wall_s": time.monotonic() - started}))


# Servers -------------------------------------------------------------------------------


def run_viralsplit_server(work: Path) -> None:
    import logging

    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config as HypercornConfig

    from viralsplit import events as ev
    from viralsplit.app import create_app, get_services
    from viralsplit.config import Config
    from viralsplit.jobs.model import JobState
    from viralsplit.server import bind_socket, format_url

    logging.basicConfig(level=logging.WARNING)
    # Hypercorn cancels the open sockets' tasks at shutdown, and asyncio logs each one.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    config = Config.load({"host": "127.0.0.1", "port": 0, "data_dir": work / "data"})
    sock = bind_socket("127.0.0.1", 0)
    app = create_app(config)
    services = get_services(app)
    url = format_url(sock)

    async def main() -> None:
        hub = services.events

        go_project: dict[str, Any] = {}
        emitted: dict[int, float] = {}

        class Probe:
            """First subscriber of the channel: records when the hub hands each frame out."""

            def deliver(self, frame: Any, replay: bool = False) -> None:
                if frame.kind == "progress":
                    emitted[frame.seq] = time.monotonic()

            def shutdown(self) -> None:
                pass

        def emit(job: int, progress: Any) -> None:
            hub.publish(go_project["id"], ev.JobProgress(JOBS[job], progress))

        async def publisher() -> None:
            go = await wait_for_go(work)
            go_project["id"] = go["project"]
            channel = hub.channel(go["project"])  # type: ignore[attr-defined]
            # The probe goes first so its time is taken before any connection gets the frame.
            subscribers = dict(channel.subscribers)
            channel.subscribers.clear()
            channel.subscribers[Probe()] = None
            channel.subscribers.update(subscribers)
            for job in JOBS:
                hub.publish(go["project"], ev.JobStateChanged(job, JobState.RUNNING))
            await publish_loop(work, emit, emitted)

        task = asyncio.create_task(publisher())
        hypercorn_config = HypercornConfig()
        hypercorn_config.bind = [f"fd://{sock.detach()}"]
        hypercorn_config.accesslog = None
        hypercorn_config.graceful_timeout = 1.0
        hypercorn_config.backlog = 4096
        (work / "url").write_text(url)
        await hypercorn_serve(app, hypercorn_config, mode="asgi")
        task.cancel()

    asyncio.run(main())


def run_baseline_server(work: Path, deflate: bool) -> None:
    import websockets

    from viralsplit.realtime import protocol

    clients: set[Any] = set()
    state = {"seq": 0}

    async def handler(ws: Any) -> None:
        await ws.recv()
        await ws.send(protocol.encode({"t": "welcome", "id": 1}))
        await ws.recv()
        await ws.send(protocol.encode({"t": "ack", "id": 2, "ch": 1}))
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    emitted: dict[int, float] = {}

    def emit(job: int, progress: Any) -> None:
        state["seq"] += 1
        data = protocol.encode(protocol.progress_frame(1, state["seq"], job + 1, progress))
        emitted[state["seq"]] = time.monotonic()
        websockets.broadcast(clients, data)

    async def main() -> None:
        async with websockets.serve(handler, "127.0.0.1", 0, compression="deflate" if deflate else None, max_queue=16, backlog=4096) as server:
            port = server.sockets[0].getsockname()[1]
            (work / "url").write_text(f"http://127.0.0.1:{port}")
            await publish_loop(work, emit, emitted)
            await asyncio.sleep(3600)

    asyncio.run(main())


# Clients -------------------------------------------------------------------------------


class LightClient(asyncio.Protocol):
    """A minimal WebSocket client (RFC 6455) for the load generator: upgrade, send, parse frames.

    The `websockets` client costs tens of microseconds per message in Python, so 1,000 of them
    in one process would measure the client more than the server. This one only splits
    unfragmented server frames (section 5.2: servers do not mask) and timestamps progress
    frames; it does not negotiate extensions.
    """

    def __init__(self, host: str, messages: list[bytes], arrivals: list[tuple[int, float]], ready: asyncio.Future[None]) -> None:
        self.host = host
        self.messages = messages
        self.arrivals = arrivals
        self.ready = ready
        self.buffer = b""
        self.upgraded = False
        self.received = 0
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (f"GET /api/ws HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
        )

    def send_binary(self, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        length = len(payload)
        header = bytes([0x82, 0x80 | length]) if length < 126 else bytes([0x82, 0x80 | 126]) + length.to_bytes(2, "big")
        self.transport.write(header + mask + masked)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.buffer += data
        if not self.upgraded:
            head, separator, rest = self.buffer.partition(b"\r\n\r\n")
            if not separator:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(RuntimeError(head[:100].decode(errors="replace")))
                return
            self.upgraded = True
            self.buffer = rest
            for message in self.messages:
                self.send_binary(message)
        buffer = self.buffer
        offset = 0
        while len(buffer) - offset >= 2:
            length = buffer[offset + 1] & 0x7F
            start = offset + 2
            if length == 126:
                if len(buffer) - offset < 4:
                    break
                length = int.from_bytes(buffer[start:start + 2], "big")
                start += 2
            elif length == 127:
                if len(buffer) - offset < 10:
                    break
                length = int.from_bytes(buffer[start:start + 8], "big")
                start += 8
            if len(buffer) < start + length:
                break
            payload = buffer[start:start + length]
            offset = start + length
            self.received += 1
            if payload[:2] == b"\x99\x01":
                self.arrivals.append((msgpack.unpackb(payload)[2], now))
            elif self.received == 2 and not self.ready.done():
                self.ready.set_result(None)
        self.buffer = buffer[offset:]


def run_clients(work: Path, index: int, count: int, project: str, token: str, deflate: bool, idle: bool) -> None:
    import websockets

    raise_fd_limit()
    url = (work / "url").read_text().replace("http://", "ws://") + "/api/ws"
    arrivals: list[tuple[int, float]] = []
    connections: list[Any] = []

    async def open_one(semaphore: asyncio.Semaphore) -> None:
        async with semaphore:
            ws = await websockets.connect(url, compression="deflate" if deflate else None, open_timeout=60, ping_interval=None)
            await ws.send(msgpack.packb({"t": "hello", "id": 1, "versions": [1], "name": f"bench-{index}", "tokens": [token]}))
            await ws.send(msgpack.packb({"t": "subscribe", "id": 2, "project": project}))
            # welcome, ack, then the snapshot (ViralSplit) or nothing more (baseline).
            await ws.recv()
            await ws.recv()
            connections.append(ws)

    async def reader(ws: Any, deadline: float) -> None:
        try:
            async with asyncio.timeout(max(0.01, deadline - time.monotonic())):
                async for data in ws:
                    if data[:2] == b"\x99\x01":
                        arrivals.append((msgpack.unpackb(data)[2], time.monotonic()))
        except (TimeoutError, websockets.ConnectionClosed):
            return

    async def open_light(semaphore: asyncio.Semaphore) -> None:
        async with semaphore:
            host, port = url.removeprefix("ws://").split("/")[0].split(":")
            hello = msgpack.packb({"t": "hello", "id": 1, "versions": [1], "name": f"bench-{index}", "tokens": [token]})
            subscribe = msgpack.packb({"t": "subscribe", "id": 2, "project": project})
            ready = asyncio.get_running_loop().create_future()
            _, protocol_ = await asyncio.get_running_loop().create_connection(
                lambda: LightClient(host, [hello, subscribe], arrivals, ready), host, int(port)
            )
            await asyncio.wait_for(ready, 60)
            connections.append(protocol_)

    async def main() -> None:
        semaphore = asyncio.Semaphore(CONNECT_CONCURRENCY)
        opener = open_one if deflate else open_light
        await asyncio.gather(*(opener(semaphore) for _ in range(count)))
        (work / f"ready-{index}").write_text(str(len(connections)))
        go = await wait_for_go(work)
        if idle:
            while not (work / "done").exists():
                await asyncio.sleep(0.1)
        elif deflate:
            deadline = time.monotonic() + go["seconds"] + 3.0
            await asyncio.gather(*(reader(ws, deadline) for ws in connections))
        else:
            # LightClient records arrivals from its data_received callback.
            await asyncio.sleep(go["seconds"] + 3.0)
        (work / f"arrivals-{index}.json").write_text(json.dumps(arrivals))
        if deflate:
            await asyncio.gather(*(ws.close() for ws in connections), return_exceptions=True)
        else:
            for client in connections:
                client.transport.close()

    asyncio.run(main())


# Orchestration -------------------------------------------------------------------------


def create_project(url: str) -> tuple[str, str]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", "/api/projects", body=json.dumps({"title": "bench", "platforms": ["tiktok"]}), headers={"Content-Type": "application/json"})
    body = json.loads(conn.getresponse().read())
    return body["id"], body["viewer_token"]


def wait_file(path: Path, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args[2:4]} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name} did not appear within {timeout} s")
        time.sleep(0.05)


def run_one(kind: str, clients: int, processes: int, seconds: float, deflate: bool, idle: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"ws-bench-{kind}-") as tmp:
        work = Path(tmp)
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, "--work", str(work)] + (["--deflate"] if deflate else []),
            start_new_session=True,
        )
        client_procs: list[subprocess.Popen[bytes]] = []
        try:
            wait_file(work / "url", 30, server)
            time.sleep(0.3)
            project, token = create_project((work / "url").read_text()) if kind == "viralsplit" else ("p", "t")
            rss_before = rss_bytes(server.pid)
            share = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
            for index, count in enumerate(share):
                command = [sys.executable, __file__, "--client", str(index), "--count", str(count), "--work", str(work),
                           f"--project={project}", f"--token={token}"]
                command += (["--deflate"] if deflate else []) + (["--idle-client"] if idle else [])
                client_procs.append(subprocess.Popen(command, start_new_session=True))
            for index, proc in enumerate(client_procs):
                wait_file(work / f"ready-{index}", READY_TIMEOUT_S, proc)
            connected = sum(int((work / f"ready-{index}").read_text()) for index in range(processes))
            time.sleep(1.0)
            rss_after = rss_bytes(server.pid)
            (work / "go.json").write_text(json.dumps({"project": project, "seconds": 0.0 if idle else seconds}))
            if idle:
                (work / "done").write_text("")
            else:
                wait_file(work / "publish.json", seconds + 30, server)
            for proc in client_procs:
                proc.wait(60)
            result: dict[str, Any] = {"kind": kind, "connected": connected, "rss_per_conn": (rss_after - rss_before) / max(connected, 1)}
            if not idle:
                published = json.loads((work / "publish.json").read_text())
                sent = {int(seq): t for seq, t in published["sent"].items()}
                latencies = []
                for index in range(processes):
                    for seq, arrived in json.loads((work / f"arrivals-{index}.json").read_text()):
                        if seq in sent:
                            latencies.append(arrived - sent[seq])
                latencies.sort()
                result.update(
                    frames=len(sent),
                    delivered=len(latencies),
                    expected=len(sent) * connected,
                    p50_ms=1000 * statistics.median(latencies),
                    p99_ms=1000 * latencies[int(0.99 * (len(latencies) - 1))],
                    max_ms=1000 * latencies[-1],
                    cpu_s=published["cpu_s"],
                    cpu_us_per_frame=1e6 * published["cpu_s"] / max(len(latencies), 1),
                )
            return result
        finally:
            for proc in client_procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(10)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()


def print_result(result: dict[str, Any]) -> None:
    line = f"{result['kind']:<11} clients {result['connected']:>6}  rss/conn {result['rss_per_conn'] / 1024:7.1f} KiB"
    if "p50_ms" in result:
        line += (f"  frames {result['frames']}  delivered {result['delivered']}/{result['expected']}"
                 f"  p50 {result['p50_ms']:6.1f} ms  p99 {result['p99_ms']:6.1f} ms  max {result['max_ms']:6.1f} ms"
                 f"  cpu {result['cpu_s']:5.2f} s  {result['cpu_us_per_frame']:5.1f} us/frame")
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1000, help="subscribers (default 1000)")
    parser.add_argument("--processes", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="publishing time in seconds (default 10)")
    parser.add_argument("--idle", type=int, default=0, metavar="N", help="only measure memory of N idle subscribers")
    parser.add_argument("--deflate", action="store_true", help="clients offer permessage-deflate")
    parser.add_argument("--only", choices=("viralsplit", "baseline"), help="run one server only")
    # Internal: the server and client subprocesses.
    parser.add_argument("--serve", choices=("viralsplit", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--project", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--idle-client", dest="idle_client", action="store_true", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    if args.serve:
        raise_fd_limit()
        if args.serve == "viralsplit":
            run_viralsplit_server(args.work)
        else:
            run_baseline_server(args.work, args.deflate)
        return
    if args.client is not None:
        run_clients(args.work, args.client, args.count, args.project, args.token, args.deflate, args.idle_client)
        return

    raise_fd_limit()
    kinds = [args.only] if args.only else ["viralsplit", "baseline"]
    clients = args.idle or args.clients
    processes = max(args.processes, (clients + 2499) // 2500)
    print(f"{os.cpu_count()} CPUs; {clients} clients in {processes} processes; "
          f"{'idle' if args.idle else f'{args.seconds:g} s of 2 jobs x 4 frames/s'}; deflate {'offered' if args.deflate else 'off'}", flush=True)
    results = {}
    for kind in kinds:
        results[kind] = run_one(kind, clients, processes, args.seconds, args.deflate, bool(args.idle))
        print_result(results[kind])
    if len(results) == 2 and not args.idle:
        ratio = results["viralsplit"]["cpu_us_per_frame"] / results["baseline"]["cpu_us_per_frame"]
        print(f"CPU per delivered frame, viralsplit / websockets.broadcast: {ratio:.2f}")


if __name__ == "__main__":
    main()
