"""Sandbox objects as the API server sends them -> the contract's :class:`Sandbox` and transitions.

**Why every id and time here is derived from the object.** Any number of
Routers (and ``agenttier-router watch`` recorders) watch the same Sandboxes,
and each restarts or re-lists whenever it likes. None of them is the one that
records: each emits every transition it sees, and the storage's unique index
on ``event_id`` keeps one copy. That needs no leader election only because the
id (and the time) of a transition is a function of the object alone, never of
who observed it or when:

- ``k8s/<uid>/<phase>/run:<lastActivityTimestamp>/<restartCount>`` for a phase
  (``new:<creationTimestamp>`` in place of ``run:...`` before the first run).
  The controller sets ``lastActivityTimestamp`` on each entry into Running, and
  counts infrastructure restarts, so each entry into a phase gets a new id
  (Creating, Running, Stopped, Creating on resume, Running again...); seeing the
  same state again, from any replica, gives the same id. Kubernetes times have
  whole seconds, so this relies on a pod never starting twice within a second.
- ``k8s/<uid>/Deleting`` once the object has a ``deletionTimestamp`` or is gone.

The transition's time is taken from the object too: ``startedAt`` for Running,
``creationTimestamp`` for the first Creating, ``deletionTimestamp`` for
Deleting, otherwise the time of the newest write to the status subresource
recorded in ``managedFields``; only when none is there is it the time it was
seen. (Known limit: a sandbox that fails to start twice in a row with no run in
between, and no restart counted, gets one Error record, not two.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from ..base import Phase, Sandbox, ShareLevel, ShareLink, Shares, Template, Transition
from .updates import update_fields

__all__ = [
    "PHASES",
    "format_time",
    "link_hash",
    "link_of",
    "meta",
    "parse_time",
    "phase_of",
    "sandbox_from",
    "shares_from",
    "transition_for",
]

PHASES: Mapping[str, Phase] = MappingProxyType({
    p.value: p for p in (Phase.CREATING, Phase.RUNNING, Phase.STOPPED, Phase.ERROR,
                         Phase.DELETING)
})
"""The phases a Sandbox's ``status.phase`` may hold (``""`` means not reconciled yet)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """An object's metadata (an empty mapping if it has none)."""
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}


def _section(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def parse_time(value: object) -> datetime | None:
    """A Kubernetes RFC 3339 time (``2026-01-01T00:00:00Z``) as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def format_time(value: datetime) -> str:
    """An aware datetime as RFC 3339 in UTC (``…Z``), with microseconds when it has any."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if utc.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def link_hash(entry: Mapping[str, Any]) -> str:
    """The token hash of a ``spec.sharing.shareLinks`` entry: its ``tokenHash``, or the SHA-256
    of the deprecated plain ``token`` an older writer left; "" when it has neither."""
    stored = entry.get("tokenHash")
    if isinstance(stored, str) and stored:
        return stored.lower()
    token = entry.get("token")
    if isinstance(token, str) and token:
        return hashlib.sha256(token.encode("utf-8")).hexdigest()
    return ""


def link_of(entry: object) -> ShareLink | None:
    """A ``spec.sharing.shareLinks`` entry as the contract's :class:`ShareLink` (never its
    token or hash), or None for one of an unknown shape."""
    if not isinstance(entry, dict):
        return None
    link_id, level = entry.get("id"), entry.get("level")
    max_uses, used = entry.get("maxUses", 0), entry.get("usedCount", 0)
    if not isinstance(link_id, str) or not link_id or level not in ("viewer", "collaborator"):
        return None
    expires = parse_time(entry.get("expiresAt"))
    if expires is None and entry.get("expiresAt"):
        return None  # an expiry we cannot read must not make a link work for ever
    counts = [n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else 0
              for n in (max_uses, used)]
    return ShareLink(id=link_id, level=level, expires_at=expires,
                     max_uses=counts[0], used_count=counts[1])


def phase_of(obj: Mapping[str, Any]) -> Phase | str | None:
    """The object's phase: a :class:`Phase`; None before the first reconcile; or the unknown
    string itself. A deletionTimestamp makes it Deleting, whatever the status says."""
    if meta(obj).get("deletionTimestamp"):
        return Phase.DELETING
    status = obj.get("status")
    if status is None:
        return None
    if not isinstance(status, dict):
        return repr(status)
    raw = status.get("phase") or ""
    if raw == "":
        return None
    return PHASES.get(raw, str(raw)) if isinstance(raw, str) else repr(raw)


def shares_from(spec: Mapping[str, Any]) -> Shares:
    """The users' and groups' shares and the share links in ``spec.sharing`` (entries of an
    unknown shape skipped)."""
    sharing = _section(spec, "sharing")
    found: dict[str, dict[str, ShareLevel]] = {"users": {}, "groups": {}}
    for key, into in found.items():
        entries = sharing.get(key)
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            identity, level = entry.get("identity"), entry.get("level")
            if isinstance(identity, str) and level in ("viewer", "collaborator"):
                into[identity] = level
    raw_links = sharing.get("shareLinks")
    links = (link_of(e) for e in (raw_links if isinstance(raw_links, list) else []))
    return Shares(users=MappingProxyType(found["users"]),
                  groups=MappingProxyType(found["groups"]),
                  links=tuple(link for link in links if link is not None))


def sandbox_from(obj: Mapping[str, Any], template: Template, phase: Phase) -> Sandbox:
    """The contract's view of one Sandbox object, in ``phase`` (see :func:`phase_of`)."""
    metadata = meta(obj)
    spec = _section(obj, "spec")
    status = _section(obj, "status")
    created_by = _section(spec, "createdBy")
    created = parse_time(metadata.get("creationTimestamp")) or _EPOCH
    message = status.get("message")
    return Sandbox(
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        template=template,
        phase=phase,
        owner=str(created_by.get("sub") or ""),
        owner_email=str(created_by.get("email") or ""),
        created_at=created,
        last_activity_at=parse_time(status.get("lastActivityTimestamp")) or created,
        message=message if isinstance(message, str) else "",
        shares=shares_from(spec),
        uid=str(metadata.get("uid", "")),
        **update_fields(obj),
    )


