"""Download a video from a URL with yt-dlp, behind the egress guard and the size limits.

`download` runs yt-dlp twice, each time as `python -m yt_dlp` in its own session:

1. `--dump-single-json` extracts the metadata (formats, duration, sizes) without fetching
   media, so the duration and size limits are checked before any media byte is read.
2. `--load-info-json` downloads the formats chosen in step 1, printing progress lines
   (media/ytdlp_progress.py) and, at the end, the final path (`--print after_move:filepath`).

Both runs go through an `EgressProxy`, so every connection yt-dlp makes is checked by the
guard. The files are written to a private folder inside `dest_dir`, which is deleted on any
failure or cancel, so no `.part` file survives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from viralsplit.config import Config
from viralsplit.egress import EgressGuard, check_url, redact_url
from viralsplit.egress_proxy import EgressProxy
from viralsplit.errors import DownloadError, LimitExceededError, UrlRejectedError
from viralsplit.media.ffmpeg import ProcessResult, run_process
from viralsplit.media.progress import Progress
from viralsplit.media.ytdlp_progress import (
    PROGRESS_TEMPLATE,
    DownloadProgressTracker,
    parse_progress_line,
)

log = logging.getLogger(__name__)

# Seconds between SIGTERM and SIGKILL for yt-dlp's process group. yt-dlp exits at once on
# SIGTERM (Python's default handler), so this only matters for a stuck ffmpeg merge.
STOP_GRACE_S = 1.0
# Protocols yt-dlp may use: plain HTTP(S), HLS and DASH, all of which yt-dlp fetches through
# the proxy. RTMP, RTSP, MMS and other protocols would bypass it, so formats that need them
# are never selected.
PROTOCOL_FILTER = "[protocol~='^(https?|m3u8(_native)?|http_dash_segments(_generator)?)$']"
_MAX_FILESIZE_RE = re.compile(r"File is larger than max-filesize \((\d+) bytes > (\d+) bytes\)")
# Environment variables that could route yt-dlp's ffmpeg around the proxy.
_PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy")


async def download(
    url: str,
    dest_dir: Path,
    *,
    config: Config,
    on_progress: Callable[[Progress], None],
    on_process: Callable[[int], None] | None = None,
) -> Path:
    """Download the video at `url` into `dest_dir` and return the file's path.

    `on_progress` receives `Progress(stage="download", ...)` with bytes done, total (None when
    unknown), speed and ETA. `on_process` receives the pid (== process group id) of each
    yt-dlp run.

    Raises UrlRejectedError when the egress guard rejects the URL or any address yt-dlp tries
    to reach, and LimitExceededError when the video is longer or larger than `config` allows.
    Every other failure raises DownloadError. Messages name the URL without credentials or
    query secrets. Cancelling stops yt-dlp's process group, deletes partial files and
    re-raises CancelledError.
    """
    shown = redact_url(url)
    guard = EgressGuard(config.url_allowlist)
    await check_url(url, guard)

    dest_dir.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix=".yt-dlp-", dir=dest_dir))
    try:
        async with EgressProxy(guard) as proxy:
            run = _Run(url, shown, config, proxy, work_dir, on_process)
            info = await run.extract_info()
            expected = check_limits_before(info, config, shown)
            tracker = DownloadProgressTracker(expected)
            on_progress(
                Progress(stage="download", fraction=None, bytes_done=0, bytes_total=_sum_or_none(expected.values()))
            )
            path = await run.fetch(tracker, on_progress)
        await _check_duration_after(path, config, shown)
        final = await asyncio.to_thread(_move_unique, path, dest_dir)
        log.info("downloaded %s to %s", shown, final)
        return final
    finally:
        await asyncio.shield(asyncio.to_thread(shutil.rmtree, work_dir, True))


class _Run:
    """The state the two yt-dlp runs of one download share."""

    def __init__(
        self,
        url: str,
        shown: str,
        config: Config,
        proxy: EgressProxy,
        work_dir: Path,
        on_process: Callable[[int], None] | None,
    ) -> None:
        self.url = url
        self.shown = shown
        self.config = config
        self.proxy = proxy
        self.work_dir = work_dir
        self.on_process = on_process

    async def extract_info(self) -> dict[str, Any]:
        args = [*base_args(self.config, self.proxy.url), "--dump-single-json", "--", self.url]
        result = await self._run(args)
        if result.returncode != 0:
            raise self._failure(result)
        try:
            info = json.loads(result.stdout)
        except ValueError:
            raise DownloadError(f"{self.shown}: yt-dlp returned unreadable metadata; try again or report a bug") from None
        if not isinstance(info, dict):
            raise DownloadError(f"{self.shown}: yt-dlp returned unreadable metadata; try again or report a bug")
        info = single_video(info, self.shown)
        check_is_video(info, self.shown)
        # A YouTube info JSON can be several MB, so it is written off the event loop.
        await asyncio.to_thread((self.work_dir / "info.json").write_text, json.dumps(info), "utf-8")
        return info

    async def fetch(self, tracker: DownloadProgressTracker, on_progress: Callable[[Progress], None]) -> Path:
        max_bytes = self.config.download_max_bytes
        path_file = self.work_dir / "filepath.txt"

        def on_line(line: str) -> None:
            too_large = _MAX_FILESIZE_RE.search(line)
            if too_large:
                raise LimitExceededError(
                    f"{self.shown}: the video is larger than the download size limit: "
                    f"{_format_bytes(int(too_large[1]))} announced by the server, limit "
                    f"{_format_bytes(max_bytes)} (VIRALSPLIT_DOWNLOAD_MAX_BYTES)"
                )
            sample = parse_progress_line(line)
            if sample is None:
                return
            progress = tracker.update(sample)
            # A file can be bigger than announced, or announce nothing: stop as it crosses.
            if progress.bytes_done is not None and progress.bytes_done > max_bytes:
                raise LimitExceededError(
                    f"{self.shown}: the video is larger than the download size limit: more than "
                    f"{_format_bytes(progress.bytes_done)} received, limit {_format_bytes(max_bytes)} "
                    "(VIRALSPLIT_DOWNLOAD_MAX_BYTES)"
                )
            on_progress(progress)

        # --print would imply --quiet, which hides the max-filesize message and progress, so
        # the final path goes to a file instead.
        args = [
            *base_args(self.config, self.proxy.url),
            "--max-filesize",
            str(max_bytes),
            "--progress",
            "--newline",
            "--progress-template",
            PROGRESS_TEMPLATE,
            "--print-to-file",
            "after_move:filepath",
            str(path_file),
            "--output",
            str(self.work_dir / "%(title).100B.%(ext)s"),
            "--load-info-json",
            str(self.work_dir / "info.json"),
        ]
        result = await self._run(args, on_stdout_line=on_line)
        if result.returncode != 0:
            raise self._failure(result)
        written = path_file.read_text(encoding="utf-8").splitlines() if path_file.exists() else []
        path = Path(written[-1]) if written else None
        if path is None or not path.is_file():
            detail = _last_error(result.stderr_tail) or "yt-dlp wrote no file"
            raise DownloadError(f"{self.shown}: download failed: {_scrub(detail)}")
        return path

    async def _run(self, args: Sequence[str], **kwargs: Any) -> ProcessResult:
        log.info("running yt-dlp for %s", self.shown)
        # Proxy variables are removed for yt-dlp and the ffmpeg it may start, so only --proxy
        # decides where connections go.
        env = {name: value for name, value in os.environ.items() if name.lower() not in _PROXY_ENV}
        command = [sys.executable, "-m", "yt_dlp", *args]
        try:
            return await run_process(command, on_process=self.on_process, grace_s=STOP_GRACE_S, env=env, **kwargs)
        except FileNotFoundError as exc:
            raise DownloadError(f"{self.shown}: could not start yt-dlp: {exc}") from None

    def _failure(self, result: ProcessResult) -> DownloadError:
        if self.proxy.rejections:
            rejection = self.proxy.rejections[0]
            return UrlRejectedError(
                f"{self.shown}: rejected a connection that the page or a redirect requested: {rejection.reason}. ViralSplit "
                "only downloads from public addresses; an operator can admit a private one with "
                "VIRALSPLIT_URL_ALLOWLIST"
            )
        log.warning("yt-dlp failed for %s with exit code %d: %s", self.shown, result.returncode, _scrub(result.stderr_tail[-2000:]))
        if self.proxy.failures:
            # yt-dlp only gets the proxy's 502, while the proxy recorded which lookup or connection failed.
            return DownloadError(f"{self.shown}: {self.proxy.failures[0]}: check the address, or try again later")
        return describe_failure(result.stderr_tail, self.shown, self.config.download_socket_timeout_s)


def base_args(config: Config, proxy_url: str) -> list[str]:
    """Return the yt-dlp options both runs share (everything but the mode and output)."""
    height = config.download_max_height
    video = f"[height<=?{height}]{PROTOCOL_FILTER}"
    audio = PROTOCOL_FILTER
    ffmpeg = shutil.which("ffmpeg")
    args = [
        "--ignore-config",
        "--no-plugin-dirs",
        "--no-playlist",
        "--no-cache-dir",
        "--no-mtime",
        "--color",
        "never",
        "--proxy",
        proxy_url,
        "--socket-timeout",
        f"{config.download_socket_timeout_s:g}",
        "--retries",
        "2",
        "--fragment-retries",
        "3",
        "--downloader",
        "native",
        # yt-dlp still hands some HLS streams to ffmpeg (AES-128 without pycryptodomex, other
        # key methods). ffmpeg reaches HTTP(S) through the proxy (yt-dlp sets http_proxy for
        # it), and this list keeps it from opening files or any other protocol.
        "--downloader-args",
        "ffmpeg_i:-protocol_whitelist http,https,tls,tcp,crypto",
        "--restrict-filenames",
        # Best video up to the height limit plus the best audio, or the best single file.
        "--format",
        f"bv*{video}+ba{audio}/b{video}",
    ]
    if ffmpeg:
        args += ["--ffmpeg-location", ffmpeg]
    return args


def single_video(info: dict[str, Any], shown: str) -> dict[str, Any]:
    """Return the one video an info JSON describes; raise DownloadError for several or none.

    `--no-playlist` only picks the video when a URL names both a video and its playlist, so
    a playlist link, or a page with several videos, still extracts as a playlist here.
    """
    if info.get("_type") not in ("playlist", "multi_video"):
        return info
    entries = [entry for entry in info.get("entries") or [] if isinstance(entry, dict)]
    if len(entries) == 1:
        return single_video(entries[0], shown)
    if not entries:
        raise DownloadError(f"{shown}: no video found at this address: the playlist is empty")
    raise DownloadError(
        f"{shown}: the link leads to {len(entries)} videos (a playlist or a page with several "
        "videos): paste the link of one video"
    )


def check_is_video(info: Mapping[str, Any], shown: str) -> None:
    """Raise DownloadError when every selected format is audio only (vcodec "none")."""
    formats = info.get("requested_formats") or [info]
    if all(fmt.get("vcodec") == "none" for fmt in formats):
        raise DownloadError(f"{shown}: not a video: the link offers only audio, with no video format")


def check_limits_before(info: Mapping[str, Any], config: Config, shown: str) -> dict[str, int | None]:
    """Check duration and size from the info JSON; return the selected formats' sizes.

    Raises LimitExceededError naming the limit and the value found. Sizes the metadata does
    not state are None; the download itself enforces the size limit for those.
    """
    if info.get("is_live") or info.get("live_status") in ("is_live", "is_upcoming"):
        raise DownloadError(f"{shown}: this is a live or scheduled stream: use the link again after the broadcast has ended")
    duration = info.get("duration")
    if isinstance(duration, (int, float)) and duration > config.download_max_duration_s:
        raise LimitExceededError(
            f"{shown}: the video is too long: {_format_duration(duration)}, limit "
            f"{_format_duration(config.download_max_duration_s)} (VIRALSPLIT_DOWNLOAD_MAX_DURATION_S)"
        )

    formats = info.get("requested_formats") or [info]
    expected: dict[str, int | None] = {}
    for index, fmt in enumerate(formats):
        size = fmt.get("filesize") or fmt.get("filesize_approx")
        key = str(fmt.get("format_id") or index)
        expected[key] = int(size) if isinstance(size, (int, float)) and size > 0 else None
    total = _sum_or_none(expected.values())
    known = sum(size for size in expected.values() if size)
    if known > config.download_max_bytes:
        stated = "" if total is not None else "at least "
        raise LimitExceededError(
            f"{shown}: the video is larger than the download size limit: {stated}{_format_bytes(known)} "
            f"according to the site, limit {_format_bytes(config.download_max_bytes)} (VIRALSPLIT_DOWNLOAD_MAX_BYTES)"
        )
    return expected


async def _check_duration_after(path: Path, config: Config, shown: str) -> None:
    """Check the downloaded file's duration with ffprobe; metadata may lack or misstate it."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return
    args = [ffprobe, "-v", "error", "-protocol_whitelist", "file", "-show_entries", "format=duration", "-of", "csv=p=0", f"file:{path}"]
    result = await run_process(args, grace_s=STOP_GRACE_S)
    try:
        duration = float(result.stdout.decode().strip())
    except ValueError:
        # An unreadable file is reported by the probe that follows a download, with its reason.
        return
    if duration > config.download_max_duration_s:
        raise LimitExceededError(
            f"{shown}: the video is too long: {_format_duration(duration)}, limit "
            f"{_format_duration(config.download_max_duration_s)} (VIRALSPLIT_DOWNLOAD_MAX_DURATION_S)"
        )


