"""Rendering a page: one autoescaping Jinja2 environment over the package's templates.

Autoescape is on for every template, so whatever a record holds (actors,
commands, details are attacker-controlled) reaches the page as text.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from agenttier_router.api.auth import Identity
from agenttier_router.api.context import services

__all__ = ["page", "short_time"]

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,  # every template, whatever its name
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def short_time(value: str) -> str:
    """``2026-11-30T10:00:00.123456Z`` as ``2026-11-30 10:00:00`` (UTC), for a table cell."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M:%S")


_env.filters["short_time"] = short_time


def page(request: Request, template: str, identity: Identity | None, *, status: int = 200,
         **context: Any) -> HTMLResponse:
    """Render ``template`` with ``context``, the caller, and whether sign-out is offered."""
    built = services(request)
    html = _env.get_template(template).render(
        identity=identity, can_sign_out=identity is not None and not built.dev_auth,
        path=request.url.path, **context)
    return HTMLResponse(html, status_code=status)
