"""create_app(): wire storage, store, scheduler, event sink and HTTP routes into one Quart app.

The realtime layer plugs in here: it sets `services.events` to its hub and registers its
blueprint, both before the app starts serving.
"""

from __future__ import annotations

from quart import Quart
from quart_schema import Info, QuartSchema

from viralsplit import __version__
from viralsplit.api import metrics, projects, realtime, web
from viralsplit.api.common import install_error_handlers
from viralsplit.api.upload import UploadMiddleware
from viralsplit.config import Config
from viralsplit.services import SERVICES_KEY, Services, get_services

__all__ = ["Services", "create_app", "get_services"]


def create_app(config: Config) -> Quart:
    app = Quart(__name__, static_folder=None)
    services = Services(config)
    app.extensions[SERVICES_KEY] = services

    QuartSchema(
        app,
        info=Info(title="ViralSplit", version=__version__),
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},
    )
    install_error_handlers(app)
    app.register_blueprint(projects.blueprint)
    app.register_blueprint(metrics.blueprint)
    hub = realtime.install(app, services)
    services.metric_collectors.append(lambda: metrics.realtime_metrics(hub))
    # Registered last: its catch-all route serves files of the built SPA.
    app.register_blueprint(web.blueprint)
    app.asgi_app = UploadMiddleware(app.asgi_app, services)  # type: ignore[method-assign]

    @app.before_serving
    async def start_services() -> None:
        await services.start()

    @app.after_serving
    async def stop_services() -> None:
        await services.stop()

    return app
