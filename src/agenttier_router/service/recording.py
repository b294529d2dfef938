"""Turning what happens into records: audit events for actions, sandbox events for transitions.

:class:`Recording` is the one place that builds those records. The API calls
:meth:`Recording.audit` for every action; the control plane calls
:meth:`Recording.on_transition` (its sink) for every transition, which also
feeds the cost sampler. Both only enqueue into the recorder: nothing here
waits for the database.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from agenttier_router.controlplane import Transition
from agenttier_router.storage import AuditEvent, Record, SandboxEvent

from .anonymous import AnonymousDenials, Folded, cap_fields

__all__ = ["RECENT_TRANSITIONS", "Actor", "Recording", "command_details", "transition_event_id"]

RECENT_TRANSITIONS = 1000
"""Transitions kept in memory for ``/audit/events`` when storage is off."""

_COMMAND_HEAD = 512  # characters kept from the start of a long exec command
_COMMAND_TAIL = 512  # and from its end


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
    Anonymous denials are capped and folded (:mod:`.anonymous`) over
    ``anonymous_interval`` seconds (0: every one recorded); :meth:`close`
    records what is still folded.
    """

    def __init__(self, record: Callable[[Record], None],
                 observe: Callable[[Transition], None], *,
                 anonymous_interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._record = record
        self._observe = observe
        self.recent: deque[Transition] = deque(maxlen=RECENT_TRANSITIONS)
        self._folded = AnonymousDenials(anonymous_interval, clock=clock)
        self._clock = clock
        self._next_sweep = clock() + anonymous_interval

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
        source: str = "",
    ) -> None:
        """Record one audit event (actor None: ``anonymous``, with its ``source`` address).

        It only enqueues.
        """
        payload: dict[str, Any] = {}
        if actor is not None and actor.email:
            payload["email"] = actor.email
        payload.update(details or {})
        if actor is None:
            # Anyone can send these: what they chose is cut short, and repeats folded.
            if source:
                payload["source"] = source
            payload = cap_fields(payload)
            sandbox_id, namespace = sandbox_id[:253], namespace[:63]
            where = {"action": action, "resource": resource, "sandbox_id": sandbox_id,
                     "namespace": namespace}
            if not self._folded.admit(source, str(payload.get("reason", "")), where):
                self._sweep()
                return
        self._record(AuditEvent(
            actor=actor.subject if actor is not None else "anonymous",
            action=action, resource=resource, sandbox_id=sandbox_id, namespace=namespace,
            outcome=outcome, details=payload,
        ))
        self._sweep()

    def _sweep(self) -> None:
        """Record the folded windows that have ended (checked at most once an interval)."""
        now = self._clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + max(self._folded.interval, 1.0)
        for window in self._folded.due():
            self._record_folded(window)

    def _record_folded(self, window: Folded) -> None:
        first = window.first
        self._record(AuditEvent(
            actor="anonymous", action=str(first.get("action", "")),
            resource=str(first.get("resource", "")), sandbox_id=str(first.get("sandbox_id", "")),
            namespace=str(first.get("namespace", "")), outcome="denied",
            details={"reason": window.reason, "source": window.source, "count": window.count,
                     "actions": dict(window.actions), "folded": True,
                     "interval": self._folded.interval},
        ))

    def close(self) -> None:
        """Record every folded window now (at shutdown, before the recorder drains)."""
        for window in self._folded.due(everything=True):
            self._record_folded(window)

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


def command_details(command: str) -> dict[str, Any]:
    """What an exec's audit event keeps of its command: enough to see all it did.

    A command of up to 1024 characters is kept whole. A longer one keeps its
    first and last 512 characters around a marker, so padding cannot push a
    payload out of sight (issue 9, item 7: ``echo harmless`` + spaces +
    ``; echo PAYLOAD > file`` ran, and its record ended in ``…``). Always with
    the command's full length and SHA-256, to match it against what ran::

        {"command": "echo hi", "commandLength": 7, "commandSha256": "…"}
    """
    digest = hashlib.sha256(command.encode("utf-8", "surrogatepass")).hexdigest()
    details: dict[str, Any] = {"command": command, "commandLength": len(command),
                               "commandSha256": digest}
    if len(command) > _COMMAND_HEAD + _COMMAND_TAIL:
        left_out = len(command) - _COMMAND_HEAD - _COMMAND_TAIL
        details["command"] = (f"{command[:_COMMAND_HEAD]}…[{left_out} characters left out]…"
                              f"{command[-_COMMAND_TAIL:]}")
        details["commandTruncated"] = True
    return details
