"""Turning what happens into records: audit events for actions, sandbox events for transitions.

:class:`Recording` is the one place that builds those records. The API calls
:meth:`Recording.audit` for every action; the control plane calls
:meth:`Recording.on_transition` (its sink) for every transition, which also
feeds the cost sampler. Both only enqueue into the recorder: nothing here
waits for the database.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from agenttier_router.controlplane import Transition
from agenttier_router.storage import AuditEvent, Record, SandboxEvent

__all__ = ["RECENT_TRANSITIONS", "Actor", "Recording", "cut_command", "transition_event_id"]

RECENT_TRANSITIONS = 1000
"""Transitions kept in memory for ``/audit/events`` when storage is off."""

_COMMAND_LIMIT = 1024  # characters of an exec command kept in its audit event


class Actor(Protocol):
    """Who did something: the API's authenticated identity, as far as a record needs it."""

    @property
    def subject(self) -> str:
        """The caller's stable id."""

    @property
    def email(self) -> str:
        """The caller's email, or ""."""


def transition_event_id(transition: Transition) -> str:
    """The ``event_id`` of a transition's record: the same for every observer of it.

    Derived from the transition's stable id alone (32 hex digits of its SHA-256),
    so two replicas, a restart or a re-list that see one transition store it once:
    the unique index on ``event_id`` collapses the copies.
    """
    return hashlib.sha256(transition.id.encode()).hexdigest()[:32]


class Recording:
    """Builds audit and sandbox events and hands them to ``record`` (the recorder's).

    ``observe`` also sees every transition (the cost sampler's). ``recent``
    keeps the last :data:`RECENT_TRANSITIONS`, for reads when storage is off.
    """

    def __init__(self, record: Callable[[Record], None],
                 observe: Callable[[Transition], None]) -> None:
        self._record = record
        self._observe = observe
        self.recent: deque[Transition] = deque(maxlen=RECENT_TRANSITIONS)

    def audit(
        self,
        actor: Actor | None,
        action: str,
        *,
        sandbox_id: str = "",
        namespace: str = "",
        outcome: str = "success",
        resource: str = "sandbox",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Record one audit event (actor None: ``anonymous``); it only enqueues."""
        payload: dict[str, Any] = {}
        if actor is not None and actor.email:
            payload["email"] = actor.email
        payload.update(details or {})
        self._record(AuditEvent(
            actor=actor.subject if actor is not None else "anonymous",
            action=action, resource=resource, sandbox_id=sandbox_id, namespace=namespace,
            outcome=outcome, details=payload,
        ))

    def on_transition(self, transition: Transition) -> None:
        """The control plane's sink: record the transition and let the cost sampler see it."""
        sandbox = transition.sandbox
        self.recent.append(transition)
        self._record(SandboxEvent(
            sandbox_id=sandbox.name, sandbox_name=sandbox.name, namespace=sandbox.namespace,
            phase=transition.phase.value, reason=transition.reason, message=transition.message,
            time=transition.time,
            event_id=transition_event_id(transition) if transition.id else "",
        ))
        self._observe(transition)


def cut_command(command: str) -> str:
    """An exec command as its audit event keeps it: at most 1024 characters."""
    return command if len(command) <= _COMMAND_LIMIT else command[: _COMMAND_LIMIT - 1] + "…"
