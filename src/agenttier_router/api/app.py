"""The Router's composition: every part built and wired together once, here.

::

    app = create_app(RouterConfig(storage_url="sqlite:///agenttier.db", dev_auth=True))

Configuration arrives as a :class:`RouterConfig` built at the edge (the
``serve`` command reads flags and the environment); nothing below reads the
environment. The wiring follows the architecture's data flow: the control
plane emits transitions to :meth:`RouterState.on_transition`, which records
them and shows them to the cost sampler; the sampler's snapshots and the
handlers' audit events go to the recorder; reads go to the backend.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
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

from agenttier_router import __version__
from agenttier_router.controlplane import Template
from agenttier_router.controlplane.local import LocalControlPlane
from agenttier_router.controlplane.templates import DEFAULT_TEMPLATES
from agenttier_router.costs import CostSampler, PriceTable
from agenttier_router.storage import (
    Backend,
    NoopBackend,
    Recorder,
    RecorderConfig,
    StorageError,
    UnavailableBackend,
    mask_url,
    open_backend,
)

from . import records, sandboxes
from .auth import KeyStore
from .errors import install_error_handlers
from .state import RouterState, StorageInfo

__all__ = ["RouterConfig", "create_app"]

log = logging.getLogger("agenttier_router.api")


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterConfig:
    """Everything the Router is configured with; built by the ``serve`` command."""

    storage_url: str | None = None
    """Storage URL; None or "" runs the no-op backend (storage off)."""
    keys: KeyStore | None = None
    dev_auth: bool = False
    data_dir: Path = Path("agenttier-data")
    """Where the local control plane keeps sandbox working directories."""
    spool_dir: Path | None = None
    """The recorder's spool; None runs without one (records the database refuses are dropped)."""
    templates: Mapping[str, Template] = field(default_factory=lambda: dict(DEFAULT_TEMPLATES))
    prices: PriceTable = field(default_factory=PriceTable)
    cost_interval: float = 60.0
    recorder: RecorderConfig | None = None
    """Recorder tuning; its ``spool_dir`` is replaced by ``spool_dir`` above."""


def _open_storage(url: str | None) -> tuple[Backend, StorageInfo]:
    """Open the store; a URL that cannot be opened is logged once and spooled around."""
    if not url:
        log.info("storage: off (no URL); Kubernetes stays the only source of truth")
        return NoopBackend(), StorageInfo(enabled=False)
    shown = mask_url(url)
    try:
        backend = open_backend(url)
    except StorageError as error:
        log.error("storage: cannot open %s: %s; the Router serves on, and records are "
                  "spooled until it is started with a URL that works", shown, error)
        return UnavailableBackend(str(error)), StorageInfo(True, shown, str(error))
    log.info("storage: %s (connects on first use; if the database is down, records are "
             "spooled and written once it answers)", shown)
    return backend, StorageInfo(True, shown)


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


def create_app(config: RouterConfig) -> FastAPI:
    """Build the Router: storage, recorder, cost sampler, control plane and the HTTP API."""
    registry = CollectorRegistry()
    backend, storage = _open_storage(config.storage_url)
    recorder_config = config.recorder or RecorderConfig()
    if storage.enabled:
        recorder_config = replace(recorder_config, spool_dir=config.spool_dir)
    recorder = Recorder(backend, config=recorder_config, registry=registry)
    sampler = CostSampler(recorder.record, config.prices, interval=config.cost_interval)
    state = RouterState(backend=backend, recorder=recorder, sampler=sampler, keys=config.keys,
                        dev_auth=config.dev_auth, storage=storage)
    state.control_plane = LocalControlPlane(config.data_dir, config.templates,
                                            state.on_transition)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sampler.start()
        try:
            yield
        finally:
            # Final cost snapshots first, then stop sandboxes, then drain into the store.
            sampler.close()
            state.control_plane.close()
            # A store that could not be opened cannot become writable in this process:
            # spool at once for the next start, rather than wait close_timeout to drain.
            if not recorder.close(0 if storage.open_error else None):
                log.warning("storage: records still unwritten at shutdown are kept in the "
                            "spool and replayed at the next start (if a spool is configured)")
            backend.close()

    app = FastAPI(title="AgentTier Router", version=__version__, lifespan=lifespan)
    app.state.router = state
    install_error_handlers(app)
    app.add_middleware(_HttpMetrics, registry=registry)
    app.include_router(sandboxes.router)
    app.include_router(records.router)

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
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app

