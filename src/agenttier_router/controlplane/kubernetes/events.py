"""Kubernetes Events about Sandboxes: the ones we read become transitions; the ones we write.

An Event (``involvedObject.kind=Sandbox``) becomes a :class:`Transition` whose
phase is the sandbox's phase now and whose reason and message are the
Event's. Its id, ``event/<event uid>/<count>``, is the Event's own: the same
Event seen by any number of Routers, or again after a restart or a re-list,
has the same id, and the storage keeps one copy (no leader needed). An Event
whose ``count`` grows is a new occurrence, so a new id. Its time is the
Event's ``lastTimestamp`` (or ``eventTime``, or ``firstTimestamp``).

The Router writes Events itself as upstream's does (facts, section 5): core/v1
objects with ``generateName: <sandbox>.``, count 1, first = last timestamp =
now, component ``agenttier-router``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ..base import Phase, Sandbox, Template, Transition
from ._api import API_VERSION
from .objects import meta, parse_time

__all__ = [
    "COMPONENT", "FIELD_SELECTOR", "event_about", "router_event", "stand_in", "transition_of_event",
]

COMPONENT = "agenttier-router"
FIELD_SELECTOR = "involvedObject.kind=Sandbox"


def event_about(event: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(namespace, name, uid) of the Sandbox an Event is about, or None if it is not one."""
    involved = event.get("involvedObject")
    if not isinstance(involved, dict) or involved.get("kind") != "Sandbox":
        return None
    name = involved.get("name")
    if not isinstance(name, str) or not name:
        return None
    namespace = involved.get("namespace") or meta(event).get("namespace") or ""
    return str(namespace), name, str(involved.get("uid") or "")


def transition_of_event(event: Mapping[str, Any], sandbox: Sandbox,
                        seen_at: datetime) -> Transition | None:
    """The transition an Event about ``sandbox`` is, or None if it has no uid (not a real one)."""
    uid = meta(event).get("uid")
    if not uid:
        return None
    count = event.get("count")
    count = count if isinstance(count, int) and count > 0 else 1
    when = (parse_time(event.get("lastTimestamp")) or parse_time(event.get("eventTime"))
            or parse_time(event.get("firstTimestamp")) or seen_at)
    reason = event.get("reason")
    message = event.get("message")
    return Transition(sandbox, sandbox.phase, reason if isinstance(reason, str) else "",
                      message if isinstance(message, str) else "", when,
                      id=f"event/{uid}/{count}")


def stand_in(namespace: str, name: str, uid: str, like: Sandbox | None) -> Sandbox:
    """The sandbox of an Event whose Sandbox is gone: its last known state, or a bare one."""
    if like is not None:
        return replace(like, phase=Phase.DELETING)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return Sandbox(name=name, namespace=namespace, template=Template("", 0.0, 0.0),
                   phase=Phase.DELETING, owner="", owner_email="", created_at=epoch,
                   last_activity_at=epoch, uid=uid)


def router_event(sandbox: Mapping[str, Any], reason: str, message: str, *,
                 type_: str = "Normal", now: datetime | None = None) -> dict[str, Any]:
    """The core/v1 Event the Router writes about a Sandbox object (``ShareGranted``...)."""
    metadata = meta(sandbox)
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{metadata.get('name')}.",
                     "namespace": metadata.get("namespace")},
        "involvedObject": {"kind": "Sandbox", "apiVersion": API_VERSION,
                           "name": metadata.get("name"), "namespace": metadata.get("namespace"),
                           "uid": metadata.get("uid"),
                           "resourceVersion": metadata.get("resourceVersion")},
        "reason": reason,
        "message": message,
        "type": type_,
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
    }
