"""The egress guard: which network destinations URL ingest may connect to.

A server that fetches user-supplied URLs can be pointed at its own private network (SSRF).
The guard admits only public unicast addresses, plus the private destinations an operator
lists in `Config.url_allowlist`. It is applied twice: once to the URL the user gave, before
yt-dlp starts, and then to every connection yt-dlp makes, by the filtering proxy in
viralsplit.egress_proxy, so redirects and media URLs found inside pages are checked too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Iterable

from viralsplit.config import parse_allowlist_entry
from viralsplit.errors import DownloadError, UrlRejectedError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = ("http", "https")

# Instance metadata services of cloud providers. They are rejected even when an allowlist
# entry covers them, because they hand out credentials to anything that can reach them.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS VPC DNS resolver
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (legacy)
    )
)

# IPv6 prefixes that carry an IPv4 address in their low 32 bits: NAT64 (RFC 6052) and the
# IPv4-compatible form (::a.b.c.d, deprecated but still parsed by some stacks).
_NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")

# One to four parts, each decimal, octal (leading 0) or hexadecimal (0x), as inet_aton(3)
# accepts them: "2130706433", "0177.0.0.1", "0x7f.1" and "127.1" all mean 127.0.0.1.
_INET_ATON_PART = r"(?:0[xX][0-9a-fA-F]*|[0-9]+)"
_INET_ATON_RE = re.compile(rf"{_INET_ATON_PART}(?:\.{_INET_ATON_PART}){{0,3}}\.?")


class HostNotFoundError(DownloadError):
    """A host name did not resolve: a failed lookup, not a rejection by the guard."""


@dataclasses.dataclass(frozen=True)
class Target:
    """A URL's scheme, host as written, and port (the scheme's default when absent)."""

    scheme: str
    host: str
    port: int


def parse_ip_literal(host: str) -> IPAddress | None:
    """Return the address a host name spells literally, or None for a name to resolve.

    Accepts IPv6 with or without brackets (a zone index is dropped) and every IPv4 spelling
    that inet_aton(3) accepts, because resolvers and HTTP clients pass those through.
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            return None
    if not _INET_ATON_RE.fullmatch(text):
        return None
    return _parse_inet_aton(text.rstrip("."))


def _parse_inet_aton(text: str) -> ipaddress.IPv4Address | None:
    values = []
    for part in text.split("."):
        if part.lower().startswith("0x"):
            values.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if not set(part) <= set("01234567"):
                return None
            values.append(int(part, 8))
        else:
            values.append(int(part))
    # The last part fills all the bytes the earlier parts leave: a.b.c.d, a.b.16bits,
    # a.24bits or one 32-bit number.
    *leading, last = values
    if any(value > 255 for value in leading) or last >= 256 ** (4 - len(leading)):
        return None
    number = last
    for index, value in enumerate(leading):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    for prefix in _NAT64_PREFIXES:
        if address in prefix:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def classify_address(address: IPAddress) -> str | None:
    """Return why an address is not public ("loopback address", ...), or None if it is."""
    inner = embedded_ipv4(address)
    if inner is not None:
        reason = classify_address(inner)
        return f"{reason} inside an IPv6 address" if reason else None
    if address in METADATA_ADDRESSES:
        return "cloud metadata address"
    checks = (
        (address.is_unspecified, "unspecified address"),
        (address.is_loopback, "loopback address"),
        (address.is_link_local, "link-local address"),
        (address.is_multicast, "multicast address"),
        (isinstance(address, ipaddress.IPv6Address) and address.is_site_local, "site-local address"),
        (address.is_private, "private address"),
        (address.is_reserved, "reserved address"),
        # is_global also excludes shared (100.64.0.0/10), documentation and benchmark ranges.
        (not address.is_global, "non-public address"),
    )
    for failed, reason in checks:
        if failed:
            return reason
    return None


