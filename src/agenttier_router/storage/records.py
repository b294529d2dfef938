"""The three record types the Router persists.

Each is a frozen dataclass built with keywords::

    AuditEvent(actor="alice", action="exec", sandbox_id="sb-1", details={"exitCode": 0})
    SandboxEvent(sandbox_id="sb-1", phase="Running", reason="Started")
    CostSnapshot(sandbox_id="sb-1", cpu_hours=0.5, mem_gb_hours=1.0, estimated_usd=0.02)

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
        # Written out, rather than generated, so that ``details`` may be a
        # mapping while the stored attribute is always a str.
        _set = object.__setattr__
        _set(self, "actor", actor)
        _set(self, "action", action)
        _set(self, "resource", resource)
        _set(self, "sandbox_id", sandbox_id)
        _set(self, "namespace", namespace)
        _set(self, "outcome", outcome)
        if isinstance(details, Mapping):
            details = json.dumps(details, separators=(",", ":"), ensure_ascii=False, default=str)
        _set(self, "details", details)
        _set(self, "time", utcnow() if time is None else time)
        _set(self, "event_id", event_id)
        self.__post_init__()

    def __post_init__(self) -> None:
        _text(self.actor, "actor", required=True)
        _text(self.action, "action", required=True)
        _text(self.resource, "resource")
        _text(self.sandbox_id, "sandbox_id")
        _text(self.namespace, "namespace")
        _text(self.details, "details")
        if self.outcome not in OUTCOMES:
            raise ValueError(
                f"outcome must be one of {sorted(OUTCOMES)} (got {self.outcome!r})"
            )
        _stamp(self)


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
    """A sandbox's usage over one interval: CPU hours, memory GB-hours, estimated USD."""

    sandbox_id: str
    namespace: str = ""
    cpu_hours: float = 0.0
    mem_gb_hours: float = 0.0
    estimated_usd: float = 0.0
    time: datetime = field(default_factory=utcnow)
    event_id: str = ""

    def __post_init__(self) -> None:
        _text(self.sandbox_id, "sandbox_id", required=True)
        _text(self.namespace, "namespace")
        _amount(self, "cpu_hours")
        _amount(self, "mem_gb_hours")
        _amount(self, "estimated_usd")
        _stamp(self)


Record = AuditEvent | SandboxEvent | CostSnapshot
"""Any of the three record types."""
