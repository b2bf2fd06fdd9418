"""Command line: `viralsplit serve`, `split`, `submit` and `watch`.

This module only parses arguments and dispatches; each command lives in its own module,
imported lazily so `viralsplit split` does not load the web server.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from viralsplit import __version__

FILL_MODES = ("crop", "blur", "pad")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="viralsplit",
        description="Turn one video into platform-ready clips for TikTok, Reels, Shorts and more.",
    )
    parser.add_argument("--version", action="version", version=f"viralsplit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the web server and job queue")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port to listen on; 0 picks a free one (default 8000)")
    serve.add_argument("--data-dir", help="folder for the database and media (default ./data)")
    serve.add_argument("--max-jobs", type=int, help="renders that run at once (default 2)")

    split = commands.add_parser("split", help="render platform-ready clips locally")
    split.add_argument("input", help="video file or http(s) URL")
    _add_render_options(split)
    split.add_argument("--out", default=None, help="output folder (default: ./INPUT-NAME-clips)")
    split.add_argument("--json", action="store_true", help="print one JSON object describing the outputs on stdout")

    submit = commands.add_parser("submit", help="send a file or URL to a running server and watch it")
    submit.add_argument("input", help="video file or http(s) URL")
    submit.add_argument("--server", required=True, help="server base URL, e.g. http://127.0.0.1:8000")
    submit.add_argument("--title", default=None, help="project title (default: the input's name)")
    submit.add_argument("--name", default=None, help="display name shown to others watching")
    _add_render_options(submit)

    watch = commands.add_parser("watch", help="show a project's live progress")
    watch.add_argument("project", help="project id, or the whole share link (then --token may be left out)")
    watch.add_argument("--server", required=True, help="server base URL, e.g. http://127.0.0.1:8000")
    watch.add_argument("--token", default=None, help="editor or viewer token of the project")
    watch.add_argument("--name", default=None, help="display name shown to others watching")
    return parser


def _add_render_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--platform",
        action="append",
        dest="platforms",
        metavar="NAME",
        help="target platform, repeatable (default: tiktok, reels, shorts); see `GET /api/platforms`",
    )
    parser.add_argument("--fill", choices=FILL_MODES, default="crop", help="how the frame fills the preset size (default crop)")
    parser.add_argument(
        "--part-length",
        type=float,
        default=None,
        metavar="SECONDS",
        help="maximum part length in seconds (default: the smaller of 60 and the platform's limit)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from viralsplit.server import run_serve

        return run_serve(args)
    if args.command == "split":
        from viralsplit.local import run_split

        return run_split(args)
    if args.command == "submit":
        from viralsplit.remote import run_submit

        return run_submit(args)
    if args.command == "watch":
        from viralsplit.remote import run_watch

        return run_watch(args)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
