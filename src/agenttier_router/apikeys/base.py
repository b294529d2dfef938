"""Minted API keys: what one is, how it is made, and what a store of them must do.

::

    key, minted = mint(user_id="alice", email="a@x.io", name="ci", expires_in="720h")
    store.add(minted)              # only the SHA-256 of ``key`` is kept
    store.identify(key)            # -> minted, until it expires or is removed

A key is ``atk_`` and 43 characters of unpadded base64url (32 random bytes);
its id is ``agenttier-apikey-`` and the first 40 hex digits of its SHA-256.
The key itself is shown once, by whoever minted it, and never stored: a store
keeps the full SHA-256 hex digest and the metadata. A sandbox-scoped key names
its sandbox (``sandbox``, ``namespace``) and the action groups it may use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

__all__ = [
    "ACTION_GROUPS",
    "ID_PREFIX",
    "KEY_PREFIX",
    "KeyStoreUnavailable",
    "MintedKey",
    "MintedKeyStore",
    "digest_of",
    "find_by_id",
    "find_presented",
    "id_of",
    "mint",
    "oldest_first",
]

KEY_PREFIX = "atk_"
"""How every minted key starts (the keys file's keys may look like anything)."""
ID_PREFIX = "agenttier-apikey-"
"""How every key id starts; it is also the key's Secret name on Kubernetes."""
ACTION_GROUPS = ("run-command", "files:read", "files:write", "ports", "agent:invoke",
                 "agent:configure", "resume", "stop")
"""What a sandbox-scoped key may be limited to; no groups named means all of them."""


class KeyStoreUnavailable(Exception):
    """The store of minted keys cannot be written or read now (disk, API server)."""


def digest_of(key: str) -> str:
    """The hex SHA-256 of ``key``: all a store keeps of it."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def id_of(key: str) -> str:
    """The id of ``key``: ``agenttier-apikey-`` + the first 40 hex digits of its SHA-256."""
    return ID_PREFIX + digest_of(key)[:40]


def _when(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class MintedKey:
    """A minted key's stored form: its digest and metadata, never the key itself."""

    id: str
    digest: str
    """The hex SHA-256 of the key."""
    user_id: str
    email: str
    name: str
    created_at: datetime
    expires_at: datetime | None = None
    sandbox: str = ""
    """The sandbox a scoped key reaches; "" for a user-level key."""
    namespace: str = ""
    """The scoped sandbox's namespace; "" for a user-level key."""
    action_groups: tuple[str, ...] = field(default_factory=tuple)
    """What a scoped key may do there; () for a user-level key."""

    def __repr__(self) -> str:  # the digest stays out of logs too
        where = f", sandbox={self.namespace}/{self.sandbox}" if self.sandbox else ""
        return f"MintedKey({self.id!r}, user={self.user_id!r}, name={self.name!r}{where})"

    @property
    def scoped(self) -> bool:
        """Whether the key reaches one sandbox only."""
        return bool(self.sandbox)

    def expired(self, now: datetime | None = None) -> bool:
        """Whether the key has expired (at ``now``, default the current time)."""
        return self.expires_at is not None and (now or datetime.now(UTC)) >= self.expires_at

    def matches(self, key: str) -> bool:
        """Whether ``key`` is this key: its digest compared in constant time."""
        return hmac.compare_digest(self.digest, digest_of(key))

    def to_record(self) -> dict[str, Any]:
        """The JSON a store keeps (with the digest)."""
        return {"id": self.id, "hash": self.digest, "userId": self.user_id, "email": self.email,
                "name": self.name, "createdAt": self.created_at.isoformat(),
                "expiresAt": self.expires_at.isoformat() if self.expires_at else None,
                "sandboxId": self.sandbox, "namespace": self.namespace,
                "actionGroups": list(self.action_groups)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> MintedKey:
        """Read :meth:`to_record`'s JSON back; ``ValueError`` (or ``KeyError``) if malformed."""
        key_id, digest = str(record["id"]), str(record["hash"])
        if not key_id.startswith(ID_PREFIX) or not re.fullmatch(r"[0-9a-f]{64}", digest) \
                or key_id != ID_PREFIX + digest[:40]:
            raise ValueError(f"key record {key_id!r} has a malformed id or hash")
        created = _when(record["createdAt"])
        groups = record.get("actionGroups") or []
        if created is None or not isinstance(groups, list):
            raise ValueError(f"key record {key_id!r} is malformed")
        return cls(id=key_id, digest=digest, user_id=str(record["userId"]),
                   email=str(record.get("email") or ""), name=str(record.get("name") or ""),
                   created_at=created, expires_at=_when(record.get("expiresAt")),
                   sandbox=str(record.get("sandboxId") or ""),
                   namespace=str(record.get("namespace") or ""),
                   action_groups=tuple(str(g) for g in groups))


def mint(*, user_id: str, email: str, name: str, expires_in: timedelta | None = None,
         sandbox: str = "", namespace: str = "", action_groups: Sequence[str] = (),
         now: datetime | None = None) -> tuple[str, MintedKey]:
    """A new random key and its stored form: ``(key, minted)``. The key is shown once."""
    key = KEY_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    created = now or datetime.now(UTC)
    return key, MintedKey(
        id=id_of(key), digest=digest_of(key), user_id=user_id, email=email, name=name,
        created_at=created, expires_at=created + expires_in if expires_in else None,
        sandbox=sandbox, namespace=namespace, action_groups=tuple(action_groups))


class MintedKeyStore(Protocol):
    """Where minted keys are kept: a file on the local plane, Secrets on Kubernetes.

    Reads (:meth:`identify`, :meth:`get`, :meth:`keys`) are served from memory
    and never block on a disk or the network; writes raise
    :class:`KeyStoreUnavailable` when they cannot be made.
    """

    def identify(self, presented: str) -> MintedKey | None:
        """The key ``presented`` is, if it is known and has not expired; else None."""

    def get(self, key_id: str) -> MintedKey | None:
        """One key by id (expired or not), or None."""

    def all_keys(self) -> list[MintedKey]:
        """Every key, oldest first."""

    def add(self, key: MintedKey) -> None:
        """Keep a new key; it works at once on this Router."""

    def remove(self, key_id: str) -> bool:
        """Forget a key (revoke it); False if it was not there. It stops at once here."""

    def close(self) -> None:
        """Stop any background work."""


def find_presented(keys: Mapping[str, MintedKey], presented: str) -> MintedKey | None:
    """The unexpired key of ``keys`` (by id) that ``presented`` is, or None."""
    if not presented.startswith(KEY_PREFIX):
        return None
    key = keys.get(id_of(presented))
    if key is None or not key.matches(presented) or key.expired():
        return None
    return key


def find_by_id(keys: Mapping[str, MintedKey], key_id: str) -> MintedKey | None:
    """One key of ``keys`` by id, or None."""
    return keys.get(key_id) if key_id.startswith(ID_PREFIX) else None


def oldest_first(keys: Iterable[MintedKey]) -> list[MintedKey]:
    """``keys`` ordered by creation, then id."""
    return sorted(keys, key=lambda k: (k.created_at, k.id))
