"""What both planes decide the same way about share links: the checks on a new one, its id,
and whether a redeem may go ahead.

A plane is only ever given the SHA-256 of a link's token (64 lowercase hex
digits), never the token itself::

    check_new_link(token_hash, "viewer", expires_at, max_uses=1)
    link_id = new_link_id()
    level = redeem_decision(sandbox, link, "bob", now)   # or ShareLinkRefused
"""

from __future__ import annotations

import hmac
import re
import secrets
from datetime import datetime
from typing import Literal

from .base import InvalidRequest, Sandbox, ShareLevel, ShareLink, ShareLinkRefused

__all__ = [
    "MAX_USES",
    "check_kind",
    "check_new_link",
    "is_token_hash",
    "new_link_id",
    "redeem_decision",
    "same_hash",
]

MAX_USES = 1_000_000
"""The most uses a link may allow (0 means no limit)."""

_HASH = re.compile(r"[0-9a-f]{64}")
_LEVELS = ("viewer", "collaborator")


def is_token_hash(value: object) -> bool:
    """Whether ``value`` looks like a SHA-256 in lowercase hex (what a plane stores)."""
    return isinstance(value, str) and _HASH.fullmatch(value) is not None


def same_hash(stored: str, given: str) -> bool:
    """Compare two hashes in constant time (a timing difference would hint at a stored one)."""
    return hmac.compare_digest(stored.encode("ascii", "replace"), given.encode("ascii", "replace"))


def new_link_id() -> str:
    """A new link id: 16 hex digits, as upstream's."""
    return secrets.token_hex(8)


def check_kind(kind: object) -> None:
    """Refuse an unshare ``kind`` other than None, ``user`` or ``group``."""
    if kind not in (None, "user", "group"):
        raise InvalidRequest(f"kind must be 'user', 'group' or None (got {kind!r})")


def check_new_link(token_hash: object, level: object, expires_at: object,
                   max_uses: object) -> None:
    """Refuse a new link with a bad hash, level, expiry (naive) or ``max_uses``."""
    if not is_token_hash(token_hash):
        raise InvalidRequest("token_hash must be a SHA-256 in 64 lowercase hex digits")
    if level not in _LEVELS:
        raise InvalidRequest(f"level must be 'viewer' or 'collaborator' (got {level!r})")
    if expires_at is not None and (not isinstance(expires_at, datetime)
                                   or expires_at.tzinfo is None):
        raise InvalidRequest("expires_at must be None or a datetime with a time zone")
    if (isinstance(max_uses, bool) or not isinstance(max_uses, int)
            or not 0 <= max_uses <= MAX_USES):
        raise InvalidRequest(f"maxUses must be >= 0 (0 = unlimited) and at most {MAX_USES} "
                             f"(got {max_uses!r})")


def _refuse(why: Literal["expired", "exhausted", "owner"], message: str, sandbox: Sandbox,
            link: ShareLink) -> ShareLinkRefused:
    return ShareLinkRefused(message, reason=why, sandbox=sandbox, link=link)


def redeem_decision(sandbox: Sandbox, link: ShareLink, identity: str,
                    now: datetime) -> ShareLevel:
    """The user share ``identity`` holds once it redeems ``link``, or :class:`ShareLinkRefused`.

    Refused, in this order: the owner (a link is for others); a link past its
    ``expires_at``; a link used ``max_uses`` times. A link never lowers a share the
    caller already holds as a user: a collaborator stays one after a viewer link.
    """
    if identity == sandbox.owner:
        raise _refuse("owner", f"you own sandbox {sandbox.name!r}; a share link is for others",
                      sandbox, link)
    if link.expires_at is not None and now >= link.expires_at:
        raise _refuse("expired", "this share link has expired", sandbox, link)
    if link.max_uses and link.used_count >= link.max_uses:
        raise _refuse("exhausted", f"this share link has been used its {link.max_uses} "
                      f"time{'s' if link.max_uses != 1 else ''}", sandbox, link)
    if sandbox.shares.users.get(identity) == "collaborator":
        return "collaborator"
    return link.level
