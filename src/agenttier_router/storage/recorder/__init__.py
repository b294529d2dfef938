"""The best-effort recorder: the request path hands records over and never waits.

::

    from agenttier_router.storage import AuditEvent, Recorder, RecorderConfig, open_backend

    backend = open_backend("postgresql://router@db/agenttier")
    recorder = Recorder(backend, config=RecorderConfig(spool_dir="/var/lib/agenttier/spool"))
    recorder.record(AuditEvent(actor="alice", action="exec", sandbox_id="sb-1"))
    ...
    recorder.close(timeout=10)   # drain into the database; what cannot be written stays spooled
    backend.close()              # the recorder does not own the backend

``record()`` appends to a bounded in-memory queue and returns: it never
raises, never blocks and never does I/O. A background writer sends batches to
``Backend.write_batch`` (idempotent on ``event_id``); when the database fails
or hangs, it moves records to a local durable spool and replays them, in
order, once the database is back.

The modules, in the order a record passes through them:

- :mod:`.core`: :class:`Recorder`, the front the request path calls;
- :mod:`.config`: :class:`RecorderConfig` and :class:`RecorderStatus`;
- :mod:`.writer`: the background thread that owns the queue and moves records on;
- :mod:`.deadline`: the thread each ``write_batch`` call runs on, so a hung database
  cannot hold the writer;
- :mod:`.spool`: the local durable spool;
- :mod:`.metrics` and :mod:`.ratelimit`: counting and bounded, password-free logging.

Logging goes to the ``agenttier_router.storage.recorder`` logger, at most one
line per kind of trouble per ``log_interval``, and never carries a password.
"""

from __future__ import annotations

from .config import RecorderConfig, RecorderStatus
from .core import Recorder, drain_on_sigterm

__all__ = ["Recorder", "RecorderConfig", "RecorderStatus", "drain_on_sigterm"]
