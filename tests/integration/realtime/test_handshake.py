"""The WebSocket upgrade: Origin check and the declined permessage-deflate offer."""

from __future__ import annotations

import msgpack
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from conftest import ws_url


async def test_foreign_origin_rejected(server) -> None:
    with pytest.raises(InvalidStatus) as caught:
        await websockets.connect(ws_url(server), origin="http://other.example")
    assert caught.value.response.status_code == 403


async def test_own_origin_and_no_origin_accepted(server) -> None:
    own = server.url
    async with websockets.connect(ws_url(server), origin=own) as ws:
        await ws.send(msgpack.packb({"t": "hello", "id": 1, "versions": [1]}))
        assert msgpack.unpackb(await ws.recv())["t"] == "welcome"
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send(msgpack.packb({"t": "hello", "id": 1, "versions": [1]}))
        assert msgpack.unpackb(await ws.recv())["t"] == "welcome"


async def test_listed_origin_accepted(server_factory) -> None:
    server = server_factory.start(env={"VIRALSPLIT_ALLOWED_ORIGINS": "http://localhost:5173, https://app.example"})
    async with websockets.connect(ws_url(server), origin="http://localhost:5173") as ws:
        await ws.send(msgpack.packb({"t": "hello", "id": 1, "versions": [1]}))
        assert msgpack.unpackb(await ws.recv())["t"] == "welcome"
    with pytest.raises(InvalidStatus):
        await websockets.connect(ws_url(server), origin="http://localhost:5174")


async def test_deflate_offer_declined(server) -> None:
    async with websockets.connect(ws_url(server), compression="deflate") as ws:
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        await ws.send(msgpack.packb({"t": "hello", "id": 1, "versions": [1]}))
        assert msgpack.unpackb(await ws.recv())["t"] == "welcome"
