"""The control plane's contract: sandboxes, their lifecycle, and the errors it raises.

The HTTP API drives a :class:`ControlPlane` and never knows which one runs:
the ``local`` one in this package (sandboxes in the Router's process) or a
Kubernetes one (Sandbox custom resources). A control plane *emits* every
lifecycle transition to the callback it is given; it knows nothing of storage.

The tree of errors::

    ControlPlaneError
      + SandboxNotFound     no sandbox by that name in that namespace
      + SandboxConflict     the name is taken, or the sandbox is in the wrong phase
      + InvalidRequest      a bad template, name or command
      + ControlPlaneUnavailable  the plane cannot be reached now (the API answers 503)
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .files import SandboxFiles

__all__ = [
    "ControlPlane",
    "ControlPlaneError",
    "ControlPlaneUnavailable",
    "EventHistory",
    "ExecResult",
    "InvalidRequest",
    "Phase",
    "Sandbox",
    "SandboxConflict",
    "SandboxNotFound",
    "ShareLevel",
    "Shares",
    "Template",
    "Transition",
    "TransitionSink",
]

ShareLevel = Literal["viewer", "collaborator"]
"""What a share grants: a viewer may read a sandbox; a collaborator may also exec, stop, resume."""


class Phase(enum.StrEnum):
    """A sandbox's lifecycle phase, spelled as the SDK's ``SandboxPhase``."""

    CREATING = "Creating"
    RUNNING = "Running"
    STOPPED = "Stopped"
    ERROR = "Error"
    DELETING = "Deleting"


@dataclass(frozen=True, slots=True)
class Template:
    """A sandbox template: the resources a sandbox requests, which also set its cost rate."""

    name: str
    cpu: float
    """vCPUs requested."""
    memory_gib: float
    """Memory requested, in GiB."""
    description: str = ""
    image: str = ""


@dataclass(frozen=True, slots=True)
class Shares:
    """Who a sandbox is shared with: identity -> level, for users and for groups."""

    users: Mapping[str, ShareLevel] = field(default_factory=dict)
    groups: Mapping[str, ShareLevel] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sandbox:
    """A snapshot of one sandbox. ``name`` is its id, unique within its namespace."""

    name: str
    namespace: str
    template: Template
    phase: Phase
    owner: str
    """The creator's subject."""
    owner_email: str
    created_at: datetime
    last_activity_at: datetime
    message: str = ""
    shares: Shares = field(default_factory=Shares)
    uid: str = ""
    """Unique over the sandbox's whole life: one deleted and re-created under the same name
    gets a new uid, so its history never mixes with the old one's (Kubernetes' ``metadata.uid``)."""


@dataclass(frozen=True, slots=True)
class Transition:
    """One lifecycle occurrence: ``sandbox`` as it is after entering ``phase`` at ``time``.

    ``id`` is stable: the same occurrence seen twice (by two replicas, or after a
    restart or a re-list) has the same id, so it is stored once. A plane derives it
    from the sandbox's uid and what identifies the occurrence.
    """

    sandbox: Sandbox
    phase: Phase
    reason: str
    message: str
    time: datetime
    id: str = ""


TransitionSink = Callable[[Transition], None]
"""What a control plane calls for every transition; it must return quickly and never raise."""


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What a command printed and how it ended; ``exit_code`` is 124 when it timed out."""

    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool = False


class ControlPlaneError(Exception):
    """Base of every error a control plane raises."""


class SandboxNotFound(ControlPlaneError):
    """No sandbox by that name in that namespace."""


class SandboxConflict(ControlPlaneError):
    """The name is taken, or the sandbox is not in a phase that allows the action."""


class InvalidRequest(ControlPlaneError, ValueError):
    """A request the control plane refuses as malformed: unknown template, bad name, bad command."""


class ControlPlaneUnavailable(ControlPlaneError):
    """The control plane cannot serve now (API server down, forbidden by RBAC, not yet synced).

    ``retry_after`` is how many seconds a client should wait before trying again.
    """

    def __init__(self, message: str, *, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ControlPlane(Protocol):
    """Creates, runs and removes sandboxes, and reports every lifecycle transition.

    Every method is safe to call from several threads. Transitions go to the
    sink given at construction, in the order they happen for each sandbox.
    """

    def templates(self) -> Mapping[str, Template]:
        """The templates sandboxes may be created from, by name."""

    def create(
        self, name: str, namespace: str, template: str, owner: str, owner_email: str
    ) -> Sandbox:
        """Create a sandbox in phase Creating; it moves to Running once set up."""

    def get(self, name: str, namespace: str) -> Sandbox:
        """Return one sandbox, or raise :class:`SandboxNotFound`."""

    def named(self, name: str) -> list[Sandbox]:
        """Every sandbox called ``name``, in any namespace, without listing the others."""

    def list(self, namespace: str | None = None) -> list[Sandbox]:
        """Every sandbox, or those of one namespace, oldest first."""

    def stop(self, name: str, namespace: str) -> Sandbox:
        """Running -> Stopped. Raises :class:`SandboxConflict` from any other phase."""

    def resume(self, name: str, namespace: str) -> Sandbox:
        """Stopped -> Running. Raises :class:`SandboxConflict` from any other phase."""

    def delete(self, name: str, namespace: str) -> None:
        """Any phase -> Deleting -> gone."""

    def exec(self, name: str, namespace: str, command: str, timeout: float) -> ExecResult:
        """Run ``command`` in a Running sandbox, waiting at most ``timeout`` seconds."""

    def share(self, name: str, namespace: str, kind: Literal["user", "group"], identity: str,
              level: ShareLevel) -> Sandbox:
        """Grant (or change) a user's or group's share."""

    def unshare(self, name: str, namespace: str, identity: str) -> Sandbox:
        """Revoke every share ``identity`` holds, as a user or as a group."""

    def problem(self) -> ControlPlaneUnavailable | None:
        """Why the plane cannot serve now (for readiness), or None when it can."""

    def close(self) -> None:
        """Stop background work: a local plane stops its sandboxes, a Kubernetes one its watches."""

    # -- files: a seam of its own (controlplane/files.py), kept apart from the verbs above --

    @property
    def files(self) -> SandboxFiles:
        """List, read, write and zip a Running sandbox's workspace (see :mod:`.files`)."""


@runtime_checkable
class EventHistory(Protocol):
    """A plane whose platform keeps its own short history of events (Kubernetes Events).

    With storage off, ``/audit/events`` answers from it, as the Go Router does.
    """

    def events(self, *, namespace: str | None = None, name: str | None = None,
               since: datetime | None = None, until: datetime | None = None,
               limit: int = 100) -> list[Transition]:
        """The events the platform still holds, newest first, filtered, at most ``limit``."""
