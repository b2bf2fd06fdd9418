from __future__ import annotations

import httpx

from servers import ServerFactory


def test_serve_answers_healthz(server_factory: ServerFactory) -> None:
    server = server_factory.start()

    response = httpx.get(server.url + "/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_serve_stops_on_sigterm(server_factory: ServerFactory) -> None:
    server = server_factory.start()

    code = server.stop()

    assert code == 0
