"""Who is calling, and what they may do to a sandbox.

API keys arrive in ``X-API-Key`` and are looked up in a keys file (YAML or
JSON: a list of ``{key, subject, email, groups}``), then among the keys callers
minted (:mod:`agenttier_router.apikeys`). Keys are compared in
constant time and never logged. Members of the admin group are admins.
``--dev-auth`` makes every request a local admin, for evaluation only.

Authorization follows the Go Router: owners, admins and share grantees may
act on a sandbox, by level (a viewer reads; a collaborator also execs, stops
and resumes); a user grant matches the caller's subject or email, a group
grant one of the caller's groups.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from agenttier_router.controlplane import Sandbox

__all__ = ["DEV_IDENTITY", "Access", "Identity", "KeyScope", "KeyStore", "access", "load_keys"]


@dataclass(frozen=True, slots=True)
class KeyScope:
    """What a sandbox-scoped API key reaches: one sandbox, and only its action groups."""

    sandbox: str
    namespace: str
    groups: frozenset[str]


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller; ``key_id`` is set for a minted API key, ``scope`` for a
    sandbox-scoped one."""

    subject: str
    email: str = ""
    name: str = ""
    groups: tuple[str, ...] = field(default_factory=tuple)
    is_admin: bool = False
    key_id: str = ""
    scope: KeyScope | None = None


DEV_IDENTITY = Identity(subject="dev", email="dev@localhost", name="Local developer",
                        groups=("dev",), is_admin=True)
"""Who every request is under ``--dev-auth``."""


class KeyStore:
    """The API keys a Router accepts, each mapped to an identity.

    Only SHA-256 digests of the keys are kept, and a presented key is
    compared against every digest with :func:`hmac.compare_digest`, so the
    time taken does not depend on which key matched, or how closely.
    """

    def __init__(self, entries: Iterable[tuple[str, Identity]]) -> None:
        self._digests = [(_digest(key), identity) for key, identity in entries]

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"KeyStore({len(self._digests)} keys)"

    def identify(self, presented: str | None) -> Identity | None:
        """Return the identity ``presented`` belongs to, or None."""
        if not presented:
            return None
        digest = _digest(presented)
        found = None
        for known, identity in self._digests:  # no early exit: constant time per store
            if hmac.compare_digest(known, digest):
                found = identity
        return found


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


# Bidirectional controls (U+200E/F, U+202A-E, U+2066-9) reorder what a terminal shows.
_BIDI = frozenset(chr(c) for c in (0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)))


def _control(text: str) -> str | None:
    """The first control character in ``text`` (C0, DEL, C1 or a bidi control), or None."""
    for char in text:
        if char in _BIDI or unicodedata.category(char) == "Cc":
            return char
    return None


def _check_text(where: str, name: str, value: str, *, secret: bool = False) -> None:
    """Refuse a field holding a control character: ``al\0ice`` would be stored as ``alice``."""
    char = _control(value)
    if char is None:
        return
    shown = "" if secret else f" ({value[:64]!r})"
    raise ValueError(f"{where}: {name!r}{shown} holds the control character U+{ord(char):04X}; "
                     "identities must be plain text")


def load_keys(path: str | Path, admin_group: str) -> KeyStore:
    """Read a keys file: a YAML or JSON list of ``{key, subject, email, groups}``.

    Raises ``ValueError`` naming the file and the entry for anything malformed
    (never showing a key), a control character (such as NUL) in any field
    included.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read API keys file {path}: {error}") from None
    if not isinstance(data, list):
        raise ValueError(
            f"API keys file {path} must hold a list of {{key, subject, email, groups}}"
        )
    entries: list[tuple[str, Identity]] = []
    seen: set[str] = set()
    for index, entry in enumerate(data):
        where = f"API keys file {path}, entry {index}"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: must be a mapping")
        key, subject = entry.get("key"), entry.get("subject")
        if not isinstance(key, str) or len(key) < 16:
            raise ValueError(f"{where}: 'key' must be a string of at least 16 characters")
        if not isinstance(subject, str) or not subject:
            raise ValueError(f"{where}: 'subject' must be a non-empty string")
        if key in seen:
            raise ValueError(f"{where}: the same key appears twice")
        seen.add(key)
        email = entry.get("email") or ""
        groups = entry.get("groups") or []
        if not isinstance(email, str):
            raise ValueError(f"{where}: 'email' must be a string")
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ValueError(f"{where}: 'groups' must be a list of strings")
        name = entry.get("name") if isinstance(entry.get("name"), str) else ""
        _check_text(where, "key", key, secret=True)
        for field_name, value in (("subject", subject), ("email", email), ("name", name or "")):
            _check_text(where, field_name, value)
        for group in groups:
            _check_text(where, "groups", group)
        entries.append((key, Identity(subject=subject, email=email, name=name or "",
                                      groups=tuple(groups), is_admin=admin_group in groups)))
    return KeyStore(entries)


class Access(enum.IntEnum):
    """What a caller may do to one sandbox, each level including the ones below."""

    NONE = 0
    """Not even know it exists: the API answers 404."""
    VIEW = 1
    """Read it and its sharing."""
    OPERATE = 2
    """Also exec in it, stop and resume it."""
    OWN = 3
    """Also delete it and change its sharing."""


def access(identity: Identity, sandbox: Sandbox) -> Access:
    """Return what ``identity`` may do to ``sandbox``."""
    if identity.is_admin or identity.subject == sandbox.owner:
        return Access.OWN
    levels = [level for who, level in sandbox.shares.users.items()
              if who in (identity.subject, identity.email) and who]
    levels += [level for group, level in sandbox.shares.groups.items() if group in identity.groups]
    if "collaborator" in levels:
        return Access.OPERATE
    if "viewer" in levels:
        return Access.VIEW
    return Access.NONE
