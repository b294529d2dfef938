"""Where exec runs: its own bounded thread pool, with a limit per caller and in all.

An exec may run for up to an hour. Run in Starlette's shared thread pool, 40
of them froze every other handler, health checks included (issue 9, item 3).
Here an exec takes a slot first (at most ``per_caller`` for one caller, at
most ``total`` in all) and runs on a pool of ``total`` threads of its own; a
request that finds no slot is refused at once (429 with ``Retry-After``)
rather than queued, so nothing piles up in memory::

    slots = ExecSlots(per_caller=8, total=64)
    refusal = slots.acquire("alice")       # None: a slot is held
    result = await slots.run("alice", lambda: plane.exec(...))   # frees the slot at the end
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["RETRY_AFTER", "ExecSlots"]

T = TypeVar("T")

RETRY_AFTER = 2
"""Seconds a refused exec is told to wait (``Retry-After``)."""


class ExecSlots:
    """Slots for running execs: ``per_caller`` for each caller, ``total`` in all, on own threads."""

    def __init__(self, *, per_caller: int, total: int) -> None:
        if per_caller < 1 or total < 1:
            raise ValueError("exec limits must be at least 1")
        self.per_caller = per_caller
        self.total = total
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}
        self._in_all = 0
        self._pool = ThreadPoolExecutor(total, thread_name_prefix="exec")

    def __repr__(self) -> str:
        return (f"ExecSlots(per_caller={self.per_caller}, total={self.total}, "
                f"running={self._in_all})")

    @property
    def running(self) -> int:
        """Execs holding a slot now, for every caller."""
        return self._in_all

    def acquire(self, caller: str) -> str | None:
        """Take a slot for ``caller``; return None, or why none is free (the 429's message)."""
        with self._lock:
            mine = self._running.get(caller, 0)
            if mine >= self.per_caller:
                return (f"too many execs at once: {mine} of yours are running "
                        f"(at most {self.per_caller}); retry when one ends")
            if self._in_all >= self.total:
                return (f"too many execs at once: the Router runs {self._in_all} "
                        f"(at most {self.total}); retry shortly")
            self._running[caller] = mine + 1
            self._in_all += 1
            return None

    def release(self, caller: str) -> None:
        """Give back a slot :meth:`acquire` took for ``caller``."""
        with self._lock:
            left = self._running.get(caller, 0) - 1
            if left > 0:
                self._running[caller] = left
            else:
                self._running.pop(caller, None)
            self._in_all -= 1

    async def run(self, caller: str, work: Callable[[], T]) -> T:
        """Run ``work`` on the exec pool, in the slot ``caller`` holds; free the slot when done.

        The slot is freed by the thread itself, when ``work`` returns: a client
        that hangs up does not free a slot whose command still runs.
        """
        def held() -> T:
            try:
                return work()
            finally:
                self.release(caller)

        try:
            future = self._pool.submit(held)
        except BaseException:
            self.release(caller)
            raise
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Refuse new work and wait for the running execs (the control plane ends them)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
