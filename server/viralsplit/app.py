"""create_app(): wire storage, store, scheduler, event sink and HTTP routes into one Quart app."""

from __future__ import annotations

import logging

from quart import Quart

from viralsplit.config import Config
from viralsplit.events import EventSink, NullSink

log = logging.getLogger(__name__)

SERVICES_KEY = "viralsplit.services"


class Services:
    """Everything the HTTP and WebSocket layers share, one per app."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.events: EventSink = NullSink()
        self.listen_url = ""

    async def start(self) -> None:
        if self.listen_url:
            log.info("listening on %s", self.listen_url)

    async def stop(self) -> None:
        return None


def get_services(app: Quart) -> Services:
    services: Services = app.extensions[SERVICES_KEY]
    return services


def create_app(config: Config) -> Quart:
    app = Quart(__name__)
    services = Services(config)
    app.extensions[SERVICES_KEY] = services

    @app.before_serving
    async def start_services() -> None:
        await services.start()

    @app.after_serving
    async def stop_services() -> None:
        await services.stop()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
