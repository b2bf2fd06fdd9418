"""The egress guard around download(): rejected URLs, redirects and media URLs in pages.

Every destination here is a server the test started on 127.0.0.1. The cloud metadata
address is only ever checked by the guard; no test sends traffic to it.
"""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest
from mediaserver import MediaServer
from streams import make_aes_hls

from viralsplit import egress
from viralsplit.config import Config
from viralsplit.egress import EgressGuard
from viralsplit.egress_proxy import EgressProxy
from viralsplit.errors import UrlRejectedError
from viralsplit.media.ytdlp import download


@pytest.mark.parametrize(
    "url_template",
    [
        "http://127.0.0.1:{port}/clip.mp4",
        "http://localhost:{port}",
        "http://[::1]:{port}",
        "http://2130706433:{port}/",
        "http://0177.0.0.1:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        "ftp://127.0.0.1:{port}/clip.mp4",
    ],
)
async def test_default_allowlist_rejects_before_connecting(url_template: str, media_server: MediaServer, clip: Path, tmp_path: Path) -> None:
    media_server.file("/clip.mp4", clip)
    pids: list[int] = []

    with pytest.raises(UrlRejectedError) as caught:
        await download(url_template.format(port=media_server.port), tmp_path, config=Config(),
                       on_progress=lambda _: None, on_process=pids.append)

    assert pids == [], "yt-dlp must not start for a rejected URL"
    assert media_server.hits == []
    assert list(tmp_path.iterdir()) == []
    assert "rejected" in str(caught.value) or "unsupported URL scheme" in str(caught.value)


async def test_allowlist_is_per_port(media_server: MediaServer, other_server: MediaServer, clip: Path, tmp_path: Path) -> None:
    other_server.file("/clip.mp4", clip)
    config = Config(url_allowlist=(media_server.allowlist_entry,))

    with pytest.raises(UrlRejectedError, match="loopback address"):
        await download(f"{other_server.origin}/clip.mp4", tmp_path, config=config, on_progress=lambda _: None)

    assert other_server.hits == []


@pytest.mark.parametrize("target_host", ["127.0.0.1", "localhost", "2130706433"])
async def test_redirect_to_other_port_rejected(
    target_host: str, media_server: MediaServer, other_server: MediaServer, clip: Path, tmp_path: Path
) -> None:
    other_server.file("/clip.mp4", clip)
    media_server.redirect("/go", f"http://{target_host}:{other_server.port}/clip.mp4")
    config = Config(url_allowlist=(media_server.allowlist_entry,))

    with pytest.raises(UrlRejectedError) as caught:
        await download(f"{media_server.origin}/go", tmp_path, config=config, on_progress=lambda _: None)

    assert media_server.hits == ["/go"]
    assert other_server.hits == []
    assert f":{other_server.port}" in str(caught.value)
    assert "loopback address" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


async def test_page_media_url_on_other_port_rejected(media_server: MediaServer, other_server: MediaServer, clip: Path, tmp_path: Path) -> None:
    other_server.file("/clip.mp4", clip)
    media_server.html(
        "/page.html",
        f'<html><head><title>Elsewhere</title></head><body><video src="{other_server.origin}/clip.mp4"></video></body></html>',
    )
    config = Config(url_allowlist=(media_server.allowlist_entry,))

    with pytest.raises(UrlRejectedError, match="loopback address"):
        await download(f"{media_server.origin}/page.html", tmp_path, config=config, on_progress=lambda _: None)

    assert media_server.hits == ["/page.html"]
    assert other_server.hits == []


async def proxy_request(proxy: EgressProxy, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]))
    writer.write(request)
    await writer.drain()
    response = await asyncio.wait_for(reader.read(4096), 10)
    writer.close()
    await writer.wait_closed()
    return response


async def test_proxy_connect_checks_destination(media_server: MediaServer, other_server: MediaServer) -> None:
    async with EgressProxy(EgressGuard([media_server.allowlist_entry])) as proxy:
        admitted = await proxy_request(proxy, f"CONNECT 127.0.0.1:{media_server.port} HTTP/1.1\r\n\r\n".encode())
        rejected = await proxy_request(proxy, f"CONNECT 127.0.0.1:{other_server.port} HTTP/1.1\r\n\r\n".encode())

    assert admitted.startswith(b"HTTP/1.1 200 ")
    assert rejected.startswith(b"HTTP/1.1 403 ")
    assert b"loopback address" in rejected
    assert other_server.hits == []
    assert [rejection.port for rejection in proxy.rejections] == [other_server.port]


