"""The Router's pages under ``/ui/``: activity, costs and sandboxes, for people.

Server-rendered Jinja2 templates (autoescaped) with one small static script,
all shipped in this package: no CDN, no build step, nothing fetched from
another host. The pages read history through the same functions the JSON
endpoints use (:mod:`agenttier_router.api.records`), never SQL.

::

    app = create_app(services)   # calls install(app)
"""

from __future__ import annotations

from .install import install

__all__ = ["install"]
