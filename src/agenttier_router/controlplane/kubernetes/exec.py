"""Running a command in a sandbox's pod through the ``pods/exec`` WebSocket.

The Kubernetes client offers ``v5.channel.k8s.io`` first and falls back to
``v4.channel.k8s.io`` when the API server does not speak v5. Each frame starts
with its channel: 1 stdout, 2 stderr, 3 the final status (a ``Status`` whose
``ExitCode`` cause carries a non-zero exit code). The command is always
``/bin/sh -c <command>`` in the container ``sandbox``, stdin and TTY off.

Like the local plane: each stream is kept up to 1 MiB (the rest is dropped
and counted), and a command that outlives ``timeout`` ends the exec with exit
code 124 and ``timed_out=True``. The API offers no way to kill a command
without a TTY, so on a timeout the WebSocket is closed and the kubelet ends
the command's session; a command that ignores SIGHUP may run on in the pod.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any
from urllib.parse import quote

from kubernetes.client import ApiClient
from kubernetes.stream import ws_client
from websocket import WebSocketBadStatusException, WebSocketException

from ..base import ControlPlaneError, ControlPlaneUnavailable, ExecResult, SandboxConflict
from ..output import OutputCapture, marker
from ._api import describe_forbidden

__all__ = ["CONTAINER", "TIMEOUT_EXIT", "run_in_pod"]

CONTAINER = "sandbox"
TIMEOUT_EXIT = 124
_STDOUT, _STDERR, _STATUS = 1, 2, 3
_WAIT = 0.5  # seconds per poll of the socket, so that the deadline is checked
_ws: Any = ws_client  # untyped


def _connect(api_client: ApiClient, namespace: str, pod: str, container: str,
             command: list[str]) -> Any:
    configuration = api_client.configuration
    url = (f"{configuration.host}/api/v1/namespaces/{quote(namespace, safe='')}/pods/"
           f"{quote(pod, safe='')}/exec")
    query = [("command", command), ("container", container), ("stdin", "false"),
             ("stdout", "true"), ("stderr", "true"), ("tty", "false")]
    headers: dict[str, str] = {}
    # auth_settings() refreshes an expiring token (exec plugins, in-cluster token files).
    bearer = configuration.auth_settings().get("BearerToken")
    if bearer and bearer.get("value"):
        headers["authorization"] = bearer["value"]
    return _ws.WSClient(configuration, _ws.get_websocket_url(url, query), headers,
                        capture_all=False, binary=True)


def _exit_code(status: bytes) -> tuple[int, str]:
    """The exit code in the status channel's Status, and a note when it is not a plain exit."""
    if not status:
        return 1, "the exec stream ended without an exit status"
    try:
        body: Any = json.loads(status)
    except ValueError:
        return 1, "the exec stream sent an unreadable status"
    if not isinstance(body, dict):
        return 1, "the exec stream sent an unreadable status"
    if body.get("status") == "Success":
        return 0, ""
    causes = (body.get("details") or {}).get("causes") or []
    for cause in causes:
        if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
            try:
                return int(str(cause.get("message"))), ""
            except (TypeError, ValueError):
                break
    return 1, f"exec failed: {body.get('message') or body.get('reason') or 'unknown error'}"


def run_in_pod(api_client: ApiClient, namespace: str, pod: str, command: str, timeout: float,
               *, container: str = CONTAINER) -> ExecResult:
    """Run ``/bin/sh -c command`` in ``pod``'s ``container``; see the module's docstring."""
    try:
        client: Any = _connect(api_client, namespace, pod, container, ["/bin/sh", "-c", command])
    except WebSocketBadStatusException as error:
        code = error.status_code
        if code in (401, 403):
            raise ControlPlaneUnavailable(
                describe_forbidden("create", "pods/exec", namespace), retry_after=30.0
            ) from error
        if code == 404:
            raise SandboxConflict(f"sandbox pod {pod!r} is gone: the sandbox is not running") \
                from error
        raise ControlPlaneError(f"exec failed: the API server answered {code}") from error
    except (WebSocketException, OSError) as error:
        raise ControlPlaneUnavailable(
            f"exec failed: the Kubernetes API server cannot be reached: {error}") from error
    out, err = OutputCapture(), OutputCapture()
    status = b""
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while client.is_open():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            try:
                client.update(timeout=min(remaining, _WAIT))
            except (WebSocketException, OSError):
                break  # the connection dropped: whatever status arrived decides
            out.add(client.read_channel(_STDOUT))
            err.add(client.read_channel(_STDERR))
            status += client.read_channel(_STATUS)
        out.add(client.read_channel(_STDOUT))
        err.add(client.read_channel(_STDERR))
        status += client.read_channel(_STATUS)
    finally:
        with contextlib.suppress(Exception):
            client.close(timeout=1)  # a close frame, and at most a second for the answer
        if client.sock is not None:
            client.sock.shutdown()  # close() leaves the socket open if the peer hung up first
    stdout, stderr = out.text("stdout"), err.text("stderr")
    if timed_out:
        return ExecResult(stdout, stderr + marker(f"timed out after {timeout:g} s"),
                          TIMEOUT_EXIT, timed_out=True)
    code, note = _exit_code(status)
    return ExecResult(stdout, stderr + (marker(note) if note else ""), code)