class EgressGuard:
    """The address rules plus the operator's allowlist of private destinations."""

    def __init__(self, allowlist: Iterable[str] = ()) -> None:
        self.allowlist: tuple[tuple[IPNetwork, int | None], ...] = tuple(
            parse_allowlist_entry(entry) for entry in allowlist
        )

    def check_address(self, address: IPAddress, port: int) -> str | None:
        """Return why a connection to address:port is rejected, or None when it is admitted."""
        inner = embedded_ipv4(address)
        if address in METADATA_ADDRESSES or (inner is not None and inner in METADATA_ADDRESSES):
            return "cloud metadata address"
        reason = classify_address(address)
        if reason is None:
            return None
        if self._allowlisted(address, port) or (inner is not None and self._allowlisted(inner, port)):
            return None
        return reason

    def _allowlisted(self, address: IPAddress, port: int) -> bool:
        for network, allowed_port in self.allowlist:
            if address.version == network.version and address in network:
                if allowed_port is None or allowed_port == port:
                    return True
        return False

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Resolve host and check every address; return them in resolver order.

        Raises HostNotFoundError when the name does not resolve, and UrlRejectedError when any
        of its addresses is rejected, so a name that mixes public and private addresses is
        rejected whole.
        """
        addresses = await resolve_host(host, port)
        for address in addresses:
            reason = self.check_address(address, port)
            if reason is not None:
                raise UrlRejectedError(f"{format_destination(host, port, address)} is a {reason}")
        return addresses


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Return the addresses of host, without a DNS query when it is an IP literal."""
    literal = parse_ip_literal(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostNotFoundError(f"could not resolve host {host!r}: {exc}") from None
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise HostNotFoundError(f"could not resolve host {host!r}: no IPv4 or IPv6 address")
    return addresses


def format_destination(host: str, port: int, address: IPAddress | None = None) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    resolved = f" ({address})" if address is not None and str(address) != host.strip("[]") else ""
    return f"{shown}:{port}{resolved}"


def parse_target(url: str) -> Target:
    """Split a user-supplied URL into scheme, host and port; raise UrlRejectedError if unusable."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UrlRejectedError(f"{redact_url(url)}: invalid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = f"{scheme}:" if scheme else "no scheme"
        raise UrlRejectedError(f"{redact_url(url)}: unsupported URL scheme ({shown}): use an http:// or https:// link")
    host = parts.hostname
    if not host:
        raise UrlRejectedError(f"{redact_url(url)}: invalid URL: no host name")
    if port is None:
        port = 443 if scheme == "https" else 80
    return Target(scheme=scheme, host=host, port=port)


async def check_url(url: str, guard: EgressGuard) -> Target:
    """Check a user-supplied URL before anything connects to it.

    Raises UrlRejectedError naming the URL (redacted) and the reason, or HostNotFoundError
    when the host name does not resolve.
    """
    target = parse_target(url)
    try:
        await guard.resolve(target.host, target.port)
    except HostNotFoundError as exc:
        raise HostNotFoundError(f"{redact_url(url)}: {exc}: check the address, or try again later") from None
    except UrlRejectedError as exc:
        raise UrlRejectedError(
            f"{redact_url(url)}: rejected: {exc}. ViralSplit only downloads from public "
            "addresses; an operator can admit a private one with VIRALSPLIT_URL_ALLOWLIST"
        ) from None
    return target


# Query parameters that identify a video rather than authorize access; their values stay
# visible in messages. Every other value is replaced, since signed URLs carry secrets there.
_PUBLIC_QUERY_KEYS = frozenset({"v", "list", "index", "t", "start", "p", "page", "lang"})


def redact_url(url: str) -> str:
    """Return url without user name, password, fragment or non-identifying query values."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    shown = [(key, value if key.lower() in _PUBLIC_QUERY_KEYS else "REDACTED") for key, value in query]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, urllib.parse.urlencode(shown), ""))
