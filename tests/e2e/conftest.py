"""Browser tests: Debian's Chromium driven by Playwright against a real `viralsplit serve`.

The page under test is the built SPA in server/viralsplit/static (`make web` or
`cd web && npm ci && npm run build`). Chromium runs headless with background networking off,
because this machine has no network beyond loopback. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = TESTS_DIR.parent
sys.path.insert(0, str(TESTS_DIR))

from mediagen import MediaFactory  # noqa: E402
from servers import ServerFactory  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
STATIC_INDEX = REPO_DIR / "server" / "viralsplit" / "static" / "index.html"
ARTIFACTS_DIR = REPO_DIR / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # The player test plays a clip that the test did not click with sound on.
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium package (make browser)")
    if not STATIC_INDEX.exists():
        pytest.fail(f"{STATIC_INDEX} not found: build the page first (make web)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaFactory:
    return MediaFactory(tmp_path_factory.mktemp("e2e-media"))


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    factory = ServerFactory(tmp_path)
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    return ARTIFACTS_DIR


@pytest.fixture
def slow_media_server() -> Iterator[object]:
    """Serve files on 127.0.0.1 at a throttled rate, so a download takes a few seconds.

    Calling the fixture's value with a path returns the file's URL and the "127.0.0.1:PORT"
    that the server under test must allowlist.
    """
    import http.server
    import threading
    import time

    files: dict[str, Path] = {}
    download_s = 3.0

    class Handler(http.server.BaseHTTPRequestHandler):
        def _send_head(self) -> Path | None:
            path = files.get(self.path)
            if path is None:
                self.send_error(404)
                return None
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(path.stat().st_size))
            self.end_headers()
            return path

        def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
            self._send_head()

        def do_GET(self) -> None:  # noqa: N802
            path = self._send_head()
            if path is None:
                return
            data = path.read_bytes()
            chunk = max(1, len(data) // 30)
            try:
                for start in range(0, len(data), chunk):
                    self.wfile.write(data[start : start + chunk])
                    self.wfile.flush()
                    time.sleep(download_s / 30)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return None

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    host_port = f"127.0.0.1:{httpd.server_address[1]}"

    def serve(path: Path) -> tuple[str, str]:
        files[f"/{path.name}"] = path
        return f"http://{host_port}/{path.name}", host_port

    yield serve
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)
