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

:func:`open_session` is the same connection for file transfers: binary,
frame by frame, optionally with stdin (channel 0). With ``v5`` the end of
stdin is sent on the close channel (255); ``v4`` has no way to end stdin
short of closing the connection, so a ``v4`` caller must tell the command how
many bytes to read (see :mod:`.files`).
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import time
from typing import Any
from urllib.parse import quote

from kubernetes.client import ApiClient
from kubernetes.stream import ws_client
from websocket import (
    ABNF,
    WebSocketBadStatusException,
    WebSocketException,
    WebSocketTimeoutException,
)

from ..base import ControlPlaneError, ControlPlaneUnavailable, ExecResult, SandboxConflict
from ..output import OutputCapture, marker
from ._api import describe_forbidden

__all__ = ["CONTAINER", "TIMEOUT_EXIT", "ExecSession", "exit_status", "open_session",
           "run_in_pod"]

CONTAINER = "sandbox"
TIMEOUT_EXIT = 124
_STDIN, _STDOUT, _STDERR, _STATUS, _CLOSE = 0, 1, 2, 3, 255
_V5 = "v5.channel.k8s.io"
_WAIT = 0.5  # seconds per poll of the socket, so that the deadline is checked
_ws: Any = ws_client  # untyped


def _connect(api_client: ApiClient, namespace: str, pod: str, container: str,
             command: list[str], stdin: bool = False) -> Any:
    configuration = api_client.configuration
    url = (f"{configuration.host}/api/v1/namespaces/{quote(namespace, safe='')}/pods/"
           f"{quote(pod, safe='')}/exec")
    query = [("command", command), ("container", container),
             ("stdin", "true" if stdin else "false"),
             ("stdout", "true"), ("stderr", "true"), ("tty", "false")]
    headers: dict[str, str] = {}
    # auth_settings() refreshes an expiring token (exec plugins, in-cluster token files).
    bearer = configuration.auth_settings().get("BearerToken")
    if bearer and bearer.get("value"):
        headers["authorization"] = bearer["value"]
    return _ws.WSClient(configuration, _ws.get_websocket_url(url, query), headers,
                        capture_all=False, binary=True)


def exit_status(status: bytes) -> tuple[int, str]:
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


def _open(api_client: ApiClient, namespace: str, pod: str, container: str,
          command: list[str], stdin: bool = False) -> Any:
    """Connect, translating a refusal into the control plane's errors."""
    try:
        return _connect(api_client, namespace, pod, container, command, stdin)
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


def run_in_pod(api_client: ApiClient, namespace: str, pod: str, command: str, timeout: float,
               *, container: str = CONTAINER) -> ExecResult:
    """Run ``/bin/sh -c command`` in ``pod``'s ``container``; see the module's docstring."""
    client: Any = _open(api_client, namespace, pod, container, ["/bin/sh", "-c", command])
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
    code, note = exit_status(status)
    return ExecResult(stdout, stderr + (marker(note) if note else ""), code)


class ExecSession:
    """One command in a pod, its streams taken frame by frame (bytes, never decoded).

    ::

        session = open_session(api, "team-a", "sb-1-pod", ["/bin/sh", "-c", "cat > f"],
                               stdin=True)
        session.send(b"data")
        session.close_stdin()            # v5; returns False on v4
        while (frame := session.receive(60)) is not None:
            channel, data = frame        # 1 stdout, 2 stderr, 3 the exit status
        session.close()
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self.protocol: str = str(client.subprotocol or "")
        """The channel protocol the API server chose (``v5.channel.k8s.io`` or ``v4...``)."""
        # One random masking key per connection, not per frame: websocket-client masks a
        # frame at about 40 MiB/s in pure Python, most of a 32 MiB upload's time; with one
        # key the mask of a frame size is made once. Whoever chooses the body's bytes
        # never sees the key (it is on the Router's own connection to the API server).
        self._key = os.urandom(4)
        self._masks: dict[int, int] = {}

    @property
    def can_close_stdin(self) -> bool:
        """Whether stdin can be ended without ending the connection (channel protocol v5)."""
        return self.protocol == _V5

    def send(self, data: bytes) -> None:
        """Write ``data`` to the command's stdin (channel 0).

        Raises :class:`ControlPlaneError` when the connection is gone (the
        command has ended: its exit status tells why).
        """
        self._send(bytes([_STDIN]) + data)

    def close_stdin(self) -> bool:
        """End the command's stdin (v5's close channel); False on v4, where it cannot be."""
        if not self.can_close_stdin:
            return False
        self._send(bytes([_CLOSE, _STDIN]))
        return True

    def _send(self, payload: bytes) -> None:
        """Send ``payload`` as one masked binary frame."""
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x82, 0x80 | length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x82, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x82, 0x80 | 127, length)
        mask = self._masks.get(length)
        if mask is None:
            mask = int.from_bytes(self._key * (length // 4) + self._key[:length % 4], "little")
            if len(self._masks) < 4:  # the body's frames are all one size but the last
                self._masks[length] = mask
        masked = (int.from_bytes(payload, "little") ^ mask).to_bytes(length, "little")
        sock = self._client.sock
        try:
            if sock is None or sock.sock is None:
                raise WebSocketException("the connection is closed")
            with sock.lock:
                sock.sock.sendall(header + self._key + masked)
        except (WebSocketException, OSError) as error:
            raise ControlPlaneError(f"the pod stopped taking input: {error}") from error

    def receive(self, timeout: float) -> tuple[int, bytes] | None:
        """The next frame as ``(channel, data)``, or None once the connection is closed.

        Raises :class:`ControlPlaneUnavailable` when nothing arrives for
        ``timeout`` seconds (the pod or the API server stopped answering).
        """
        sock = self._client.sock
        if sock is None or not sock.connected:
            return None
        sock.settimeout(timeout)
        while True:
            try:
                opcode, frame = sock.recv_data_frame(True)
            except WebSocketTimeoutException as error:
                raise ControlPlaneUnavailable(
                    f"the sandbox's pod sent nothing for {timeout:g} s") from error
            except (WebSocketException, OSError):
                return None  # dropped: the caller decides on what arrived
            if opcode == ABNF.OPCODE_CLOSE:
                return None
            if opcode not in (ABNF.OPCODE_BINARY, ABNF.OPCODE_TEXT):
                continue  # ping, pong
            data = frame.data if isinstance(frame.data, bytes) else str(frame.data).encode()
            if not data or (data[0] == _CLOSE and self.can_close_stdin):
                continue  # v5: the server closed one of its streams; the status still comes
            return data[0], data[1:]

    def close(self) -> None:
        """End the connection (and with it the command, if it still runs); safe to call twice."""
        client = self._client
        with contextlib.suppress(Exception):
            client.close(timeout=1)
        if client.sock is not None:
            with contextlib.suppress(Exception):
                client.sock.shutdown()


def open_session(api_client: ApiClient, namespace: str, pod: str, command: list[str], *,
                 stdin: bool = False, container: str = CONTAINER) -> ExecSession:
    """Start ``command`` (an argv) in ``pod``'s ``container`` and return its session.

    Raises what :func:`run_in_pod` raises when the exec cannot start: 503
    (:class:`ControlPlaneUnavailable`) for RBAC or an unreachable API server,
    :class:`SandboxConflict` when the pod is gone.
    """
    return ExecSession(_open(api_client, namespace, pod, container, command, stdin))
