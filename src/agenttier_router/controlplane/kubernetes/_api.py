"""What the plane needs of the Kubernetes API: names, and errors translated at the boundary.

Every call to the API server goes through :func:`translate`, so that no
``ApiException`` or ``urllib3`` error reaches a caller: each becomes one of the
control plane's own errors (see :mod:`agenttier_router.controlplane.base`)::

    with translate("create", "sandboxes", namespace="team-a", name="sb-1"):
        custom.create_namespaced_custom_object(...)
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from ..base import (
    ControlPlaneError,
    ControlPlaneUnavailable,
    InvalidRequest,
    SandboxConflict,
    SandboxNotFound,
)

__all__ = [
    "ACTION_ANNOTATION",
    "API_VERSION",
    "GROUP",
    "VERSION",
    "RateLimitedWarning",
    "decode",
    "describe_forbidden",
    "error_from",
    "status_of",
    "translate",
]

GROUP = "agenttier.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
ACTION_ANNOTATION = "agenttier.io/action"
_RETRY_AFTER = 5.0


def decode(response: Any) -> Any:
    """The JSON body of a raw (``_preload_content=False``) urllib3 response."""
    return json.loads(response.data)


def status_of(error: ApiException) -> tuple[str, str]:
    """``(reason, message)`` of the API server's Status body, or of the exception itself."""
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    return str(body.get("reason") or error.reason or ""), str(body.get("message") or "")


def describe_forbidden(verb: str, resource: str, namespace: str | None, detail: str = "") -> str:
    """The message of a 403: which verb on which resource the Router's account lacks."""
    where = f"in namespace {namespace!r}" if namespace else "at the cluster scope"
    text = (f"forbidden by RBAC: the Router's Kubernetes account may not {verb!r} "
            f"{resource!r} {where}; grant it that verb on that resource")
    return f"{text} (API server: {detail})" if detail else text


def error_from(error: BaseException, verb: str, resource: str, *,
               namespace: str | None = None, name: str | None = None) -> ControlPlaneError:
    """Translate an error of the Kubernetes client into the control plane's own."""
    if not isinstance(error, ApiException):
        return ControlPlaneUnavailable(
            f"the Kubernetes API server cannot be reached ({verb} {resource}): "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
            retry_after=_RETRY_AFTER)
    reason, message = status_of(error)
    code = error.status or 0
    if code in (401, 403):
        return ControlPlaneUnavailable(describe_forbidden(verb, resource, namespace, message),
                                       retry_after=30.0)
    if code == 404 and name is not None and resource == "sandboxes":
        return SandboxNotFound(f"no sandbox {name!r} in namespace {namespace!r}")
    if code == 404:
        return ControlPlaneError(f"{verb} {resource}: not found: {message or reason}")
    if code == 409:
        return SandboxConflict(message or reason)
    if code in (400, 422):
        return InvalidRequest(message or reason)
    if code == 429 or code >= 500 or code == 0:
        retry = _RETRY_AFTER
        headers = error.headers or {}
        with suppress(TypeError, ValueError):
            retry = float(headers.get("Retry-After", retry))
        return ControlPlaneUnavailable(
            f"the Kubernetes API server could not {verb} {resource} now "
            f"({code} {reason}): {message}".rstrip(": "), retry_after=retry)
    return ControlPlaneError(f"{verb} {resource} failed: {code} {reason}: {message}")


@contextmanager
def translate(verb: str, resource: str, *, namespace: str | None = None,
              name: str | None = None) -> Iterator[None]:
    """Run a call to the API server; raise its errors as the control plane's (see module doc)."""
    try:
        yield
    except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:
        raise error_from(error, verb, resource, namespace=namespace, name=name) from error


class RateLimitedWarning:
    """Log a warning at most once per ``interval`` seconds per key, counting the rest."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self._logger = logger
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}

    def __call__(self, key: str, message: str, *args: object) -> None:
        """Log ``message % args`` unless ``key`` was logged less than ``interval`` ago."""
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._last.get(key, (float("-inf"), 0))
            if now - last < self._interval:
                self._last[key] = (last, suppressed + 1)
                return
            self._last[key] = (now, 0)
        if suppressed:
            message += f" ({suppressed} more like it suppressed)"
        self._logger.warning(message, *args)
