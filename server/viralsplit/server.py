"""`viralsplit serve`: bind the listening socket, build the app and run it on Hypercorn."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from pathlib import Path

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

from viralsplit.app import create_app, get_services
from viralsplit.config import Config
from viralsplit.errors import ToolMissingError
from viralsplit.media.probe import check_tools

log = logging.getLogger(__name__)

# Seconds Hypercorn waits for open requests to finish after SIGTERM or SIGINT.
GRACEFUL_TIMEOUT_S = 5.0


def run_serve(args: argparse.Namespace) -> int:
    """Run the server until SIGTERM or SIGINT; return the process exit code."""
    try:
        config = Config.load(
            {
                "host": args.host,
                "port": args.port,
                "data_dir": Path(args.data_dir) if args.data_dir else None,
                "max_jobs": args.max_jobs,
            }
        )
    except ValueError as exc:
        print(f"viralsplit serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    try:
        asyncio.run(serve(config))
    except ToolMissingError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:
        log.error("server failed: %s", exc)
        return 1
    return 0


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen on host:port (port 0 picks a free one) before the app starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def format_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def serve(config: Config) -> None:
    """Serve the app on the configured address; the real bound address is logged once ready.

    The socket is bound here rather than by Hypercorn so that the address is known before
    the app's startup hooks run; Hypercorn takes it over through an fd:// bind.
    """
    # Without ffmpeg, ffprobe, libx264 and aac every job would fail, so the server does not start.
    await check_tools()
    sock = bind_socket(config.host, config.port)
    app = create_app(config)
    get_services(app).listen_url = format_url(sock)
    # Hypercorn wraps the descriptor in its own socket object and closes it on shutdown.
    fd = sock.detach()

    hypercorn_config = HypercornConfig()
    hypercorn_config.bind = [f"fd://{fd}"]
    # The access log would record `?token=` query strings of media URLs, so it stays off.
    hypercorn_config.accesslog = None
    hypercorn_config.errorlog = logging.getLogger("hypercorn.error")
    hypercorn_config.graceful_timeout = GRACEFUL_TIMEOUT_S
    # NOTE: Hypercorn 0.18 buffers a WebSocket message up to websocket_max_message_size (16 MiB
    # by default) before the realtime layer's 64 KiB check closes with 1009. Lowering it is no
    # fix: past that size Hypercorn stops reading without sending a close frame (seen with a
    # 1 MB message and the limit at 128 KiB), and the peer waits for the heartbeat timeout.
    services = get_services(app)
    await hypercorn_serve(
        app, hypercorn_config, mode="asgi", shutdown_trigger=lambda: wait_for_stop_signal(services)
    )


async def wait_for_stop_signal(services: object) -> None:
    """Return on SIGTERM or SIGINT, after asking every WebSocket to close.

    Without this the sockets would stay open through Hypercorn's whole graceful timeout and
    then be cut without the protocol's "server shutting down" close code.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("stopping: closing connections and requeueing running jobs")
    shutdown = getattr(getattr(services, "events", None), "shutdown", None)
    if callable(shutdown):
        shutdown()
