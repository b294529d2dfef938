"""``python -m agenttier_router.cli``: the same as the ``agenttier-router`` command."""

from __future__ import annotations

from .app import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
