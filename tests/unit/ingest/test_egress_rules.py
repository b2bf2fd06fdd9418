"""The egress guard's address rules, URL parsing and redaction, without any network traffic."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from viralsplit.egress import (
    EgressGuard,
    HostNotFoundError,
    check_url,
    classify_address,
    parse_ip_literal,
    parse_target,
    redact_url,
)
from viralsplit.errors import UrlRejectedError


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0177.1", "127.0.0.1"),
        ("10.0x10.1", "10.16.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("fe80::1%eth0", "fe80::1"),
    ],
)
def test_ip_literal_spellings(host: str, expected: str) -> None:
    assert parse_ip_literal(host) == ipaddress.ip_address(expected)


@pytest.mark.parametrize("host", ["example.com", "1.2.3.4.5", "256.0.0.1", "08.0.0.1", "4294967296", "1.2.3.x", ""])
def test_ip_literal_rejects_names(host: str) -> None:
    assert parse_ip_literal(host) is None


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback address"),
        ("127.255.0.7", "loopback address"),
        ("::1", "loopback address"),
        ("10.1.2.3", "private address"),
        ("172.16.0.1", "private address"),
        ("192.168.1.1", "private address"),
        ("fd12:3456::1", "private address"),
        ("169.254.10.10", "link-local address"),
        ("fe80::1", "link-local address"),
        ("224.0.0.1", "multicast address"),
        ("239.255.255.250", "multicast address"),
        ("ff02::1", "multicast address"),
        ("0.0.0.0", "unspecified address"),
        ("::", "unspecified address"),
        ("169.254.169.254", "cloud metadata address"),
        ("169.254.170.2", "cloud metadata address"),
        ("fd00:ec2::254", "cloud metadata address"),
        ("100.100.100.200", "cloud metadata address"),
        ("100.64.0.1", "non-public address"),
        ("240.0.0.1", "private address"),
        ("255.255.255.255", "private address"),
        ("192.0.2.10", "private address"),
        ("2001:db8::1", "private address"),
        ("fec0::1", "site-local address"),
        ("::ffff:127.0.0.1", "loopback address inside an IPv6 address"),
        ("::ffff:169.254.169.254", "cloud metadata address inside an IPv6 address"),
        ("::ffff:10.0.0.1", "private address inside an IPv6 address"),
        ("2002:7f00:1::", "loopback address inside an IPv6 address"),
        ("64:ff9b::a00:1", "private address inside an IPv6 address"),
        ("::127.0.0.1", "loopback address inside an IPv6 address"),
    ],
)
def test_classify_non_public(address: str, reason: str) -> None:
    assert classify_address(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_classify_public(address: str) -> None:
    assert classify_address(ipaddress.ip_address(address)) is None


def test_guard_empty_allowlist_rejects_loopback() -> None:
    guard = EgressGuard()
    assert guard.check_address(ipaddress.ip_address("127.0.0.1"), 8080) == "loopback address"
    assert guard.check_address(ipaddress.ip_address("93.184.215.14"), 443) is None


def test_guard_allowlist_address_and_port() -> None:
    guard = EgressGuard(["127.0.0.1:8080"])
    assert guard.check_address(ipaddress.ip_address("127.0.0.1"), 8080) is None
    assert guard.check_address(ipaddress.ip_address("127.0.0.1"), 8081) == "loopback address"
    assert guard.check_address(ipaddress.ip_address("127.0.0.2"), 8080) == "loopback address"
    assert guard.check_address(ipaddress.ip_address("::1"), 8080) == "loopback address"


def test_guard_allowlist_cidr_any_port() -> None:
    guard = EgressGuard(["10.0.0.0/8", "[fd00::]/8"])
    assert guard.check_address(ipaddress.ip_address("10.20.30.40"), 80) is None
    assert guard.check_address(ipaddress.ip_address("10.20.30.40"), 9999) is None
    assert guard.check_address(ipaddress.ip_address("fd12::1"), 443) is None
    assert guard.check_address(ipaddress.ip_address("192.168.0.1"), 80) == "private address"


def test_guard_allowlist_covers_mapped_ipv6() -> None:
    guard = EgressGuard(["127.0.0.1:8080"])
    assert guard.check_address(ipaddress.ip_address("::ffff:127.0.0.1"), 8080) is None


def test_guard_metadata_never_allowlisted() -> None:
    guard = EgressGuard(["169.254.0.0/16", "0.0.0.0/0"])
    assert guard.check_address(ipaddress.ip_address("169.254.169.254"), 80) == "cloud metadata address"
    assert guard.check_address(ipaddress.ip_address("::ffff:169.254.169.254"), 80) == "cloud metadata address"
    assert guard.check_address(ipaddress.ip_address("169.254.1.1"), 80) is None


def test_guard_rejects_invalid_allowlist_entry() -> None:
    with pytest.raises(ValueError, match="allowlist"):
        EgressGuard(["not-an-address"])


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/a.mp4", "file:///etc/passwd", "gopher://example.com/", "javascript:alert(1)", "example.com/video", "data:text/plain,hi"],
)
def test_parse_target_rejects_scheme(url: str) -> None:
    with pytest.raises(UrlRejectedError, match="unsupported URL scheme"):
        parse_target(url)


def test_parse_target_default_ports() -> None:
    assert parse_target("http://example.com/v").port == 80
    assert parse_target("HTTPS://Example.com/v").port == 443
    assert parse_target("https://example.com:8443/v").port == 8443


@pytest.mark.parametrize("url", ["http:///path", "http://example.com:99999/", "http://[::1/"])
def test_parse_target_rejects_invalid(url: str) -> None:
    with pytest.raises(UrlRejectedError, match="invalid URL"):
        parse_target(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8080/video.mp4", "loopback"),
        ("http://2130706433:8080/", "loopback"),
        ("http://0177.0.0.1/", "loopback"),
        ("http://0x7f000001/", "loopback"),
        ("http://[::1]:8080/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[fd00:ec2::254]/", "cloud metadata"),
        ("http://10.0.0.5/", "private"),
        ("http://user:secret@192.168.0.1/", "private"),
        ("http://0.0.0.0:8000/", "unspecified"),
        ("http://localhost:8000/", "loopback"),
    ],
)
async def test_check_url_rejects_before_connecting(url: str, reason: str) -> None:
    # IP literals never reach a resolver; "localhost" resolves from /etc/hosts.
    with pytest.raises(UrlRejectedError, match=reason) as caught:
        await check_url(url, EgressGuard())
    assert "secret" not in str(caught.value)
    assert "VIRALSPLIT_URL_ALLOWLIST" in str(caught.value)


async def test_check_url_admits_allowlisted() -> None:
    target = await check_url("http://127.0.0.1:8080/v.mp4", EgressGuard(["127.0.0.1:8080"]))
    assert (target.host, target.port) == ("127.0.0.1", 8080)


def test_redact_url_drops_credentials_and_secrets() -> None:
    shown = redact_url("https://alice:hunter2@cdn.example.com:8443/v/1.mp4?token=abc123&X-Amz-Signature=ff#t=3")
    assert shown == "https://cdn.example.com:8443/v/1.mp4?token=REDACTED&X-Amz-Signature=REDACTED"


def test_redact_url_keeps_video_id() -> None:
    assert redact_url("https://www.youtube.com/watch?v=dQw4w9WgXcQ&si=tracking") == (
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ&si=REDACTED"
    )


async def test_check_url_unresolvable_host(monkeypatch: pytest.MonkeyPatch) -> None:
    # The lookup fails in place of the resolver, so no DNS query leaves the machine.
    async def failing_getaddrinfo(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", failing_getaddrinfo)

    with pytest.raises(HostNotFoundError) as caught:
        await check_url("https://no-such-host.example/watch?v=1&key=s3cret", EgressGuard())

    message = str(caught.value)
    assert not isinstance(caught.value, UrlRejectedError)
    assert "could not resolve host 'no-such-host.example'" in message
    assert "key=REDACTED" in message
    assert "s3cret" not in message
