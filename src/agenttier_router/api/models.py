"""The JSON the REST API takes and gives, as the published SDK (agenttier 0.8.1) reads it.

Fields are camelCase on the wire. Request models ignore fields they do not
know (newer clients may send more); every field they do know is checked, and
a bad one is a 400 that names it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from agenttier_router.storage import format_ts

if TYPE_CHECKING:
    from agenttier_router.controlplane import ShareLink

__all__ = [
    "STORAGE_OFF",
    "AuditEventOut",
    "AuditEventsOut",
    "CostSeriesOut",
    "CostSeriesPointOut",
    "CostSeriesResponse",
    "CostSnapshotOut",
    "CostSnapshotsOut",
    "CostTotalOut",
    "CostTotalsOut",
    "CreateSandbox",
    "CreatedBy",
    "ErrorOut",
    "ExecOut",
    "ExecRequest",
    "SandboxEventOut",
    "SandboxEventsOut",
    "SandboxList",
    "SandboxOut",
    "ShareEntry",
    "ShareLinkOut",
    "ShareRequest",
    "SharingOut",
    "TemplateRef",
    "UserOut",
    "check_identity",
]

_MAX_IDENTITY = 255

STORAGE_OFF = (
    "storage is off: this Router keeps no history, so there are no audit events, "
    "records or costs to read (audit events here are only the last sandbox transitions "
    "held in memory). Start the Router with --storage URL (or STORAGE_DSN, or "
    "STORAGE_SQLITE_PATH) to keep them, e.g. --storage sqlite:///agenttier.db"
)
"""The ``notice`` of every history answer while storage is off."""


def check_identity(value: str) -> str:
    """Return ``value`` if it may name a share grantee; else raise ``ValueError`` saying why.

    An identity is a user (subject or email) or a group name, and may hold ``/``
    (``acme/devs`` is a usual Keycloak or GitHub group): at most 255 characters,
    not blank, not ``.`` or ``..``, and no control characters (C0, DEL, C1).
    """
    if not value.strip():
        raise ValueError("must not be blank")
    if len(value) > _MAX_IDENTITY:
        raise ValueError(f"must be at most {_MAX_IDENTITY} characters")
    if value in (".", ".."):
        raise ValueError("must not be '.' or '..'")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value):
        raise ValueError("must not hold control characters")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


_NAME = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class TemplateRef(_Model):
    """Which template a sandbox is made from."""

    name: str = Field(min_length=1, max_length=253)
    kind: str = "ClusterSandboxTemplate"


class CreateSandbox(_Model):
    """``POST /sandboxes``: the SDK's ``create_sandbox`` body."""

    name: str = _NAME
    namespace: str = Field(default="default", min_length=1, max_length=63,
                           pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    template_ref: TemplateRef
    timeout: str | None = Field(default=None, max_length=32)
    idle_timeout: str | None = Field(default=None, max_length=32)


class ExecRequest(_Model):
    """``POST /sandboxes/{id}/exec``: a shell command and its timeout in seconds."""

    command: str = Field(min_length=1, max_length=65536)
    timeout: int = Field(default=30, gt=0, le=3600)


class ShareRequest(_Model):
    """``POST /sandboxes/{id}/share``: grant a user or a group a level of access."""

    identity: str = Field(min_length=1, max_length=_MAX_IDENTITY)
    level: Literal["viewer", "collaborator"]
    kind: Literal["user", "group"] = "user"

    @field_validator("identity")
    @classmethod
    def _identity(cls, value: str) -> str:
        return check_identity(value)


class CreatedBy(_Model):
    """Who created a sandbox."""

    email: str | None = None
    display_name: str | None = None


class SandboxOut(_Model):
    """A sandbox, as the SDK's ``SandboxSummary`` reads it."""

    sandbox_id: str
    name: str
    namespace: str
    status: str
    template_ref: str
    created_at: str
    last_activity_at: str
    created_by: CreatedBy
    message: str = ""
    # Beyond the SDK's SandboxSummary (which ignores them): what PATCH sets, read back.
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    idle_timeout: str | None = Field(default=None, description="A Go duration; none: never")
    resources: dict[str, dict[str, str]] | None = Field(
        default=None, description="What the sandbox requests of its own, over its template's")
    restart_required: bool = Field(
        default=False, description="Its resources take effect when it next starts")


class SandboxList(_Model):
    """``GET /sandboxes``."""

    sandboxes: list[SandboxOut]


class ExecOut(_Model):
    """What a command printed, and its exit code (124 when it timed out)."""

    stdout: str
    stderr: str
    exit_code: int


class ShareEntry(_Model):
    """One grant."""

    identity: str
    level: Literal["viewer", "collaborator"]


class ShareLinkOut(_Model):
    """A link as ``shareLinks`` lists it (the SDK's ``ShareLinkInfo``): never its token."""

    id: str
    level: Literal["viewer", "collaborator"]
    expires_at: str | None
    max_uses: int
    used_count: int

    @classmethod
    def of(cls, link: ShareLink) -> ShareLinkOut:
        """The wire form of a control plane's link."""
        return cls(id=link.id, level=link.level, max_uses=link.max_uses,
                   used_count=link.used_count,
                   expires_at=format_ts(link.expires_at) if link.expires_at else None)


class SharingOut(_Model):
    """A sandbox's sharing, in the Go Router's shape: grants, and share links (never null)."""

    users: list[ShareEntry]
    groups: list[ShareEntry]
    share_links: list[ShareLinkOut] = Field(default_factory=list)


class UserOut(BaseModel):
    """``GET /user/me``, as the SDK's ``CurrentUser`` reads it."""

    model_config = ConfigDict(populate_by_name=True)

    sub: str
    email: str | None = None
    name: str | None = None
    groups: list[str]
    is_admin: bool = Field(alias="isAdmin")


class AuditEventOut(_Model):
    """One audit event, in the SDK's ``AuditEvent`` shape plus actor and outcome."""

    timestamp: str
    event_type: str
    sandbox_id: str
    sandbox_name: str
    namespace: str
    user_email: str
    details: dict[str, Any]
    actor: str
    resource: str
    outcome: str
    event_id: str


class AuditEventsOut(_Model):
    """``GET /audit/events``: newest first, with the cursor to the next page."""

    events: list[AuditEventOut]
    next_cursor: str | None = None
    notice: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """Only when storage is off: what this answer lacks, and how to turn storage on."""


class SandboxEventOut(_Model):
    """One lifecycle transition."""

    timestamp: str
    sandbox_id: str
    sandbox_name: str
    namespace: str
    phase: str
    reason: str
    message: str
    event_id: str


class SandboxEventsOut(_Model):
    """``GET /records/sandbox-events``."""

    events: list[SandboxEventOut]
    next_cursor: str | None = None
    notice: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """Only when storage is off: what this answer lacks, and how to turn storage on."""


class CostSnapshotOut(_Model):
    """One cost snapshot."""

    timestamp: str
    sandbox_id: str
    namespace: str
    owner: str = ""
    template: str = ""
    cpu_hours: float
    mem_gb_hours: float
    estimated_usd: float
    event_id: str


class CostSnapshotsOut(_Model):
    """``GET /records/costs``."""

    snapshots: list[CostSnapshotOut]
    next_cursor: str | None = None
    notice: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """Only when storage is off: what this answer lacks, and how to turn storage on."""


class CostTotalOut(_Model):
    """Summed cost of one group over a window; a sandbox's key is ``namespace/name``."""

    key: str
    cpu_hours: float
    mem_gb_hours: float
    estimated_usd: float
    samples: int


class CostTotalsOut(_Model):
    """``GET /records/costs?groupBy=…`` and ``GET /analytics/costs``."""

    group_by: Literal["sandbox", "namespace", "owner", "template"]
    since: str | None
    until: str | None
    totals: list[CostTotalOut]
    total_usd: float
    notice: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """Only when storage is off: what this answer lacks, and how to turn storage on."""


class CostSeriesPointOut(_Model):
    """One UTC bucket of a cost series (its start, RFC3339)."""

    bucket: str
    cpu_hours: float
    mem_gb_hours: float
    estimated_usd: float
    samples: int


class CostSeriesOut(_Model):
    """One key's points, oldest first; only buckets with costs have one."""

    key: str
    points: list[CostSeriesPointOut]


class CostSeriesResponse(_Model):
    """``GET /records/costs/series``: a series per key, the most expensive first, and totals."""

    bucket: Literal["hour", "day"]
    group_by: Literal["sandbox", "namespace", "owner", "template"]
    since: str
    until: str | None
    series: list[CostSeriesOut]
    totals: list[CostTotalOut]
    total_usd: float


class ErrorOut(BaseModel):
    """Every error: ``{"error": message}``, which the SDK turns into its exception types."""

    error: str
    fields: list[dict[str, Any]] | None = None