# yt-dlp error text -> what the user reads. Checked in order; the first match wins.
_FAILURES: tuple[tuple[str, str], ...] = (
    (r"Unsupported URL|no video formats found|No video could be found", "no video found at this address: check that the link opens a video page or a video file"),
    (r"HTTP Error 404", "not found (HTTP 404): check that the link is complete and the video is still online"),
    (r"HTTP Error 403", "access denied by the site (HTTP 403): the video may be private, region-locked or need a sign-in"),
    (r"Requested format is not available|only audio|audio only", "not a video: the link offers no video format"),
    (r"confirm you.re not a bot", "the site wants a sign-in to prove this is not a bot, which this server cannot do: try again later or upload the file"),
    (r"HTTP Error 401|Sign in|log ?in|login required|members[- ]only|[Pp]rivate video|video is private", "the video is private or needs a sign-in: use a public link"),
    (r"[Vv]ideo unavailable|not available|has been removed|no longer available|does not exist", "the video is unavailable; it may have been removed or blocked: check the link in a browser"),
    (r"timed out|[Tt]imeout", "the site did not respond within {timeout:g} s (network timeout): try again later"),
    (r"Connection refused|Name or service not known|Temporary failure in name resolution|getaddrinfo|No route to host|Network is unreachable", "could not connect to the site: check the address and try again later"),
    (r"HTTP Error 5\d\d", "the site returned a server error: try again later"),
)


