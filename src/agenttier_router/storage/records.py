"""The three record types the Router persists.

Each is a frozen dataclass built with keywords::

    AuditEvent(actor="alice", action="exec", sandbox_id="sb-1", details={"exitCode": 0})
    SandboxEvent(sandbox_id="sb-1", phase="Running", reason="Started")
    CostSnapshot(sandbox_id="sb-1", owner="alice", template="python", cpu_hours=0.5,
                 mem_gb_hours=1.0, estimated_usd=0.02)

Every record has ``time`` (timezone-aware, now in UTC by default) and
``event_id`` (unique and time-ordered, generated when not given). Writes are
idempotent on ``event_id``, so a record may be sent twice and is stored once.

Construction runs on the request path, so it only checks and normalises;
making values safe for a particular database happens in the write path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._time import new_event_id, require_aware, utcnow

__all__ = ["OUTCOMES", "AuditEvent", "CostSnapshot", "Record", "SandboxEvent"]

OUTCOMES = frozenset({"success", "denied", "error"})
"""The values an :class:`AuditEvent`'s ``outcome`` may take."""


_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)
"""Compact JSON for ``details`` mappings; built once, as building one per call costs ~0.7 µs."""


def _text(value: object, name: str, *, required: bool = False) -> None:
    if type(value) is not str:
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if required and not value:
        raise ValueError(f"{name} is required and must not be empty")


def _amount(record: object, name: str) -> None:
    value = getattr(record, name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (got {value!r})")
    if type(value) is not float:
        object.__setattr__(record, name, number)


def _stamp(record: Any) -> None:
    """Check ``time`` and fill in ``event_id``: the part every record shares."""
    require_aware(record.time, "time")
    if not record.event_id:
        object.__setattr__(record, "event_id", new_event_id(record.time))
    else:
        _text(record.event_id, "event_id")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """A user's or operator's action: who did what to which resource, and how it ended.

    ``details`` may be a str, stored as it is, or a mapping, stored as compact
    JSON text; reading a record back gives the stored string.
    """

    actor: str
    action: str
    resource: str = "sandbox"
    sandbox_id: str = ""
    namespace: str = ""
    outcome: str = "success"
    details: str = ""
    time: datetime = field(default_factory=utcnow)
    event_id: str = ""

    def __init__(
        self,
        *,
        actor: str,
        action: str,
        resource: str = "sandbox",
        sandbox_id: str = "",
        namespace: str = "",
        outcome: str = "success",
        details: str | Mapping[str, Any] = "",
        time: datetime | None = None,
        event_id: str = "",
    ) -> None:
        # Written out, rather than generated, because the Router builds one of
        # these on every request: one pass of cheap checks, with the detailed
        # ones only when a check fails (BENCHMARKS.md, "Recorder: caller cost").
        # It also lets ``details`` be a mapping while the attribute is a str.
        if details.__class__ is not str and isinstance(details, Mapping):
            details = _JSON.encode(details)
        if not (
            actor.__class__ is str and actor and action.__class__ is str and action
            and resource.__class__ is str and sandbox_id.__class__ is str
            and namespace.__class__ is str and details.__class__ is str
        ):
            _text(actor, "actor", required=True)
            _text(action, "action", required=True)
            for value, name in ((resource, "resource"), (sandbox_id, "sandbox_id"),
                                (namespace, "namespace"), (details, "details")):
                _text(value, name)
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)} (got {outcome!r})")
        if time is None:
            time = utcnow()
        else:
            require_aware(time, "time")
        if not event_id:
            event_id = new_event_id(time)
        elif event_id.__class__ is not str:
            _text(event_id, "event_id")
        _set = object.__setattr__
        _set(self, "actor", actor)
        _set(self, "action", action)
        _set(self, "resource", resource)
        _set(self, "sandbox_id", sandbox_id)
        _set(self, "namespace", namespace)
        _set(self, "outcome", outcome)
        _set(self, "details", details)
        _set(self, "time", time)
        _set(self, "event_id", event_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxEvent:
    """A sandbox's lifecycle transition: the phase it entered, why, and a message."""

    sandbox_id: str
    phase: str
    sandbox_name: str = ""
    namespace: str = ""
    reason: str = ""
    message: str = ""
    time: datetime = field(default_factory=utcnow)
    event_id: str = ""

    def __post_init__(self) -> None:
        _text(self.sandbox_id, "sandbox_id", required=True)
        _text(self.phase, "phase", required=True)
        _text(self.sandbox_name, "sandbox_name")
        _text(self.namespace, "namespace")
        _text(self.reason, "reason")
        _text(self.message, "message")
        _stamp(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class CostSnapshot:
    """A sandbox's usage over one interval: CPU hours, memory GB-hours, estimated USD.

    ``owner`` and ``template`` say whom and what the cost belongs to; empty
    means unknown (rows written by an older Router), stored as NULL.
    """

    sandbox_id: str
    namespace: str = ""
    owner: str = ""
    template: str = ""
    cpu_hours: float = 0.0
    mem_gb_hours: float = 0.0
    estimated_usd: float = 0.0
    time: datetime = field(default_factory=utcnow)
    event_id: str = ""

    def __post_init__(self) -> None:
        _text(self.sandbox_id, "sandbox_id", required=True)
        _text(self.namespace, "namespace")
        _text(self.owner, "owner")
        _text(self.template, "template")
        _amount(self, "cpu_hours")
        _amount(self, "mem_gb_hours")
        _amount(self, "estimated_usd")
        _stamp(self)

    def __getattr__(self, name: str) -> str:
        # Called only for an attribute that is not set: a snapshot rebuilt
        # without running the constructor (a spool row written without owner
        # and template) reads them as empty, that is, unknown.
        if name in ("owner", "template"):
            return ""
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


Record = AuditEvent | SandboxEvent | CostSnapshot
"""Any of the three record types."""
