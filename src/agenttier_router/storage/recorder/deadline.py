"""One call at a time on a daemon thread, so that whoever waits for it can give up.

A call on a socket whose peer never answers (a hung database) blocks
forever: PostgreSQL's ``statement_timeout`` is enforced by the server, which
is the part that hangs, and a pooled connection's pre-ping has no client-side
timeout at all. So the recorder's writer never calls ``write_batch`` itself.
It submits the batch here and waits with a deadline; past it, it treats the
write as failed and goes on spooling, while the call stays outstanding on
this thread. ``busy`` stays True until the call returns, and nothing new is
submitted meanwhile, so there is at most one abandoned call, never a pile of
stuck threads. When it finally returns, its result is discarded: the batch
was spooled, and a late success is harmless because writes are idempotent
on ``event_id``.

The thread is a daemon, so a call that never returns cannot keep the
process from exiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["DeadlineCall"]

T = TypeVar("T")


class DeadlineCall(Generic[T]):
    """Run ``function(arg)`` on a worker thread, one call at a time, and wait with a timeout.

    ::

        call = DeadlineCall(backend.write_batch, name="db")
        call.submit(batch)
        if call.wait(5.0):
            error, seconds = call.outcome
        else:
            ...  # timed out; call.busy stays True until it returns
    """

    def __init__(
        self,
        function: Callable[[T], object],
        *,
        name: str,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self._function = function
        self._on_done = on_done
        self._arg: T | None = None
        self._go = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self._busy = False
        self._stopping = False
        self.outcome: tuple[BaseException | None, float] = (None, 0.0)
        """(the error the last call raised or None, the seconds it took)."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """True from :meth:`submit` until the call returns, even after a wait gave up."""
        return self._busy

    def submit(self, arg: T) -> None:
        """Start ``function(arg)``; raises ``RuntimeError`` while a call is outstanding."""
        if self._busy:
            raise RuntimeError("a call is still outstanding")
        if self._stopping:
            raise RuntimeError("stopped")
        self._busy = True
        self._done.clear()
        self._arg = arg
        self._go.set()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True when the call has returned."""
        return self._done.wait(max(0.0, timeout))

    def stop(self) -> None:
        """Let the thread end once it is idle; an outstanding call is left to finish."""
        self._stopping = True
        self._go.set()

    def _run(self) -> None:
        while True:
            self._go.wait()
            self._go.clear()
            if not self._busy:
                if self._stopping:
                    return
                continue
            arg = self._arg
            self._arg = None
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                self._function(arg)  # type: ignore[arg-type]
            except BaseException as caught:  # reported to the waiter, not lost
                error = caught
            self.outcome = (error, time.perf_counter() - started)
            self._busy = False
            self._done.set()
            if self._on_done is not None:
                self._on_done()
            if self._stopping:
                return