async def test_proxy_forwards_plain_http(media_server: MediaServer, other_server: MediaServer) -> None:
    media_server.bytes("/hello.txt", b"hello\n", "text/plain")
    async with EgressProxy(EgressGuard([media_server.allowlist_entry])) as proxy:
        admitted = await proxy_request(
            proxy, f"GET {media_server.origin}/hello.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nProxy-Connection: keep-alive\r\n\r\n".encode()
        )
        rejected = await proxy_request(proxy, f"GET http://[::ffff:127.0.0.1]:{other_server.port}/ HTTP/1.1\r\n\r\n".encode())
        malformed = await proxy_request(proxy, b"GET /relative HTTP/1.1\r\n\r\n")

    assert admitted.startswith(b"HTTP/1.1 200 ")
    assert admitted.endswith(b"hello\n")
    assert media_server.hits == ["/hello.txt"]
    assert rejected.startswith(b"HTTP/1.1 403 ")
    assert malformed.startswith(b"HTTP/1.1 400 ")
    assert other_server.hits == []


async def test_hls_segments_on_other_port_rejected(media_server: MediaServer, other_server: MediaServer, clip: Path, tmp_path: Path) -> None:
    # The playlist is on the allowlisted server; its segments point at the other one.
    other_server.file("/seg0.ts", clip, content_type="video/mp2t")
    playlist = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        f"#EXTINF:2.0,\n{other_server.origin}/seg0.ts\n#EXT-X-ENDLIST\n"
    )
    media_server.bytes("/index.m3u8", playlist.encode(), "application/vnd.apple.mpegurl")
    config = Config(url_allowlist=(media_server.allowlist_entry,))

    with pytest.raises(UrlRejectedError, match="loopback address"):
        await download(f"{media_server.origin}/index.m3u8", tmp_path, config=config, on_progress=lambda _: None)

    assert "/index.m3u8" in media_server.hits
    assert other_server.hits == []
    assert list(tmp_path.iterdir()) == []


async def test_encrypted_hls_key_on_other_port_rejected(media_server: MediaServer, other_server: MediaServer, clip: Path, tmp_path: Path) -> None:
    # yt-dlp hands AES-128 HLS to ffmpeg, which must go through the proxy like yt-dlp does.
    make_aes_hls(clip, tmp_path / "aes", f"{other_server.origin}/enc.key")
    media_server.directory("/aes", tmp_path / "aes")
    other_server.file("/enc.key", tmp_path / "aes" / "enc.key", content_type="application/octet-stream")
    config = Config(url_allowlist=(media_server.allowlist_entry,))
    dest = tmp_path / "dest"

    with pytest.raises(UrlRejectedError, match="loopback address"):
        await download(f"{media_server.origin}/aes/index.m3u8", dest, config=config, on_progress=lambda _: None)

    assert other_server.hits == []
    assert list(dest.iterdir()) == []


async def test_proxy_connects_to_checked_address(media_server: MediaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # "media.test" has no DNS entry: the request can only succeed if the proxy connects to the
    # address its own resolution returned and checked, rather than resolving the name again.
    resolved: list[str] = []

    async def fake_resolve(host: str, port: int) -> list[ipaddress.IPv4Address]:
        resolved.append(host)
        return [ipaddress.IPv4Address("127.0.0.1")]

    monkeypatch.setattr(egress, "resolve_host", fake_resolve)
    media_server.bytes("/hello.txt", b"hello\n", "text/plain")
    async with EgressProxy(EgressGuard([media_server.allowlist_entry])) as proxy:
        response = await proxy_request(proxy, f"GET http://media.test:{media_server.port}/hello.txt HTTP/1.1\r\nHost: media.test\r\n\r\n".encode())

    assert response.startswith(b"HTTP/1.1 200 ")
    assert resolved == ["media.test"]
    assert proxy.connections == [f"media.test:{media_server.port} (127.0.0.1)"]


async def test_proxy_rejects_name_with_any_private_address(media_server: MediaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The first address is admitted by the allowlist, the second is not: the name is rejected
    # whole, and the admitted server sees no request. 10.0.0.1 is checked, never contacted.
    async def fake_resolve(host: str, port: int) -> list[ipaddress.IPv4Address]:
        return [ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv4Address("10.0.0.1")]

    monkeypatch.setattr(egress, "resolve_host", fake_resolve)
    media_server.bytes("/hello.txt", b"hello\n", "text/plain")
    async with EgressProxy(EgressGuard([media_server.allowlist_entry])) as proxy:
        response = await proxy_request(proxy, f"GET http://mixed.test:{media_server.port}/hello.txt HTTP/1.1\r\n\r\n".encode())

    assert response.startswith(b"HTTP/1.1 403 ")
    assert b"10.0.0.1" in response
    assert proxy.connections == []
    assert media_server.hits == []
