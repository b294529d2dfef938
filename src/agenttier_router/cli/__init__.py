"""The ``agenttier-router`` command line: a thin shell over :mod:`agenttier_router.storage`.

::

    agenttier-router db upgrade --dsn postgresql://router@db/agenttier
    agenttier-router db check
    agenttier-router records audit --actor alice --since 7d
    agenttier-router records sandbox-events --sandbox sb-1 --format json
    agenttier-router records costs --since 30d --group-by namespace
    agenttier-router records costs --all --format csv > costs.csv

Every command takes ``--dsn URL``; without it, the storage URL comes from
``STORAGE_DSN`` or ``STORAGE_SQLITE_PATH``. The modules follow the command
tree: :mod:`.app` is the root and the error handling, :mod:`.db` and
:mod:`.records` the two groups, :mod:`.options` the shared flags, and
:mod:`.output` the table, JSON and CSV writers.
"""

from __future__ import annotations

from .app import cli, main

__all__ = ["cli", "main"]
