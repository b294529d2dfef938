"""The Router's HTTP API: the REST endpoints the published SDK speaks, on FastAPI.

:mod:`.app` builds the app over the parts :mod:`agenttier_router.service` built;
:mod:`.sandboxes` and :mod:`.records` hold the endpoints; :mod:`.auth` says who is
calling and what they may do; :mod:`.context` hands both to a handler.

Concurrency model (issue 9, item 3):

- ``/healthz``, ``/readyz`` and ``/metrics`` are ``async`` and run on the event
  loop: they never wait on exec, on the database or on a thread pool; they read
  only in-memory state (the recorder's counters, the metrics registry).
- Exec runs on its own pool of ``max_execs`` threads (:mod:`.execs`), never on
  Starlette's shared one. A caller may hold ``max_execs_per_user`` execs at
  once (default 8); the next one, or one past ``max_execs`` in all, is refused
  at once with 429 and ``Retry-After``, and recorded as a ``denied`` audit event.
- Every other handler is a plain function on Starlette's shared pool. Each is
  short: in-memory control-plane calls, a recorder enqueue, or one bounded
  history query (reads wait at most a second for the recorder).
- Before any of that, :mod:`.guards` refuses a body over ``max_body_bytes``
  (413) and never reads the body of a caller without a valid key.
"""

from __future__ import annotations

from agenttier_router.service import RouterConfig

from .app import create_app

__all__ = ["RouterConfig", "create_app"]
