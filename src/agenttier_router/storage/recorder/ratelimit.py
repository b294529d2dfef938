"""Logging for the recorder: at most one line per kind of trouble per interval, never a secret.

A database that is down fails every batch, several times a second. Logging
each failure would flood the log and cost the writer time, so each *kind* of
trouble (``unavailable``, ``timeout``, ``dropped:queue_full``, …) logs its
first line, then stays quiet for ``interval`` seconds; the next line it logs
says how many were suppressed::

    log = RateLimitedLog(logging.getLogger("agenttier_router.storage.recorder"), 10.0)
    log("unavailable", logging.WARNING, "write failed: %s", describe(error))

Messages pass through :func:`~agenttier_router.storage.sql.url.mask_secrets`,
so that a driver message quoting a DSN cannot leak its password; storage
errors are masked already, at the backend boundary.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..errors import StorageError
from ..sql.url import mask_secrets

__all__ = ["RateLimitedLog", "describe"]

def describe(error: BaseException) -> str:
    """Return a one-line, password-free description of ``error`` for a log line."""
    lines = str(error).strip().splitlines()
    first = lines[0] if lines else ""
    if isinstance(error, StorageError):
        return mask_secrets(first or type(error).__name__)
    return mask_secrets(f"{type(error).__name__}: {first}" if first else type(error).__name__)


class RateLimitedLog:
    """Log at most one line per kind per ``interval`` seconds, counting what it suppressed.

    Thread-safe. ``clock`` is injectable so that tests need not sleep.
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, kind: str, level: int, message: str, *args: object) -> bool:
        """Log ``message % args`` at ``level`` unless ``kind`` logged within the interval.

        Returns True when the line was logged, False when it was suppressed.
        """
        with self._lock:
            now = self._clock()
            last = self._last.get(kind)
            if last is not None and now - last < self.interval:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return False
            self._last[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        text = mask_secrets(message % args if args else message)
        if suppressed:
            text += f" ({suppressed} more like this suppressed in the last {self.interval:g}s)"
        self.logger.log(level, "%s", text)
        return True
