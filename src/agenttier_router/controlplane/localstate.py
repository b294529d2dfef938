"""The local control plane's sandboxes on disk, so that they outlive the Router's process.

One SQLite file, ``sandboxes.db``, in the plane's data directory (no namespace
can be called that: namespaces are RFC 1123 labels, without dots). It holds a
row per sandbox, written at each change, and a heartbeat the plane writes every
few seconds, so that the next start knows roughly when a killed Router stopped::

    store = SandboxStore(root / "sandboxes.db")
    for saved in store.load(): ...
    store.save(saved)
    store.beat(now)

A sandbox's share links are kept in its row, with each token's SHA-256 (never
the token). A file written before links existed reads as sandboxes without any.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from .base import (
    ControlPlaneError,
    Phase,
    Resources,
    Sandbox,
    ShareLevel,
    ShareLink,
    Shares,
    Template,
)

__all__ = ["STATE_FILE", "SandboxStore", "Saved", "SavedLink"]

STATE_FILE = "sandboxes.db"
"""The file, in the data directory, that holds the local plane's sandboxes."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sandboxes (
    namespace TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (namespace, name));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class SavedLink:
    """A share link as the local plane keeps it: the public part and its token's hash."""

    link: ShareLink
    token_hash: str


@dataclass(frozen=True, slots=True)
class Saved:
    """One sandbox as the plane keeps it: the sandbox, and what its next transitions need.

    ``transitions`` is how many it has had (the sequence in their ids);
    ``running_since`` and ``running_id`` are the time and id of the transition
    that began its current running stretch, if it runs.
    """

    sandbox: Sandbox
    transitions: int
    running_since: datetime | None = None
    running_id: str = ""
    links: tuple[SavedLink, ...] = ()
    """Its share links, oldest first (``sandbox.shares.links`` without the hashes)."""


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, ShareLevel]:
    return MappingProxyType(cast(dict[str, ShareLevel], dict(mapping)))


def _encode(saved: Saved) -> str:
    s = saved.sandbox
    t = s.template
    return json.dumps({
        "name": s.name, "namespace": s.namespace, "uid": s.uid, "phase": s.phase.value,
        "owner": s.owner, "owner_email": s.owner_email, "message": s.message,
        "created_at": s.created_at.isoformat(), "last_activity_at": s.last_activity_at.isoformat(),
        "template": {"name": t.name, "cpu": t.cpu, "memory_gib": t.memory_gib,
                     "description": t.description, "image": t.image},
        "shares": {"users": dict(s.shares.users), "groups": dict(s.shares.groups)},
        "transitions": saved.transitions,
        "running_since": saved.running_since.isoformat() if saved.running_since else None,
        "running_id": saved.running_id,
        "links": [{"id": x.link.id, "tokenHash": x.token_hash, "level": x.link.level,
                   "expiresAt": x.link.expires_at.isoformat() if x.link.expires_at else None,
                   "maxUses": x.link.max_uses, "usedCount": x.link.used_count}
                  for x in saved.links],
        # Set by updates; a file written before them has none of these keys (see _decode).
        "labels": dict(s.labels), "annotations": dict(s.annotations),
        "idle_timeout": s.idle_timeout,
        "resources": s.resources.as_dict() if s.resources is not None else None,
        "restart_pending": s.restart_pending,
    }, separators=(",", ":"))


def _decode_link(d: dict[str, Any]) -> SavedLink:
    expires = d["expiresAt"]
    link = ShareLink(id=d["id"], level=d["level"], max_uses=int(d["maxUses"]),
                     used_count=int(d["usedCount"]),
                     expires_at=datetime.fromisoformat(expires) if expires else None)
    return SavedLink(link, str(d["tokenHash"]))


def _resources(raw: dict[str, dict[str, str]] | None) -> Resources | None:
    if raw is None:
        return None
    return Resources(requests=MappingProxyType(dict(raw.get("requests") or {})),
                     limits=MappingProxyType(dict(raw.get("limits") or {})))


def _decode(doc: str) -> Saved:
    d: dict[str, Any] = json.loads(doc)
    t = d["template"]
    links = tuple(_decode_link(x) for x in d.get("links") or ())  # none in an older file
    sandbox = Sandbox(
        name=d["name"], namespace=d["namespace"], uid=d["uid"], phase=Phase(d["phase"]),
        owner=d["owner"], owner_email=d["owner_email"], message=d["message"],
        created_at=datetime.fromisoformat(d["created_at"]),
        last_activity_at=datetime.fromisoformat(d["last_activity_at"]),
        template=Template(name=t["name"], cpu=t["cpu"], memory_gib=t["memory_gib"],
                          description=t["description"], image=t["image"]),
        shares=Shares(users=_frozen(d["shares"]["users"]), groups=_frozen(d["shares"]["groups"]),
                      links=tuple(x.link for x in links)),
        labels=MappingProxyType(dict(d.get("labels") or {})),
        annotations=MappingProxyType(dict(d.get("annotations") or {})),
        idle_timeout=d.get("idle_timeout"),
        resources=_resources(d.get("resources")),
        restart_pending=bool(d.get("restart_pending", False)),
    )
    since = d["running_since"]
    return Saved(sandbox, d["transitions"], datetime.fromisoformat(since) if since else None,
                 d["running_id"], links)


class SandboxStore:
    """Sandboxes and a heartbeat in one SQLite file; every method is thread-safe.

    A file that cannot be opened or read raises :class:`ControlPlaneError`
    naming it: the plane refuses to start rather than forget sandboxes. Once
    closed, writes are ignored (a command still ending after its plane closed).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._closed = False
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                   + _SCHEMA)
        except sqlite3.Error as error:
            raise ControlPlaneError(f"cannot open the sandboxes file {path}: {error}") from None
        path.chmod(0o600)

    def __repr__(self) -> str:
        return f"SandboxStore({str(self.path)!r})"

    def load(self) -> list[Saved]:
        """Every saved sandbox, in the order they were first saved."""
        try:
            with self._lock:
                rows = self._db.execute("SELECT doc FROM sandboxes ORDER BY rowid").fetchall()
            return [_decode(doc) for (doc,) in rows]
        except (sqlite3.Error, ValueError, KeyError, TypeError) as error:
            raise ControlPlaneError(f"cannot read the sandboxes file {self.path}: "
                                    f"{error}") from None

    def heartbeat(self) -> datetime | None:
        """When the last process to use the file last said it was alive, if ever."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='heartbeat'").fetchone()
        return datetime.fromisoformat(row[0]) if row else None

    def save(self, saved: Saved) -> None:
        """Insert or replace one sandbox."""
        s = saved.sandbox
        with self._lock:
            if self._closed:
                return
            self._db.execute("INSERT OR REPLACE INTO sandboxes (namespace, name, doc) "
                             "VALUES (?, ?, ?)", (s.namespace, s.name, _encode(saved)))

    def forget(self, namespace: str, name: str) -> None:
        """Remove one sandbox."""
        with self._lock:
            if self._closed:
                return
            self._db.execute("DELETE FROM sandboxes WHERE namespace=? AND name=?",
                             (namespace, name))

    def beat(self, at: datetime) -> None:
        """Say the process is alive at ``at``."""
        with self._lock:
            if self._closed:
                return
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('heartbeat', ?)",
                             (at.isoformat(),))

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._closed = True
            self._db.close()
