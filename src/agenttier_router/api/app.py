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

from agenttier_router import __version__
from agenttier_router.service import Services

from . import records, sandboxes
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
    # The recorder reports ``degraded`` (spool unwritable, say) from issue 9's item 2 on;
    # read with getattr so this works with recorders before and after it.
    degraded = bool(getattr(status, "degraded", False))
    reason = getattr(status, "degraded_reason", None) or getattr(status, "reason", "") or ""
    if not storage.enabled:
        state_name = "off"
    elif storage.open_error:
        state_name = "misconfigured"
    elif degraded:
        state_name = "degraded"
    else:
        state_name = "failing" if status.failing else "ok"
    shown: dict[str, Any] = {
        "state": state_name, "url": storage.url, "error": storage.open_error,
        "queued": status.queued, "spooled": status.spooled,
    }
    if degraded:
        shown["reason"] = str(reason)
    return shown


def create_app(services: Services) -> FastAPI:
    """Build the HTTP API over ``services``; the app's lifespan starts and closes them."""
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
    app.include_router(sandboxes.router)
    app.include_router(records.router)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves HTTP."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> dict[str, Any]:
        """Readiness; with a valid key (or ``--dev-auth``), the storage state too.

        An anonymous caller (a probe) gets only ``{"status": "ok"}``: the
        storage details name the database's host, port, user and name. Storage
        never makes the Router unready; it is ``off``, ``misconfigured``,
        ``degraded`` (with the recorder's reason), ``failing`` or ``ok``.
        """
        if authenticate(services, request) is None:
            return {"status": "ok"}
        return {"status": "ok", "storage": _storage_state(services)}

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics: HTTP requests and the recorder's."""
        return Response(generate_latest(services.registry), media_type=CONTENT_TYPE_LATEST)

    return app

