"""One list+watch of one resource, kept in memory: what Kubernetes' client-go calls an informer.

::

    informer = Informer("sandboxes", list_call, handler)
    informer.start()        # a daemon thread: list, then watch from the list's resourceVersion
    informer.wait_synced(5)
    informer.objects()      # served from memory; never calls the API server

The thread lists once, then watches from the list's ``resourceVersion``. A
watch that ends (its ``timeoutSeconds`` ran out, the connection dropped, the
API server restarted) resumes from the last version seen, so nothing is lost
or seen twice. A watch answered with 410 Gone (the history it needs was
compacted) re-lists: objects that changed or vanished meanwhile are handed to
the handler as MODIFIED or DELETED, and the old objects are served until the
new list has arrived. (A list shows states, not history: a phase entered and
left while the watch was away *and* its history was compacted is seen by
nobody. The Events about it still are.) Failures are retried with a capped
backoff; the last one is kept in :attr:`Informer.problem` until the informer
works again.

Only the list and the watch change what it holds, so the handler sees every
version the watch delivers, in order, and never skips one: a caller that
wants to read its own writes at once keeps them aside itself (the plane does).
Every change is applied, and given to the handler, under one lock. Reads take
another lock, held only to copy a reference and never while calling out, so
that a handler may read any informer without risking a deadlock.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..base import ControlPlaneError
from ._api import decode, error_from

__all__ = ["Handler", "Informer", "Key", "key_of"]

_log = logging.getLogger(__name__)

Key = tuple[str, str]
"""(namespace, name); the namespace is "" for a cluster-scoped object."""

Handler = Callable[[str, Mapping[str, Any] | None, Mapping[str, Any] | None], None]
"""Called with (type, old, new): ADDED/MODIFIED (old may be None) or DELETED (new is None)."""


def key_of(obj: Mapping[str, Any]) -> Key:
    """An object's (namespace, name)."""
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def _version(obj: Mapping[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


class _Gone(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class Informer:
    """Lists and watches one resource on a daemon thread, keeping every object in memory.

    ``list_call`` is a Kubernetes client list method with its positional arguments
    bound (``functools.partial(custom.list_cluster_custom_object, GROUP, VERSION,
    "sandboxes")``); it is called with ``_preload_content=False`` and the watch
    arguments. ``handler`` is called for every change, on the informer's thread,
    and must not raise.
    """

    def __init__(self, name: str, list_call: Callable[..., Any], handler: Handler, *,
                 field_selector: str | None = None, label_selector: str | None = None,
                 watch_timeout: float = 300.0,
                 backoff: tuple[float, float] = (0.1, 5.0),
                 on_synced: Callable[[], None] | None = None) -> None:
        self.name = name
        self._list_call = list_call
        self._handler = handler
        self._selector = {"field_selector": field_selector} if field_selector else {}
        if label_selector:
            self._selector["label_selector"] = label_selector
        self._watch_timeout = max(1, int(watch_timeout))
        self._backoff = backoff
        self._on_synced = on_synced
        self._apply_lock = threading.RLock()  # orders changes and handler calls
        self._lock = threading.Lock()  # guards the map; held only for a lookup or a copy
        self._objects: dict[Key, dict[str, Any]] = {}
        self._version = ""
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._response: Any = None
        self._problem: ControlPlaneError | None = None
        self._problem_since: float | None = None
        self.relists = 0
        self._thread = threading.Thread(target=self._run, name=f"informer-{name}", daemon=True)

    def __repr__(self) -> str:
        return (f"Informer({self.name!r}, objects={len(self._objects)}, "
                f"synced={self._synced.is_set()}, version={self._version!r})")

    # Reading

    @property
    def synced(self) -> bool:
        """True once the first list has been applied."""
        return self._synced.is_set()

    @property
    def problem(self) -> ControlPlaneError | None:
        """Why the last list or watch failed, until one succeeds again; else None."""
        return self._problem

    @property
    def problem_since(self) -> float | None:
        """When (``time.monotonic()``) the current :attr:`problem` began; None without one."""
        return self._problem_since if self._problem is not None else None

    def wait_synced(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the first list; True if it has been applied."""
        return self._synced.wait(timeout)

    def get(self, key: Key) -> dict[str, Any] | None:
        """A deep copy of one object, or None."""
        with self._lock:
            obj = self._objects.get(key)
            return copy.deepcopy(obj) if obj is not None else None

    def peek(self, key: Key) -> Mapping[str, Any] | None:
        """One object without a copy (read-only: do not modify it), or None."""
        with self._lock:
            return self._objects.get(key)

    def objects(self) -> list[Mapping[str, Any]]:
        """Every object (read-only views: do not modify them)."""
        with self._lock:
            return list(self._objects.values())

    # Life

    def start(self) -> None:
        """Start the list+watch thread."""
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread: end the watch in progress and wait for it."""
        self._stop.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()
            with contextlib.suppress(Exception):
                response.close()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # The thread

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                if not self._version:
                    self._list()
                self._watch()
                failures = 0
                self._problem = None
            except _Gone:
                _log.info("informer %s: watch from %s is too old (410 Gone): listing again",
                          self.name, self._version)
                self._version = ""
                self.relists += 1
            except Exception as error:
                if self._stop.is_set():
                    return
                if self._problem is None:
                    self._problem_since = time.monotonic()
                self._problem = error if isinstance(error, ControlPlaneError) else \
                    error_from(error, "watch" if self._version else "list", self.name)
                failures += 1
                _log.warning("informer %s: %s (retrying)", self.name, self._problem)
                low, high = self._backoff
                self._stop.wait(min(high, low * 2 ** min(failures - 1, 16)))

    def _list(self) -> None:
        response = self._list_call(_preload_content=False, _request_timeout=(10, 60),
                                   **self._selector)
        body = decode(response)
        items = body.get("items") or []
        fresh = {key_of(item): item for item in items if isinstance(item, dict)}
        with self._apply_lock:
            with self._lock:
                known = list(self._objects.items())
            for key, old in known:
                if key not in fresh:
                    self._apply("DELETED", old)
            for item in fresh.values():
                self._apply("MODIFIED", item)
            self._version = str((body.get("metadata") or {}).get("resourceVersion") or "")
        if not self._synced.is_set():
            self._synced.set()
            self._problem = None
            if self._on_synced is not None:
                self._on_synced()

    def _watch(self) -> None:
        response = self._list_call(
            watch=True, resource_version=self._version, timeout_seconds=self._watch_timeout,
            allow_watch_bookmarks=True, _preload_content=False,
            _request_timeout=(10, self._watch_timeout + 30), **self._selector)
        self._response = response
        self._problem = None  # the API server answers: a quiet watch is a healthy one
        try:
            if self._stop.is_set():  # close() ran before the response was there to shut
                return
            for line in _lines(response):
                if self._stop.is_set():
                    return
                event = json.loads(line)
                kind = event.get("type")
                obj = event.get("object")
                if not isinstance(obj, dict):
                    continue
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone()
                    raise ControlPlaneError(f"watch of {self.name} failed: "
                                            f"{obj.get('code')} {obj.get('message')}")
                version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._apply(kind, obj)
                if version:
                    self._version = version
                self._problem = None
        finally:
            self._response = None
            with contextlib.suppress(Exception):
                response.release_conn()

    def _apply(self, kind: str, obj: dict[str, Any]) -> None:
        key = key_of(obj)
        version = _version(obj)
        with self._apply_lock:
            with self._lock:
                old = self._objects.get(key)
                if kind == "DELETED":
                    if old is None:
                        return
                    del self._objects[key]
                    new: dict[str, Any] | None = None
                else:
                    if old is not None and _version(old) >= version:
                        return  # unchanged (a re-list that finds it as it was)
                    self._objects[key] = obj
                    new = obj
            try:
                self._handler(kind, old, new)
            except Exception:
                _log.exception("informer %s: the handler failed on %s %s", self.name, kind, key)


def _lines(response: Any) -> Iterator[bytes]:
    """The newline-delimited JSON of a watch response, one line at a time."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=False):
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip():
                yield line
    if pending.strip():
        yield pending
