"""The JSON of the SDK's newer endpoints: templates, update, files, bulk, share links, API keys,
analytics and admin, with the wire names the SDK's models parse.

Most fields are camelCase on the wire (``restartRequired``, ``isDir``); the
analytics ones are snake_case (``total_sandboxes``), because that is what the
SDK's ``UsageAnalytics`` and ``CostEstimate`` read. Lists are always lists,
never ``null`` (a ``null`` breaks the SDK's models). Request models ignore
fields they do not know, except the API-key body, which refuses them as the
Go Router does; it accepts both ``scopes`` (the Router's name) and
``actionGroups`` (the SDK's). ``ACTION_GROUPS`` is re-exported from
:mod:`agenttier_router.apikeys`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from agenttier_router.apikeys import ACTION_GROUPS

from .durations import parse_go_duration
from .models import CostTotalOut, CreateSandbox, SandboxOut, ShareLinkOut

__all__ = [
    "ACTION_GROUPS",
    "AdminSandboxOut",
    "AdminSandboxesOut",
    "AdminSharingEntry",
    "AdminSharingOut",
    "ApiKeyCreateRequest",
    "ApiKeyCreatedOut",
    "ApiKeyOut",
    "ApiKeyRevokedOut",
    "ApiKeysOut",
    "BulkActionOut",
    "BulkActionRequest",
    "BulkActionResult",
    "BulkCreateOut",
    "BulkCreateRequest",
    "BulkCreateResult",
    "CostEstimateOut",
    "FileEntryOut",
    "FileListOut",
    "FileWrittenOut",
    "PatchRequest",
    "PatchResultOut",
    "QuotaViolation",
    "QuotaWouldExceedOut",
    "RedeemRequest",
    "RedeemedOut",
    "ShareLinkCreatedOut",
    "ShareLinkOut",
    "ShareLinkRequest",
    "TemplateCostOut",
    "TemplateOut",
    "TemplatesOut",
    "UsageOut",
]


_LEVEL = Literal["viewer", "collaborator"]
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class _Snake(BaseModel):
    """Wire names as written: the analytics models are snake_case in the SDK."""

    model_config = ConfigDict(extra="ignore")


# -- templates -------------------------------------------------------------------------------

class TemplateOut(_Model):
    """A template, as the SDK's ``Template`` reads it; ``spec`` is the template in full."""

    name: str
    description: str
    image: str
    resource_version: str
    spec: dict[str, Any]


class TemplatesOut(_Model):
    """``GET /templates``."""

    templates: list[TemplateOut]


# -- update ----------------------------------------------------------------------------------

class PatchRequest(_Model):
    """``PATCH /sandboxes/{id}``: the SDK's ``Sandbox.update`` body. ``{}`` counts as present.

    Labels and annotations are merged into the sandbox's; a ``null`` value removes that key.
    """

    idle_timeout: str | None = Field(default=None, max_length=32)
    resources: dict[str, Any] | None = None
    labels: dict[str, str | None] | None = None
    annotations: dict[str, str | None] | None = None

    def present(self) -> list[str]:
        """The wire names of the fields the body carries (non-null)."""
        return [to_camel(name) for name in ("idle_timeout", "resources", "labels", "annotations")
                if getattr(self, name) is not None]


class PatchResultOut(_Model):
    """What an update did: when each field takes effect, and whether a restart is needed."""

    sandbox_id: str
    applied: dict[str, Literal["immediately", "on-restart"]]
    restart_required: bool
    message: str | None = None


# -- files -----------------------------------------------------------------------------------

class FileEntryOut(_Model):
    """One directory entry, as the SDK's ``FileEntry`` reads it."""

    name: str
    size: int
    is_dir: bool
    mode: str
    modified_at: int


class FileListOut(_Model):
    """``GET …/files/?path=``."""

    path: str
    entries: list[FileEntryOut]


class FileWrittenOut(_Model):
    """``PUT …/files/<path>``: where, and how many bytes."""

    path: str
    bytes: int


# -- bulk ------------------------------------------------------------------------------------

class BulkCreateRequest(_Model):
    """``POST /sandboxes/bulk``: create bodies, each as ``POST /sandboxes`` takes it."""

    items: list[CreateSandbox] = Field(min_length=1, max_length=100)


class BulkCreateResult(_Model):
    """One item's outcome, as the SDK's ``BulkCreateResultItem`` reads it."""

    index: int
    status: Literal["created", "error"]
    sandbox_id: str | None = None
    error: str | None = None


class BulkCreateOut(_Model):
    """``POST /sandboxes/bulk``: one result per item, in order."""

    results: list[BulkCreateResult]


