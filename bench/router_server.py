"""``agenttier-router`` with one optional change, so that a benchmark can measure what it costs.

Not a benchmark itself; ``router_audit_reads.py`` starts it. Everything after
this script's own flags goes to the real command line, unchanged::

    .venv/bin/python bench/router_server.py --no-read-wait serve --dev-auth --port 8081 ...

``--no-read-wait`` replaces the read endpoints' wait for the recorder
(``agenttier_router.api.records._caught_up``, which calls
``recorder.flush(READ_WAIT)``) with nothing, so that a Router started this way
and one started without the flag differ in that wait alone.
"""

from __future__ import annotations

import sys

from agenttier_router.api import records
from agenttier_router.cli import main


def _no_wait(state: object) -> None:
    return None


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv and argv[0] == "--no-read-wait":
        argv = argv[1:]
        records._caught_up = _no_wait  # type: ignore[assignment]
    raise SystemExit(main(argv))
