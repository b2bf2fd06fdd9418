"""A local HTTP proxy that applies the egress guard to every connection yt-dlp makes.

yt-dlp follows redirects, reads pages and manifests, and fetches the media URLs it finds
there. Checking only the URL the user typed would let any of those reach a private address,
so yt-dlp runs with `--proxy` pointing here. The proxy accepts CONNECT (for https) and
absolute-form requests (for plain http), resolves each destination itself, checks every
address with `EgressGuard`, and connects to the address it checked. Because the check and
the connection use the same resolved address, a DNS answer that changes between the two
(DNS rebinding) cannot redirect the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import urllib.parse

from viralsplit.egress import EgressGuard, HostNotFoundError, IPAddress, format_destination
from viralsplit.errors import UrlRejectedError

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 15.0
RELAY_CHUNK_BYTES = 64 * 1024
# Request headers meant for the proxy itself, or for one hop only (RFC 9110, section 7.6.1).
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate", "te", "trailer", "upgrade"}
)


@dataclasses.dataclass(frozen=True)
class Rejection:
    """A connection the proxy refused, with the reason sent back to the client."""

    host: str
    port: int
    reason: str


class EgressProxy:
    """Filtering forward proxy on 127.0.0.1 with a port chosen by the OS.

    Use as `async with EgressProxy(guard) as proxy:` and pass `proxy.url` to yt-dlp's
    `--proxy`. `rejections` lists every refused destination, so a caller can explain a
    failure that yt-dlp reports only as an HTTP error or a failed tunnel.
    """

    def __init__(self, guard: EgressGuard) -> None:
        self.guard = guard
        self.rejections: list[Rejection] = []
        # Destinations admitted and connected, as "host:port" strings, in order.
        self.connections: list[str] = []
        # Failed lookups and connections, as messages; these are not rejections.
        self.failures: list[str] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("proxy not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, host="127.0.0.1", port=0, limit=MAX_HEAD_BYTES)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> EgressProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        except Exception:
            # The connection's task is the root here, so nothing above would report it.
            log.exception("egress proxy connection failed")
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = request_line.split(" ")
        except ValueError:
            await _send_error(writer, 400, "Bad Request", "malformed request line")
            return

        if method.upper() == "CONNECT":
            host, port = _split_authority(target, default_port=443)
        else:
            parts = urllib.parse.urlsplit(target)
            if parts.scheme.lower() != "http" or not parts.hostname:
                await _send_error(writer, 400, "Bad Request", "expected CONNECT or an absolute http:// URL")
                return
            host, port = parts.hostname, parts.port or 80
        if not host or port is None:
            await _send_error(writer, 400, "Bad Request", f"invalid destination {target!r}")
            return

        upstream = await self._open_checked(host, port, writer)
        if upstream is None:
            return
        upstream_reader, upstream_writer = upstream
        try:
            if method.upper() == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:
                upstream_writer.write(_origin_form_head(method, target, version, header_lines))
                await upstream_writer.drain()
            await _relay(reader, writer, upstream_reader, upstream_writer)
        finally:
            upstream_writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await upstream_writer.wait_closed()

    async def _open_checked(
        self, host: str, port: int, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            addresses = await self.guard.resolve(host, port)
        except HostNotFoundError as exc:
            self.failures.append(str(exc))
            await _send_error(writer, 502, "Bad Gateway", str(exc))
            return None
        except UrlRejectedError as exc:
            reason = str(exc)
            self.rejections.append(Rejection(host=host, port=port, reason=reason))
            log.warning("egress proxy rejected %s: %s", format_destination(host, port), reason)
            await _send_error(writer, 403, "Forbidden", f"egress guard rejected {reason}")
            return None

        last_error: OSError | None = None
        for address in addresses:
            try:
                opened = await asyncio.wait_for(
                    asyncio.open_connection(str(address), port, limit=RELAY_CHUNK_BYTES), CONNECT_TIMEOUT_S
                )
            except (OSError, TimeoutError) as exc:
                last_error = exc if isinstance(exc, OSError) else OSError(f"timed out after {CONNECT_TIMEOUT_S:g} s")
                continue
            self.connections.append(_connection_label(host, port, address))
            return opened
        message = f"could not connect to {format_destination(host, port)}: {last_error}"
        self.failures.append(message)
        await _send_error(writer, 502, "Bad Gateway", message)
        return None


def _connection_label(host: str, port: int, address: IPAddress) -> str:
    return format_destination(host, port, address)


def _split_authority(authority: str, default_port: int) -> tuple[str, int | None]:
    """Split "host:port" or "[v6]:port" as CONNECT sends it."""
    try:
        parts = urllib.parse.urlsplit(f"//{authority}")
        return parts.hostname or "", parts.port or default_port
    except ValueError:
        return "", None


def _origin_form_head(method: str, target: str, version: str, header_lines: list[str]) -> bytes:
    """Rewrite an absolute-form request head for the origin server, one request per connection."""
    parts = urllib.parse.urlsplit(target)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    lines = [f"{method} {path} {version}"]
    has_host = False
    for line in header_lines:
        if not line:
            continue
        name = line.split(":", 1)[0].strip().lower()
        if name in _HOP_BY_HOP:
            continue
        has_host = has_host or name == "host"
        lines.append(line)
    if not has_host:
        lines.append(f"Host: {parts.netloc.rsplit('@', 1)[-1]}")
    # The proxy relays bytes until the origin closes, so it requests exactly one response.
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _relay(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
) -> None:
    """Copy bytes both ways until the origin closes; the client's EOF only half-closes."""

    async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while chunk := await source.read(RELAY_CHUNK_BYTES):
            sink.write(chunk)
            await sink.drain()
        if sink.can_write_eof():
            with contextlib.suppress(OSError):
                sink.write_eof()

    to_upstream = asyncio.create_task(pump(client_reader, upstream_writer))
    try:
        await pump(upstream_reader, client_writer)
    finally:
        to_upstream.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
            await to_upstream


async def _send_error(writer: asyncio.StreamWriter, status: int, phrase: str, message: str) -> None:
    body = (message + "\n").encode("utf-8", "replace")
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + body)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
