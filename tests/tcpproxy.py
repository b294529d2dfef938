"""A real TCP proxy on 127.0.0.1, put in front of a real database server to make real outages.

The servers are shared, so tests never stop them; they break the path to
them instead::

    with TcpProxy("127.0.0.1", 5432) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
        proxy.kill()      # connection refused, every open connection closed
        proxy.restart()   # listening again on the same port
        proxy.hang()      # connections accepted, nothing answered, open ones frozen
        proxy.resume()    # the frozen connections go on (a database that "thaws")

Everything runs on one thread around a selector, so the state changes are
exact: a call returns once the proxy is in its new state. Used by the tests
and by the recorder benchmarks.
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["TcpProxy"]


class _Link:
    """A client socket and, once connected, its upstream socket."""

    __slots__ = ("client", "upstream")

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.upstream: socket.socket | None = None


class TcpProxy:
    """Forward 127.0.0.1:``port`` to ``target_host``:``target_port``, with switchable faults."""

    def __init__(self, target_host: str, target_port: int, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._commands: queue.Queue[tuple[Callable[[], None], threading.Event]] = queue.Queue()
        self._links: list[_Link] = []
        self._listener: socket.socket | None = None
        self._hung = False
        self._running = True
        self.port = port
        self._listen()
        self._thread = threading.Thread(target=self._loop, name="tcpproxy", daemon=True)
        self._thread.start()

    @property
    def state(self) -> str:
        """``up``, ``hung`` or ``down``."""
        if self._listener is None:
            return "down"
        return "hung" if self._hung else "up"

    # -- control (from any thread) ------------------------------------------------------

    def kill(self) -> None:
        """Stop listening and close every connection: new connections are refused."""
        self._do(self._kill)

    def restart(self) -> None:
        """Listen again on the same port, forwarding."""
        self._do(self._restart)

    def hang(self) -> None:
        """Accept connections but answer nothing; open connections stop moving."""
        self._do(self._hang)

    def resume(self) -> None:
        """Forward again, including on the connections accepted or frozen while hung."""
        self._do(self._resume)

    def close(self) -> None:
        """Shut the proxy down for good."""
        if self._running:
            self._do(self._kill)
            self._running = False
            self._wake_w.send(b"x")
            self._thread.join(5)
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _do(self, action: Callable[[], None]) -> None:
        done = threading.Event()
        self._commands.put((action, done))
        self._wake_w.send(b"x")
        if not done.wait(10):
            raise RuntimeError("tcpproxy did not respond")

    # -- the loop's own work ---------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._selector.register(listener, selectors.EVENT_READ, "accept")

    def _kill(self) -> None:
        if self._listener is not None:
            self._selector.unregister(self._listener)
            self._listener.close()
            self._listener = None
        for link in self._links:
            self._drop(link)
        self._links.clear()
        self._hung = False

    def _restart(self) -> None:
        if self._listener is None:
            self._listen()
        self._resume()

    def _hang(self) -> None:
        self._hung = True
        for link in self._links:
            for sock in (link.client, link.upstream):
                if sock is not None:
                    with contextlib.suppress(KeyError, ValueError):
                        self._selector.unregister(sock)

    def _resume(self) -> None:
        self._hung = False
        for link in list(self._links):
            if link.upstream is None and not self._connect(link):
                continue
            for sock in (link.client, link.upstream):
                if sock is not None:
                    with contextlib.suppress(KeyError, ValueError):
                        self._selector.register(sock, selectors.EVENT_READ, link)

    def _connect(self, link: _Link) -> bool:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            self._drop(link)
            self._links.remove(link)
            return False
        upstream.settimeout(5)
        link.upstream = upstream
        return True

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        client.settimeout(5)
        link = _Link(client)
        self._links.append(link)
        if self._hung:
            return  # held, unanswered, until resume() or kill()
        if self._connect(link):
            self._selector.register(client, selectors.EVENT_READ, link)
            assert link.upstream is not None
            self._selector.register(link.upstream, selectors.EVENT_READ, link)

    def _forward(self, link: _Link, source: socket.socket) -> None:
        other = link.upstream if source is link.client else link.client
        try:
            data = source.recv(65536)
            if data and other is not None:
                other.sendall(data)
                return
        except OSError:
            pass
        self._drop(link)
        with contextlib.suppress(ValueError):
            self._links.remove(link)

    def _drop(self, link: _Link) -> None:
        for sock in (link.client, link.upstream):
            if sock is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            sock.close()

    def _loop(self) -> None:
        while self._running:
            for key, _ in self._selector.select(timeout=1.0):
                if key.data is None:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                    while not self._commands.empty():
                        action, done = self._commands.get()
                        try:
                            action()
                        finally:
                            done.set()
                elif key.data == "accept":
                    self._accept()
                elif not self._hung:
                    self._forward(key.data, key.fileobj)  # type: ignore[arg-type]
