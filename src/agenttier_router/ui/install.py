"""Adding the pages to an app: routes, static assets, session store and security headers."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from agenttier_router.api.sessions import SessionStore

from . import activity, costs, sandboxes, signin
from .security import PageSecurity

__all__ = ["install"]

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Serve the ``/ui/`` pages from ``app`` (and redirect ``/`` to them)."""
    app.state.sessions = SessionStore()
    app.add_middleware(PageSecurity)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    for module in (signin, activity, sandboxes, costs):
        app.include_router(module.router)
