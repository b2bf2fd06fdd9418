"""Exception hierarchy shared by the engine, the job server and the realtime layer.

    ViralSplitError
    ├── InputError                 invalid input: the CLI exits 2, the API answers 4xx
    │   ├── UnsupportedFormatError container outside the allowlist, playlist, image sequence
    │   └── NoVideoStreamError     nothing to render (audio-only without cover art, empty file)
    ├── ToolMissingError           ffmpeg or ffprobe missing, or built without libx264 or aac
    ├── FFmpegError                ffmpeg or ffprobe exited non-zero; carries the stderr tail
    ├── VerifyError                an output failed its ffprobe check
    ├── DownloadError              yt-dlp could not fetch a URL
    │   ├── UrlRejectedError       the egress guard refused the URL or an address it resolved to
    │   └── LimitExceededError     duration or size over the configured maximum
    ├── StateError                 an illegal job state transition
    ├── NotFoundError              no such project, job or output
    └── PermissionDeniedError      the token's role may not do this

Messages are plain, lowercase-first facts that a user can act on; they never contain tokens.
"""

from __future__ import annotations


class ViralSplitError(Exception):
    """Base class of every error this package raises on purpose."""


class InputError(ViralSplitError):
    """The input cannot be rendered. `source` names the file or URL the user gave."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


class UnsupportedFormatError(InputError):
    pass


class NoVideoStreamError(InputError):
    pass


class ToolMissingError(ViralSplitError):
    pass


class FFmpegError(ViralSplitError):
    """A media tool exited non-zero. `stderr_tail` contains its last lines of stderr."""

    def __init__(self, tool: str, returncode: int, stderr_tail: str, context: str = "") -> None:
        detail = stderr_tail.strip().splitlines()[-1] if stderr_tail.strip() else "no output"
        prefix = f"{context}: " if context else ""
        super().__init__(f"{prefix}{tool} failed with exit code {returncode}: {detail}")
        self.tool = tool
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class VerifyError(ViralSplitError):
    pass


class DownloadError(ViralSplitError):
    pass


class UrlRejectedError(DownloadError):
    pass


class LimitExceededError(DownloadError):
    pass


class StateError(ViralSplitError):
    pass


class NotFoundError(ViralSplitError):
    pass


class PermissionDeniedError(ViralSplitError):
    pass
