"""Helpers for the end-to-end Router tests: a real Router on a real port, and its callers.

(Not a conftest.py: the storage tests import names from the top-level
``conftest``, which a second conftest module would shadow.)

:func:`running_router` serves ``create_app(build_services(config))`` with uvicorn on
127.0.0.1, on a background thread, and shuts it down at the end, so the
lifespan runs: final cost snapshots, then the recorder drains into the
store. Tests drive it with the published ``agenttier`` SDK, and with plain
httpx where the SDK has no method (share, audit, records, health).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import agenttier
import httpx
import uvicorn
from agenttier.auth import APIKeyAuth
from fastapi import FastAPI

from agenttier_router.api import RouterConfig, create_app
from agenttier_router.api.auth import KeyStore, load_keys
from agenttier_router.service import Services, build_services
from agenttier_router.storage import (
    AuditEvent,
    AuditFilter,
    CostFilter,
    CostSnapshot,
    RecorderConfig,
    SandboxEvent,
    SandboxEventFilter,
    open_backend,
)

__all__ = [
    "ADMIN_GROUP",
    "KEYS",
    "PEOPLE",
    "Router",
    "config_for",
    "eventually",
    "free_port",
    "running_router",
    "stored_audit",
    "stored_costs",
    "stored_sandbox_events",
    "wait_phase",
    "write_keys",
]

T = TypeVar("T")

ADMIN_GROUP = "agenttier-admins"

PEOPLE: dict[str, dict[str, Any]] = {
    "alice": {"key": "alice-key-0123456789abcdef", "email": "alice@example.com",
              "groups": ["eng"]},
    "bob": {"key": "bob-key-0123456789abcdef00", "email": "bob@example.com",
            "groups": ["ops"]},
    "carol": {"key": "carol-key-0123456789abcdef", "email": "carol@example.com",
              "groups": [ADMIN_GROUP]},
}
"""The callers: alice and bob are users in different groups, carol is an admin."""

KEYS = {who: person["key"] for who, person in PEOPLE.items()}


def write_keys(directory: Path) -> KeyStore:
    """Write the keys file (JSON) for :data:`PEOPLE` into ``directory`` and load it."""
    path = directory / "keys.json"
    path.write_text(json.dumps([
        {"key": p["key"], "subject": who, "email": p["email"], "groups": p["groups"]}
        for who, p in PEOPLE.items()
    ]), encoding="utf-8")
    return load_keys(path, ADMIN_GROUP)


def config_for(tmp_path: Path, storage_url: str | None, **overrides: Any) -> RouterConfig:
    """A RouterConfig with the test keys, a data dir and spool in ``tmp_path``, quick flushes.

    Anonymous denials are not folded (``anonymous_interval=0``), so a test sees each
    attempt's record; ``tests/api/test_anonymous_flood.py`` tests the folding. No
    maintenance thread rolls costs up behind a test's back (``maintenance_interval=None``);
    ``tests/api/test_maintenance.py`` tests it.
    """
    settings: dict[str, Any] = {
        "anonymous_interval": 0.0,
        "maintenance_interval": None,
        "storage_url": storage_url,
        "keys": write_keys(tmp_path),
        "data_dir": tmp_path / "data",
        "spool_dir": tmp_path / "spool",
        "recorder": RecorderConfig(flush_interval=0.05, retry_initial=0.05, retry_max=0.5),
        "cost_interval": 60.0,
    }
    settings.update(overrides)
    return RouterConfig(**settings)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Router:
    """A Router serving on 127.0.0.1, with clients for each caller."""

    url: str
    app: FastAPI
    _opened: list[Any] = field(default_factory=list)

    @property
    def state(self) -> Services:
        """The Router's built parts (recorder, control plane, ...)."""
        built: Services = self.app.state.services
        return built

    def client(self, who: str) -> agenttier.AgentTierClient:
        """The SDK, authenticated as ``who`` (a name in :data:`PEOPLE`, or a raw key)."""
        client = agenttier.AgentTierClient(self.url, auth=APIKeyAuth(KEYS.get(who, who)),
                                           timeout=30)
        self._opened.append(client)
        return client

    def http(self, who: str | None = None) -> httpx.Client:
        """Plain HTTP on ``/api/v1``, as ``who`` (or without a key when None)."""
        headers = {"X-API-Key": KEYS.get(who, who)} if who is not None else {}
        client = httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=30)
        self._opened.append(client)
        return client

    def close_clients(self) -> None:
        for client in self._opened:
            client.close()
        self._opened.clear()


@contextmanager
def running_router(config: RouterConfig) -> Iterator[Router]:
    """Serve the app over ``build_services(config)`` on a free port until the block ends.

    Shutting down runs the lifespan's end: the recorder drains into the store.
    """
    app = create_app(build_services(config))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on",
                                           log_level="warning", timeout_graceful_shutdown=10))
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as error:  # reported by the waiting thread
            failure.append(error)

    thread = threading.Thread(target=serve, name="router", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if failure or not thread.is_alive():
            raise RuntimeError(f"the Router did not start: {failure}")
        if time.monotonic() > deadline:
            raise RuntimeError("the Router did not start within 20 s")
        time.sleep(0.01)
    router = Router(url=f"http://127.0.0.1:{port}", app=app)
    try:
        yield router
    finally:
        router.close_clients()
        server.should_exit = True
        thread.join(30)
        sock.close()
        assert not thread.is_alive(), "the Router did not shut down within 30 s"
        assert not failure, failure


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 15.0) -> T:
    """Call ``probe`` until it returns something truthy, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def wait_phase(client: agenttier.AgentTierClient, name: str, phase: str = "Running") -> None:
    """Wait (bounded) until the sandbox ``name`` is in ``phase``."""
    sandbox = client.get_sandbox(name)
    eventually(lambda: sandbox.status().status == phase, f"{name} to be {phase}")


def stored_audit(url: str, **query: Any) -> list[AuditEvent]:
    """Every audit event in the database matching ``query``, oldest first."""
    backend = open_backend(url)
    try:
        return list(reversed(backend.list_audit_events(AuditFilter(limit=1000, **query)).items))
    finally:
        backend.close()


def stored_sandbox_events(url: str, **query: Any) -> list[SandboxEvent]:
    """Every lifecycle transition in the database matching ``query``, oldest first."""
    backend = open_backend(url)
    try:
        page = backend.list_sandbox_events(SandboxEventFilter(limit=1000, **query))
        return list(reversed(page.items))
    finally:
        backend.close()


def stored_costs(url: str, **query: Any) -> list[CostSnapshot]:
    """Every cost snapshot in the database matching ``query``, oldest first."""
    backend = open_backend(url)
    try:
        return list(reversed(backend.list_cost_snapshots(CostFilter(limit=1000, **query)).items))
    finally:
        backend.close()
