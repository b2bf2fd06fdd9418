"""Settings from command-line flags and VIRALSPLIT_* environment variables.

Each field of `Config` can be set by the environment variable named VIRALSPLIT_ plus the
field name in upper case (VIRALSPLIT_MAX_JOBS=2). Flags given on the command line win over
the environment, and the environment wins over the defaults below.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENV_PREFIX = "VIRALSPLIT_"


@dataclasses.dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    # Renders that run at once; see docs/benchmarks.md for how the default was chosen.
    max_jobs: int = 2
    # Upload size limit in bytes (10 GiB).
    max_upload_bytes: int = 10 * 1024**3
    # libx264 speed preset for every encode (ffmpeg -preset); tests use ultrafast.
    x264_preset: str = "veryfast"
    # Origins allowed to open the WebSocket, comma-separated; empty means the server's own.
    allowed_origins: tuple[str, ...] = ()
    # URL ingest: tallest video height fetched, and limits checked before and during download.
    download_max_height: int = 1080
    download_max_bytes: int = 4 * 1024**3
    download_max_duration_s: float = 4 * 3600.0
    # Seconds yt-dlp waits on a silent connection before it gives up (yt-dlp --socket-timeout).
    download_socket_timeout_s: float = 30.0
    # Private destinations the egress guard admits, as addresses or CIDR ranges with an
    # optional port ("127.0.0.1:8080", "10.0.0.0/8"); empty by default.
    url_allowlist: tuple[str, ...] = ()
    # Seconds between WebSocket heartbeats sent by the server.
    heartbeat_interval_s: float = 15.0
    # Minimum seconds between presence frames of one project; each goes to every subscriber.
    presence_interval_s: float = 0.5
    log_level: str = "INFO"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "viralsplit.sqlite3"

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Config:
        """Build a Config from the environment, then apply non-None `overrides` (flags).

        Raises ValueError naming the variable when an environment value cannot be parsed.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            name = ENV_PREFIX + field.name.upper()
            if name in environ:
                values[field.name] = _parse(field, environ[name], name)
        for key, value in (overrides or {}).items():
            if value is not None:
                values[key] = value
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ValueError on settings that cannot work."""
        if not 0 <= self.port <= 65535:
            raise ValueError(f"invalid port {self.port}: use 0 to 65535")
        if self.max_jobs < 1:
            raise ValueError(f"invalid max_jobs {self.max_jobs}: use 1 or more")
        if self.max_upload_bytes < 1:
            raise ValueError(f"invalid max_upload_bytes {self.max_upload_bytes}: use 1 or more")
        for entry in self.url_allowlist:
            parse_allowlist_entry(entry)


def parse_allowlist_entry(entry: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int | None]:
    """Parse "ADDRESS[/PREFIX][:PORT]" (IPv6 as "[ADDRESS]/PREFIX:PORT") into a network and port."""
    text = entry.strip()
    port: int | None = None
    if text.startswith("["):
        address, _, rest = text[1:].partition("]")
        if rest.startswith("/"):
            prefix, _, port_text = rest[1:].partition(":")
            address = f"{address}/{prefix}"
        else:
            port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        address, port_text = text.split(":")
    else:
        address, port_text = text, ""
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"invalid port in URL allowlist entry {entry!r}")
        port = int(port_text)
    try:
        network = ipaddress.ip_network(address, strict=False)
    except ValueError as exc:
        raise ValueError(f"invalid URL allowlist entry {entry!r}: {exc}") from None
    return network, port


def _parse(field: dataclasses.Field[Any], raw: str, name: str) -> Any:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
        if kind.startswith("tuple"):
            return tuple(item.strip() for item in raw.split(",") if item.strip())
        return raw
    except ValueError:
        raise ValueError(f"invalid value for {name}: {raw!r}") from None
