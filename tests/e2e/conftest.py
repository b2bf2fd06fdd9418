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
def open_page(browser, server_factory: ServerFactory) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """Open a page in a new browser context, as a separate person with their own storage.

    The contexts close before the servers stop, because a server's graceful shutdown waits
    for open sockets.
    """
    contexts = []

    def open_page(name: str = "Ana", width: int = 1280, height: int = 900):  # type: ignore[no-untyped-def]
        context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
        context.add_init_script(f"localStorage.setItem('viralsplit.name', {name!r})")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page

    yield open_page
    for context in contexts:
        context.close()


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


class CuttableProxy:
    """A TCP forwarder on 127.0.0.1 whose connections the test can cut, as a network drop would.

    While `rejecting` is set, new connections are closed as soon as they are accepted.
    """

    def __init__(self, upstream_port: int) -> None:
        import socket
        import threading

        self.upstream_port = upstream_port
        self.rejecting = False
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept_loop(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.rejecting:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source, target) -> None:  # type: ignore[no-untyped-def]
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                self._close(sock)

    def _close(self, sock) -> None:  # type: ignore[no-untyped-def]
        import socket

        with self._lock:
            self._sockets.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def cut(self) -> None:
        """Close every open connection in both directions."""
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            self._close(sock)

    def close(self) -> None:
        self._listener.close()
        self.cut()


@pytest.fixture
def cuttable_proxy() -> Iterator[object]:
    proxies: list[CuttableProxy] = []

    def start(upstream_url: str) -> CuttableProxy:
        proxy = CuttableProxy(int(upstream_url.rsplit(":", 1)[1]))
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.close()
