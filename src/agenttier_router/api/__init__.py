"""The Router's HTTP API: the REST endpoints the published SDK speaks, on FastAPI.

:mod:`.app` wires the parts together; :mod:`.sandboxes` and :mod:`.records`
hold the endpoints; :mod:`.auth` says who is calling and what they may do.
"""

from __future__ import annotations

from .app import RouterConfig, create_app

__all__ = ["RouterConfig", "create_app"]
