"""Browser sessions for the ``/ui/`` pages: an opaque cookie that stands for an API key's identity.

Signing in trades an API key for a random token, kept only in this process's
memory and sent back as an HttpOnly, SameSite=Strict cookie; the key itself is
never stored, logged or put in a URL. A restart signs everyone out.

::

    store = SessionStore()
    token = store.open(identity)        # Set-Cookie: agenttier_session=<token>
    store.identify(token)               # the identity, until it expires or store.close(token)
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from .auth import Identity

__all__ = ["COOKIE", "SessionStore"]

COOKIE = "agenttier_session"
"""The session cookie's name."""


class SessionStore:
    """Signed-in browsers: token → identity, each for ``lifetime`` seconds, at most ``limit``.

    Past ``limit`` sessions the oldest is ended, so sign-ins cannot grow memory
    without bound. Thread-safe: page handlers run in a thread pool.
    """

    def __init__(self, *, lifetime: float = 12 * 3600, limit: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lifetime = lifetime
        self.limit = limit
        self._clock = clock
        self._sessions: OrderedDict[str, tuple[Identity, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SessionStore({len(self._sessions)} sessions)"

    def open(self, identity: Identity) -> str:
        """Start a session for ``identity`` and return its token (the cookie's value)."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[token] = (identity, self._clock() + self.lifetime)
            while len(self._sessions) > self.limit:
                self._sessions.popitem(last=False)
        return token

    def identify(self, token: str | None) -> Identity | None:
        """The identity of a live session, or None (unknown, ended or expired)."""
        if not token:
            return None
        with self._lock:
            found = self._sessions.get(token)
            if found is None:
                return None
            if found[1] <= self._clock():
                del self._sessions[token]
                return None
            return found[0]

    def close(self, token: str | None) -> None:
        """End a session (signing out); an unknown token is ignored."""
        if token:
            with self._lock:
                self._sessions.pop(token, None)