def describe_failure(stderr_tail: str, shown: str, timeout_s: float) -> DownloadError:
    """Map yt-dlp's error output to a DownloadError a user can act on."""
    lines = stderr_tail.strip().splitlines()
    error = _last_error(stderr_tail) or (lines[-1] if lines else "")
    for pattern, message in _FAILURES:
        if re.search(pattern, error):
            return DownloadError(f"{shown}: {message.format(timeout=timeout_s)}")
    detail = _scrub(error).removeprefix("ERROR: ").strip() or "yt-dlp exited without an error message"
    return DownloadError(f"{shown}: download failed: {detail}")


def _last_error(stderr_tail: str) -> str:
    errors = [line for line in stderr_tail.splitlines() if line.startswith("ERROR:")]
    return errors[-1] if errors else ""


def _scrub(text: str) -> str:
    """Replace every URL in yt-dlp's output with its redacted form."""
    return re.sub(r"https?://[^\s'\"<>)]+", lambda match: redact_url(match[0]), text)


def _sum_or_none(values: Any) -> int | None:
    values = list(values)
    if not values or any(value is None for value in values):
        return None
    return int(sum(values))


def _move_unique(source: Path, folder: Path) -> Path:
    """Move source into folder by rename, adding "-1", "-2" ... to the name if it is taken."""
    target, number = folder / source.name, 1
    while target.exists():
        target = folder / f"{source.stem}-{number}{source.suffix}"
        number += 1
    os.replace(source, target)
    return target


def _format_bytes(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _format_duration(seconds: float) -> str:
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