class QuotaViolation(_Model):
    """One reason a batch was refused."""

    code: str
    message: str


class QuotaWouldExceedOut(_Model):
    """409 from ``POST /sandboxes/bulk`` when the batch would pass a quota: nothing was made."""

    error: Literal["quota_would_exceed"] = "quota_would_exceed"
    namespace: str
    violations: list[QuotaViolation]


class BulkActionRequest(_Model):
    """``POST /sandboxes/bulk-action``: stop, resume or delete several sandboxes."""

    action: Literal["stop", "resume", "delete"]
    ids: list[str] = Field(min_length=1, max_length=100)


class BulkActionResult(_Model):
    """One sandbox's outcome, as the SDK's ``BulkActionResultItem`` reads it."""

    id: str
    status: Literal["ok", "error"]
    error: str | None = None


class BulkActionOut(_Model):
    """``POST /sandboxes/bulk-action``: one result per id, in order."""

    results: list[BulkActionResult]


# -- share links -----------------------------------------------------------------------------

_MAX_LINK_USES = 1_000_000


class ShareLinkRequest(_Model):
    """``POST …/share-links``: the level it grants (``viewer`` when absent), how long it lives
    (a Go duration > 0; none: for ever) and how often it works (0: without limit).

    A bad field fails with the Go Router's message for it.
    """

    level: _LEVEL = "viewer"
    expires_in: str | None = None
    max_uses: int = 0

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        if value is None or value == "":
            return "viewer"  # Go's zero value: the default
        if value not in ("viewer", "collaborator"):
            raise PydanticCustomError("level", 'level must be "viewer" or "collaborator"')
        return value

    @field_validator("expires_in", mode="before")
    @classmethod
    def _expires_in(cls, value: object) -> object:
        if value is None or value == "":
            return None
        try:
            if isinstance(value, str) and len(value) <= 64 \
                    and parse_go_duration(value) > timedelta(0):
                return value
        except ValueError:
            pass
        raise PydanticCustomError("expiresIn",
                                  'expiresIn must be a positive Go duration (e.g. "24h")')

    @field_validator("max_uses", mode="before")
    @classmethod
    def _max_uses(cls, value: object) -> object:
        if value is None:
            return 0
        if type(value) is not int or value < 0:
            raise PydanticCustomError("maxUses", "maxUses must be >= 0 (0 = unlimited)")
        if value > _MAX_LINK_USES:
            raise PydanticCustomError("maxUses", f"maxUses must be at most {_MAX_LINK_USES}")
        return value

    def lifetime(self) -> timedelta | None:
        """How long the link lives, or None for ever."""
        return parse_go_duration(self.expires_in) if self.expires_in else None


class ShareLinkCreatedOut(_Model):
    """A new link, with its token: shown this once, only its SHA-256 is kept."""

    id: str
    token: str
    level: _LEVEL
    expires_at: str | None
    max_uses: int
    warning: str


class RedeemRequest(_Model):
    """``POST /share-links/redeem``: the token a link's creator was shown."""

    token: str = Field(min_length=1, max_length=1024)


class RedeemedOut(SandboxOut):
    """What redeeming a link gave the caller: the sandbox, in the SDK's ``SandboxSummary``
    shape, plus the ``level`` the caller now holds on it and the ``linkId`` used."""

    level: _LEVEL
    link_id: str


# -- API keys --------------------------------------------------------------------------------

class ApiKeyCreateRequest(_Model):
    """``POST /user/api-keys``. Unknown fields are refused; ``scopes`` and ``actionGroups``
    are the same thing (the Router's name and the SDK's). :meth:`problem` says what is wrong
    with the values, so that the answer is ``unknown action group: X`` as the Go Router's."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    name: str | None = Field(default=None, max_length=253)
    expires_in: str | None = Field(default=None, max_length=32)
    sandbox_id: str | None = Field(default=None, max_length=253)
    scopes: list[str] | None = Field(default=None, max_length=32)
    action_groups: list[str] | None = Field(default=None, max_length=32)

    def named_groups(self) -> list[str] | None:
        """The groups sent, under either name; None if neither was."""
        return self.scopes if self.scopes is not None else self.action_groups

    def problem(self) -> str | None:
        """What is wrong with the body's values (a 400), or None."""
        named = self.named_groups()
        if self.name and _CONTROL.search(self.name):
            return "name must be plain text (no control characters)"
        if self.scopes is not None and self.action_groups is not None \
                and sorted(self.scopes) != sorted(self.action_groups):
            return "scopes and actionGroups differ; send one of them"
        if named is not None and not self.sandbox_id:
            return "scopes require sandboxId"
        for group in named or []:
            if group == "delete":
                return ("delete is not an action group: a sandbox-scoped key can never "
                        "delete its sandbox")
            if group not in ACTION_GROUPS:
                return f"unknown action group: {group[:64]}"
        return None

    def groups(self) -> list[str]:
        """A scoped key's action groups, in the canonical order: all of them when none were
        named; [] for a user-level key (no ``sandboxId``)."""
        if not self.sandbox_id:
            return []
        named = self.named_groups()
        return sorted(set(named), key=ACTION_GROUPS.index) if named else list(ACTION_GROUPS)


