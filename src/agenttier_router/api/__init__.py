"""The Router's HTTP API: the REST endpoints the published SDK speaks, on FastAPI.

:mod:`.app` builds the app over the parts :mod:`agenttier_router.service` built;
:mod:`.sandboxes` and :mod:`.records` hold the endpoints; :mod:`.auth` says who is
calling and what they may do; :mod:`.context` hands both to a handler.
"""

from __future__ import annotations

from agenttier_router.service import RouterConfig

from .app import create_app

__all__ = ["RouterConfig", "create_app"]
