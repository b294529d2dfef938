"""What every request handler shares: the parts, wired together, and the two jobs they share.

Handlers read :class:`RouterState` from ``request.app.state.router``. It
authenticates callers, and records audit events and lifecycle transitions
through the recorder, so nothing on the request path waits for the database.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from agenttier_router.controlplane import ControlPlane, Transition
from agenttier_router.costs import CostSampler
from agenttier_router.storage import AuditEvent, Backend, Recorder, SandboxEvent

from .auth import DEV_IDENTITY, Identity, KeyStore

__all__ = ["RECENT_TRANSITIONS", "RouterState", "StorageInfo", "cut_command"]

log = logging.getLogger("agenttier_router.api")

RECENT_TRANSITIONS = 1000
"""Transitions kept in memory for ``/audit/events`` when storage is off."""

_COMMAND_LIMIT = 1024  # characters of an exec command kept in its audit event


@dataclass(frozen=True, slots=True)
class StorageInfo:
    """How storage was configured: on or off, its masked URL, and why it could not open."""

    enabled: bool
    url: str = ""
    open_error: str = ""


class RouterState:
    """The Router's parts, wired together once at start-up by :func:`~.app.create_app`."""

    def __init__(
        self,
        *,
        backend: Backend,
        recorder: Recorder,
        sampler: CostSampler,
        keys: KeyStore | None,
        dev_auth: bool,
        storage: StorageInfo,
    ) -> None:
        self.backend = backend
        self.recorder = recorder
        self.sampler = sampler
        self.keys = keys
        self.dev_auth = dev_auth
        self.storage = storage
        self.recent: deque[Transition] = deque(maxlen=RECENT_TRANSITIONS)
        self.control_plane: ControlPlane  # set by create_app, once the sink below exists

    def authenticate(self, request: Request) -> Identity | None:
        """Return the caller's identity, or None when the request carries no valid key."""
        if self.dev_auth:
            return DEV_IDENTITY
        if self.keys is None:
            return None
        return self.keys.identify(request.headers.get("x-api-key"))

    def audit(
        self,
        identity: Identity | None,
        action: str,
        *,
        sandbox_id: str = "",
        namespace: str = "",
        outcome: str = "success",
        resource: str = "sandbox",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Record one audit event; it only enqueues."""
        payload: dict[str, Any] = {}
        if identity is not None and identity.email:
            payload["email"] = identity.email
        payload.update(details or {})
        self.recorder.record(AuditEvent(
            actor=identity.subject if identity is not None else "anonymous",
            action=action, resource=resource, sandbox_id=sandbox_id, namespace=namespace,
            outcome=outcome, details=payload,
        ))

    def on_transition(self, transition: Transition) -> None:
        """The control plane's sink: record the transition and let the cost sampler see it."""
        sandbox = transition.sandbox
        self.recent.append(transition)
        self.recorder.record(SandboxEvent(
            sandbox_id=sandbox.name, sandbox_name=sandbox.name, namespace=sandbox.namespace,
            phase=transition.phase.value, reason=transition.reason, message=transition.message,
            time=transition.time,
        ))
        self.sampler.observe(transition)


def cut_command(command: str) -> str:
    """An exec command as its audit event keeps it: at most 1024 characters."""
    return command if len(command) <= _COMMAND_LIMIT else command[: _COMMAND_LIMIT - 1] + "…"
