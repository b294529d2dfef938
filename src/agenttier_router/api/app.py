"""The Router's HTTP API as one ASGI app, over services built elsewhere.

::

    app = create_app(build_services(RouterConfig(storage_url="sqlite:///agenttier.db")))

:func:`create_app` takes the :class:`~agenttier_router.service.Services` that
:func:`~agenttier_router.service.build_services` built from configuration; it
adds the endpoints, the HTTP metrics and the error handlers, and starts and
closes the services with the app's lifespan.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agenttier_router import __version__, ui
from agenttier_router.service import Services

from . import records, sandboxes
from .errors import install_error_handlers

__all__ = ["create_app"]

class _HttpMetrics:
    """ASGI middleware that counts and times HTTP requests by route template.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's
    BaseHTTPMiddleware cost about 0.25 ms of a 0.9 ms request here.
    """

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter("agenttier_http_requests_total",
                                "HTTP requests, by route and status",
                                ["method", "route", "status"], registry=registry)
        self.seconds = Histogram("agenttier_http_request_seconds",
                                 "HTTP request latency, by route",
                                 ["method", "route"], registry=registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The route's template, never the raw path: the labels stay few.
            route = getattr(scope.get("route"), "path", "<unmatched>")
            self.seconds.labels(scope["method"], route).observe(time.perf_counter() - started)
            self.requests.labels(scope["method"], route, str(status)).inc()


def create_app(services: Services) -> FastAPI:
    """Build the HTTP API over ``services``; the app's lifespan starts and closes them."""
    recorder = services.recorder
    storage = services.storage

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.start()
        try:
            yield
        finally:
            services.close()

    app = FastAPI(title="AgentTier Router", version=__version__, lifespan=lifespan)
    app.state.services = services
    install_error_handlers(app)
    app.add_middleware(_HttpMetrics, registry=services.registry)
    app.include_router(sandboxes.router)
    app.include_router(records.router)
    ui.install(app)
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Liveness: the process serves HTTP."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> dict[str, Any]:
        """Readiness, with the storage state (password masked). Storage never makes it fail."""
        status = recorder.status()
        if not storage.enabled:
            state_name = "off"
        elif storage.open_error:
            state_name = "misconfigured"
        else:
            state_name = "failing" if status.failing else "ok"
        return {"status": "ok", "storage": {
            "state": state_name, "url": storage.url, "error": storage.open_error,
            "queued": status.queued, "spooled": status.spooled,
        }}

    @app.get("/metrics", response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics: HTTP requests and the recorder's."""
        return Response(generate_latest(services.registry), media_type=CONTENT_TYPE_LATEST)

    return app

