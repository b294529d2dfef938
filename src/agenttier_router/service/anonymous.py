"""Bounding what anonymous callers can write into the history (issue 9, item 6).

Eight threads of keyless requests once wrote 10,378 audit rows (4.3 KB each)
in 10 s; during an outage that floods the spool. Denied anonymous attempts are
still recorded, but folded: for each source address and reason, the first
attempt of an interval is recorded at once, and the rest of that interval
become one record with their count. So an address gets at most two records
per reason per interval, however fast it knocks::

    folded = AnonymousDenials(interval=60.0)
    if folded.admit("203.0.113.9", "no valid API key", "exec"):
        ...                                   # record this attempt now
    for summary in folded.due():              # later: one record per folded window
        ...                                   # summary.count attempts, by action

The stored fields of an anonymous record are capped too (:func:`cap_fields`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FIELD_LIMIT", "MAX_SOURCES", "AnonymousDenials", "Folded", "cap_fields"]

FIELD_LIMIT = 200
"""Characters kept of any text an anonymous caller chose (path, command, Host, ...)."""

MAX_SOURCES = 10_000
"""Windows kept at once; past it, new addresses share one window per reason (``*``)."""


def cap_fields(details: Mapping[str, Any]) -> dict[str, Any]:
    """``details`` with every string cut to :data:`FIELD_LIMIT` characters (marked ``…``)."""
    return {key: (value if not isinstance(value, str) or len(value) <= FIELD_LIMIT
                  else value[: FIELD_LIMIT - 1] + "…")
            for key, value in details.items()}


@dataclass
class Folded:
    """The attempts of one window after its first: how many, of which actions, from where."""

    source: str
    reason: str
    started: float
    count: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    first: dict[str, Any] = field(default_factory=dict)
    """The first folded attempt's record fields (action, sandbox_id, namespace, resource)."""


class AnonymousDenials:
    """Per source address and reason: the first attempt of each interval, then a count.

    ``interval`` 0 folds nothing: every attempt is recorded. Thread-safe.
    """

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic,
                 max_sources: int = MAX_SOURCES) -> None:
        self.interval = interval
        self._clock = clock
        self._max_sources = max_sources
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], Folded] = {}
        self._ended: list[Folded] = []

    def __repr__(self) -> str:
        return f"AnonymousDenials(interval={self.interval:g}, windows={len(self._windows)})"

    def admit(self, source: str, reason: str, fields: Mapping[str, Any]) -> bool:
        """Whether to record this attempt now; if not, it is counted in its window."""
        if self.interval <= 0:
            return True
        now = self._clock()
        with self._lock:
            key = (source, reason)
            window = self._windows.get(key)
            if window is None and len(self._windows) >= self._max_sources:
                key = ("*", reason)
                window = self._windows.get(key)
            if window is None or now - window.started >= self.interval:
                if window is not None and window.count:
                    self._ended.append(window)  # for due() to hand out
                self._windows[key] = Folded(source=key[0], reason=reason, started=now)
                return True
            window.count += 1
            window.actions[str(fields.get("action", ""))] += 1
            if not window.first:
                window.first = dict(fields)
            return False

    def due(self, *, everything: bool = False) -> list[Folded]:
        """Take the windows that have ended (all of them with ``everything``) and hold a count."""
        now = self._clock()
        with self._lock:
            taken, self._ended = self._ended, []
            for key, window in list(self._windows.items()):
                if everything or now - window.started >= self.interval:
                    del self._windows[key]
                    if window.count:
                        taken.append(window)
        return taken
