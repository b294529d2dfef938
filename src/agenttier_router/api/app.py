"""The Router's HTTP API as one ASGI app, over services built elsewhere.

::

    app = create_app(build_services(RouterConfig(storage_url="sqlite:///agenttier.db")))

:func:`create_app` takes the :class:`~agenttier_router.service.Services` that
:func:`~agenttier_router.service.build_services` built from configuration; it
adds the endpoints, the request guards (:mod:`.guards`), the HTTP metrics
(:mod:`.metrics`), the exec pool (:mod:`.execs`) and the error handlers, and
starts and closes the services with the app's lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agenttier_router import __version__, ui
from agenttier_router.service import Services

from . import admin, analytics, apikeys, bulk, files, records, sandboxes, sharelinks, templates
from .context import authenticate
from .errors import install_error_handlers
from .execs import ExecSlots
from .guards import BodyGuard, DevAuthGuard
from .metrics import HttpMetrics

__all__ = ["create_app"]


def _storage_state(services: Services) -> dict[str, Any]:
    """Storage as ``/readyz`` shows it to a caller with a key (the URL's password masked)."""
    storage = services.storage
    status = services.recorder.status()
    if not storage.enabled:
        state_name = "off"
    elif storage.open_error:
        state_name = "misconfigured"
    else:
        state_name = status.state  # degraded (spool unwritable), failing or ok
    shown: dict[str, Any] = {
        "state": state_name, "url": storage.url, "error": storage.open_error,
        "queued": status.queued, "spooled": status.spooled,
    }
    if status.degraded:
        shown["reason"] = status.reason or ""
    return shown


def create_app(services: Services, *, api: bool = True) -> FastAPI:
    """Build the HTTP API over ``services``; the app's lifespan starts and closes them.

    With ``api=False`` it serves only ``/healthz``, ``/readyz`` and ``/metrics``:
    the headless recorder (``agenttier-router watch``).
    """
    config = services.config
    exec_slots = ExecSlots(per_caller=config.max_execs_per_user, total=config.max_execs)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.start()
        try:
            yield
        finally:
            services.close()  # the control plane ends running commands first
            exec_slots.close()

    app = FastAPI(title="AgentTier Router", version=__version__, lifespan=lifespan)
    app.state.services = services
    app.state.exec_slots = exec_slots
    install_error_handlers(app)
    app.add_middleware(BodyGuard, services=services, max_bytes=config.max_body_bytes)
    app.add_middleware(DevAuthGuard, services=services)
    app.add_middleware(HttpMetrics, registry=services.registry)  # outermost: sees every answer
    if api:
        app.include_router(bulk.router)  # before sandboxes: /sandboxes/bulk is no sandbox id
        app.include_router(sandboxes.router)
        app.include_router(sharelinks.router)
        app.include_router(records.router)
        app.include_router(files.router)
        app.include_router(templates.router)
        app.include_router(analytics.router)
        app.include_router(admin.router)
        app.include_router(apikeys.router)
        ui.install(app)
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves HTTP."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request, response: Response) -> dict[str, Any]:
        """Readiness: 503 while the control plane cannot serve; storage never makes it fail.

        An anonymous caller (a probe) gets only ``{"status": ...}``: the storage
        details name the database's host, port, user and name. With a valid key
        (or ``--dev-auth``) it also shows storage, which is ``off``,
        ``misconfigured``, ``degraded`` (with the recorder's reason), ``failing``
        or ``ok``, and the control plane, ``ok`` or ``unavailable`` with why.
        """
        problem = services.control_plane.problem()
        if problem is not None:
            response.status_code = 503
        shown: dict[str, Any] = {"status": "ok" if problem is None else "unavailable"}
        if authenticate(services, request) is None:
            return shown
        shown["storage"] = _storage_state(services)
        shown["controlPlane"] = {"state": "ok" if problem is None else "unavailable",
                                 "error": str(problem or "")}
        return shown

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics: HTTP requests and the recorder's."""
        return Response(generate_latest(services.registry), media_type=CONTENT_TYPE_LATEST)

    return app

