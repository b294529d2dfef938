"""What the page scripts share: a Router served in this process, and Debian's Chromium.

Not a benchmark itself. :func:`serve` runs ``create_app`` under uvicorn on a
free 127.0.0.1 port in a background thread (the lifespan runs, so the
recorder drains at the end); :func:`chromium` launches ``/usr/bin/chromium``
through Playwright, by path (no browser download works here).
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from agenttier_router.api import RouterConfig, create_app

__all__ = ["CHROMIUM_ARGS", "chromium", "serve"]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@contextmanager
def serve(config: RouterConfig) -> Iterator[tuple[str, Any]]:
    """Serve a Router built from ``config``; yield its base URL and app."""
    from agenttier_router.service import build_services

    app = create_app(build_services(config))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on",
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit("the Router did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium under Playwright."""
    from playwright.sync_api import sync_playwright

    path = shutil.which("chromium")
    if path is None:
        raise SystemExit("no chromium on PATH: apt-get install -y chromium")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