class ApiKeyOut(_Model):
    """A key's metadata (the SDK's ``APIKeyMetadata``): never the key or its hash. Empty
    optional fields are left out, as the Go Router's ``omitempty`` does."""

    id: str
    user_id: str
    name: str
    sandbox_id: str | None = None
    action_groups: list[str] = Field(default_factory=list)
    created_at: str
    expires_at: str | None = None
    last_used_at: str | None = None

    @model_serializer(mode="wrap")
    def _omit_empty(self, handler: SerializerFunctionWrapHandler) -> Any:
        shown = handler(self)
        if isinstance(shown, dict):
            for name in ("sandboxId", "sandbox_id", "actionGroups", "action_groups",
                         "expiresAt", "expires_at", "lastUsedAt", "last_used_at"):
                if name in shown and not shown[name]:
                    del shown[name]
        return shown


class ApiKeyCreatedOut(_Model):
    """A new key (the SDK's ``APIKeyCreated``): ``key`` is shown this once."""

    id: str
    key: str
    name: str
    sandbox_id: str
    action_groups: list[str]
    created_at: str
    expires_at: str | None
    warning: str


class ApiKeysOut(_Model):
    """``GET /user/api-keys``: the caller's keys."""

    keys: list[ApiKeyOut]


class ApiKeyRevokedOut(_Model):
    """``DELETE /user/api-keys/{id}``."""

    status: Literal["revoked"] = "revoked"
    id: str


# -- analytics -------------------------------------------------------------------------------

class UsageOut(_Snake):
    """``GET /analytics/usage``, as the SDK's ``UsageAnalytics`` reads it."""

    total_sandboxes: int
    status_breakdown: dict[str, int]
    template_breakdown: dict[str, int]
    avg_startup_ms: int
    startup_sample_count: int


class TemplateCostOut(_Snake):
    """One template's running cost (the SDK's ``TemplateCost``)."""

    template: str
    hourly_cost: float
    count: int


class CostEstimateOut(_Snake):
    """``GET /analytics/costs``: the SDK's ``CostEstimate``, priced from each sandbox's template,
    plus what the store's snapshots add up to over a window, and the prices used; the SDK
    ignores those extra fields (``groupBy``, ``since``, ``until``, ``totals``, ``totalUsd``,
    ``prices``)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    running_sandboxes: int
    stopped_sandboxes: int
    total_hourly_compute: float
    total_hourly_storage: float
    total_estimated_monthly: float
    per_template: list[TemplateCostOut]
    group_by: Literal["sandbox", "namespace", "owner", "template"] = Field(
        default="sandbox", alias="groupBy")
    since: str | None = None
    until: str | None = None
    totals: list[CostTotalOut] = Field(default_factory=list)
    total_usd: float = Field(default=0.0, alias="totalUsd")
    prices: dict[str, float] = Field(default_factory=dict)
    notice: str | None = None
    """Set while storage is off: the window's totals are then empty, and it says how to fix it."""

    @model_serializer(mode="wrap")
    def _without_an_empty_notice(self, handler: SerializerFunctionWrapHandler) -> Any:
        shown = handler(self)
        if isinstance(shown, dict) and shown.get("notice") is None:
            shown.pop("notice", None)
        return shown


# -- admin -----------------------------------------------------------------------------------

class AdminSandboxOut(SandboxOut):
    """A sandbox in the admin list: the SDK's ``SandboxSummary`` plus its scoped keys."""

    scoped_api_keys: list[ApiKeyOut] = Field(default_factory=list)


class AdminSandboxesOut(_Model):
    """``GET /admin/sandboxes``."""

    sandboxes: list[AdminSandboxOut]


class AdminSharingEntry(_Model):
    """One sandbox's shares and share links."""

    sandbox_id: str
    namespace: str
    owner: str
    users: list[dict[str, str]]
    groups: list[dict[str, str]]
    share_links: list[ShareLinkOut]


class AdminSharingOut(_Model):
    """``GET /admin/sharing``: every sandbox that is shared or has links."""

    sandboxes: list[AdminSharingEntry]