def _status_written_at(obj: Mapping[str, Any]) -> datetime | None:
    """When the status subresource was last written, from ``managedFields``."""
    newest: datetime | None = None
    fields = meta(obj).get("managedFields")
    for entry in fields if isinstance(fields, list) else []:
        if isinstance(entry, dict) and entry.get("subresource") == "status":
            when = parse_time(entry.get("time"))
            if when is not None and (newest is None or when > newest):
                newest = when
    return newest


def transition_for(obj: Mapping[str, Any], sandbox: Sandbox, seen_at: datetime) -> Transition:
    """The transition into ``sandbox.phase`` that ``obj`` shows, with an id and a time derived
    from the object alone (see the module's docstring for why)."""
    metadata = meta(obj)
    status = _section(obj, "status")
    uid = sandbox.uid
    phase = sandbox.phase
    message = sandbox.message
    if phase is Phase.DELETING:
        when = parse_time(metadata.get("deletionTimestamp"))
        return Transition(sandbox, phase, "Deleting", "", when or seen_at,
                          id=f"k8s/{uid}/Deleting")
    last_run = status.get("lastActivityTimestamp")
    marker = f"run:{last_run}" if last_run else f"new:{metadata.get('creationTimestamp') or ''}"
    restarts = status.get("restartCount") or 0
    when = None
    reason = phase.value
    if phase is Phase.RUNNING:
        when = parse_time(status.get("startedAt"))
    elif phase is Phase.CREATING:
        if message == "Resuming":
            reason = "Resuming"
        elif not status.get("lastActivityTimestamp") and not restarts:
            when = parse_time(metadata.get("creationTimestamp"))
    when = when or _status_written_at(obj) or seen_at
    return Transition(sandbox, phase, reason, message, when,
                      id=f"k8s/{uid}/{phase.value}/{marker}/{restarts}")
