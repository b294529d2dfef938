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
      + ShareLinkNotFound   no share link by that id, or no link with that token hash
      + ShareLinkRefused    a share link that may not be redeemed (expired, used up, own sandbox)
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
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
    "Resources",
    "Sandbox",
    "SandboxChange",
    "SandboxConflict",
    "SandboxNotFound",
    "ShareLevel",
    "ShareLink",
    "ShareLinkNotFound",
    "ShareLinkRedeemed",
    "ShareLinkRefused",
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
class ShareLink:
    """A share link on a sandbox, as anyone may see it: never its token, nor the token's hash.

    Redeeming it grants ``level`` as a user share; it works until ``expires_at``
    (None: for ever) and at most ``max_uses`` times (0: without limit).
    """

    id: str
    """16 hex digits, unique within the sandbox."""
    level: ShareLevel
    expires_at: datetime | None = None
    max_uses: int = 0
    used_count: int = 0


@dataclass(frozen=True, slots=True)
class Shares:
    """Who a sandbox is shared with: identity -> level, for users and for groups, and its
    share links, oldest first."""

    users: Mapping[str, ShareLevel] = field(default_factory=dict)
    groups: Mapping[str, ShareLevel] = field(default_factory=dict)
    links: tuple[ShareLink, ...] = ()


def _no_entries() -> Mapping[str, str]:
    return MappingProxyType({})


# -- Updating a sandbox (PATCH /sandboxes/{id}) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Resources:
    """What a sandbox asks of its machine, as Kubernetes' ``ResourceRequirements`` does.

    Quantities are Kubernetes strings (``"500m"``, ``"2Gi"``), by resource name
    (``cpu``, ``memory``). The requests set the sandbox's cost rate::

        Resources(requests={"cpu": "1", "memory": "2Gi"}, limits={"memory": "4Gi"})
    """

    requests: Mapping[str, str] = field(default_factory=_no_entries)
    limits: Mapping[str, str] = field(default_factory=_no_entries)

    def as_dict(self) -> dict[str, dict[str, str]]:
        """The wire/object form: ``{"requests": {...}, "limits": {...}}``, empty parts left out."""
        parts = {"requests": dict(self.requests), "limits": dict(self.limits)}
        return {key: value for key, value in parts.items() if value}


@dataclass(frozen=True, slots=True)
class SandboxChange:
    """What :meth:`ControlPlane.update` changes; a field left None stays as it is.

    - ``idle_timeout``: seconds (> 0) without activity after which a Running
      sandbox is stopped; it applies at once.
    - ``resources``: merged, quantity by quantity, over what the sandbox requests
      now; they apply when it next starts (a resume), and so does its cost rate.
    - ``labels`` and ``annotations``: merged into the sandbox's maps; a value of
      None removes that key. Keys under ``agenttier.io/`` are the platform's own.

    ``{}`` counts as a change (of nothing): only None means absent.
    """

    idle_timeout: float | None = None
    resources: Resources | None = None
    labels: Mapping[str, str | None] | None = None
    annotations: Mapping[str, str | None] | None = None

    def fields(self) -> list[str]:
        """The wire names of the fields this change carries, in the API's order."""
        present = (("idleTimeout", self.idle_timeout), ("resources", self.resources),
                   ("labels", self.labels), ("annotations", self.annotations))
        return [name for name, value in present if value is not None]


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
    # Set by updates (PATCH /sandboxes/{id}); see SandboxChange.
    labels: Mapping[str, str] = field(default_factory=_no_entries)
    annotations: Mapping[str, str] = field(default_factory=_no_entries)
    idle_timeout: float | None = None
    """Seconds without activity after which a Running sandbox is stopped; None for never."""
    resources: Resources | None = None
    """What the sandbox itself requests, over its template's; None when it asks nothing of its own.
    ``template`` holds what it runs with now, and so its cost rate."""
    restart_pending: bool = False
    """Whether ``resources`` differ from what its current run started with: they (and the
    cost rate) take effect when it next starts."""


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


class ShareLinkNotFound(ControlPlaneError):
    """No share link by that id on the sandbox, or no link anywhere with that token hash."""


class ShareLinkRefused(ControlPlaneError):
    """A share link that exists but may not be redeemed now.

    ``reason`` is ``expired``, ``exhausted`` (``maxUses`` reached) or ``owner`` (the
    caller owns the sandbox); ``sandbox`` and ``link`` say which, for the audit log.
    """

    def __init__(self, message: str, *, reason: Literal["expired", "exhausted", "owner"],
                 sandbox: Sandbox, link: ShareLink) -> None:
        super().__init__(message)
        self.reason = reason
        self.sandbox = sandbox
        self.link = link


@dataclass(frozen=True, slots=True)
class ShareLinkRedeemed:
    """What a redeem did: the sandbox as it is now (the caller's user share in it), and the
    link with its new ``used_count``. ``level`` is the share the caller now holds: the
    link's, or the caller's own if that was already collaborator (a link never lowers one)."""

    sandbox: Sandbox
    link: ShareLink
    level: ShareLevel


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

    def unshare(self, name: str, namespace: str, identity: str,
                kind: Literal["user", "group"] | None = None) -> Sandbox:
        """Revoke the shares ``identity`` holds: only its user or group one with ``kind``,
        else both (holding none is fine)."""

    # -- Updating a sandbox (PATCH /sandboxes/{id}) --

    def update(self, name: str, namespace: str, change: SandboxChange) -> Sandbox:
        """Apply ``change`` (in any phase but Deleting) and return the sandbox as it is now.

        Raises :class:`InvalidRequest` for a bad value (naming the field) and
        :class:`SandboxConflict` while the sandbox is Deleting.
        """

    # --

    def problem(self) -> ControlPlaneUnavailable | None:
        """Why the plane cannot serve now (for readiness), or None when it can."""

    def close(self) -> None:
        """Stop background work: a local plane stops its sandboxes, a Kubernetes one its watches."""

    # -- Share links (issue 12). The plane never sees a token, only its SHA-256 (hex). --------

    def create_share_link(self, name: str, namespace: str, *, token_hash: str,
                          level: ShareLevel, expires_at: datetime | None,
                          max_uses: int) -> ShareLink:
        """Add a link to the sandbox, with a new id, ``used_count`` 0 and the token's hash.

        Raises :class:`InvalidRequest` for a bad level, hash, ``max_uses`` < 0 or a naive
        ``expires_at``; the local plane also refuses a Deleting sandbox
        (:class:`SandboxConflict`), as it does a share.
        """

    def revoke_share_link(self, name: str, namespace: str, link_id: str) -> Sandbox:
        """Remove one link; raises :class:`ShareLinkNotFound` when the sandbox has none by
        that id."""

    def redeem_share_link(self, token_hash: str, identity: str) -> ShareLinkRedeemed:
        """Use the link whose token hashes to ``token_hash``: grant ``identity`` its level as a
        user share and add one to its ``used_count``, as one atomic step (two redeems of a
        link with one use left: exactly one wins, on any number of Routers).

        Raises :class:`ShareLinkNotFound` for an unknown hash, and :class:`ShareLinkRefused`
        when the link has expired, is used up, or ``identity`` owns the sandbox.
        """

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
