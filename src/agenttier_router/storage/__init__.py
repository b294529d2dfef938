"""Storage: the three record types, the backends that write and read them, and the schema.

::

    from agenttier_router.storage import AuditEvent, AuditFilter, open_backend

    backend = open_backend("sqlite:///agenttier.db")
    backend.write_batch([AuditEvent(actor="alice", action="create", sandbox_id="sb-1")])
    page = backend.list_audit_events(AuditFilter(actor="alice"))
    backend.close()
"""

from __future__ import annotations

from ._time import format_ts, parse_ts
from .backend import GROUP_BYS, Backend, GroupBy, NoopBackend, UnavailableBackend
from .errors import (
    BackendUnavailable,
    DriverNotInstalled,
    InvalidQuery,
    InvalidURL,
    SchemaError,
    StorageError,
)
from .filters import AuditFilter, CostFilter, CostTotal, Page, SandboxEventFilter
from .open import backend_from_env, open_backend, url_from_env
from .recorder import Recorder, RecorderConfig, RecorderStatus, drain_on_sigterm
from .records import OUTCOMES, AuditEvent, CostSnapshot, Record, SandboxEvent
from .sql import SchemaStatus, SQLBackend
from .sql.url import mask_url, sqlite_path

__all__ = [
    "GROUP_BYS",
    "OUTCOMES",
    "AuditEvent",
    "AuditFilter",
    "Backend",
    "BackendUnavailable",
    "CostFilter",
    "CostSnapshot",
    "CostTotal",
    "DriverNotInstalled",
    "GroupBy",
    "InvalidQuery",
    "InvalidURL",
    "NoopBackend",
    "Page",
    "Record",
    "Recorder",
    "RecorderConfig",
    "RecorderStatus",
    "SQLBackend",
    "SandboxEvent",
    "SandboxEventFilter",
    "SchemaError",
    "SchemaStatus",
    "StorageError",
    "UnavailableBackend",
    "backend_from_env",
    "drain_on_sigterm",
    "format_ts",
    "mask_url",
    "open_backend",
    "parse_ts",
    "sqlite_path",
    "url_from_env",
]
