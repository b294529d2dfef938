"""Helpers for the browser tests: Debian's Chromium under Playwright, and a Router with history.

(Not a conftest.py, for the reason ``tests/api/router_helpers.py`` gives.)

Chromium comes from Debian (``apt-get install -y chromium``; ``.ci/run``
installs it) and is launched by path: no browser download works here. When it
is missing the tests skip with a loud reason on a laptop, and fail in CI
(``CI=true``).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from router_helpers import KEYS, Router, config_for, running_router, wait_phase

from agenttier_router.storage import AuditEvent, CostSnapshot, SQLBackend, open_backend
from agenttier_router.storage.retention import RetentionPolicy, purge

__all__ = [
    "CHROMIUM_ARGS",
    "COST_SANDBOXES",
    "XSS_ACTOR",
    "XSS_COMMAND",
    "Site",
    "chromium_path",
    "cost_history",
    "launch",
    "seeded_site",
    "sign_in",
]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

XSS_ACTOR = "<script>window.__xss = 'actor'</script>"
XSS_COMMAND = "\"><img src=x onerror=\"window.__xss = 'command'\">"

ROBOT_EVENTS = 70
"""Synthetic exec events by ``robot``, one an hour, ending 2 days ago: enough to page."""


def chromium_path() -> str:
    """Debian's Chromium, or skip (fail under CI=true) with a loud reason."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = ("SKIPPED BROWSER TESTS: no chromium on PATH; "
                  "install it with `apt-get install -y chromium`")
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires the browser tests: {reason}")
        pytest.skip(reason)
    return found


@contextmanager
def launch() -> Iterator[Any]:
    """A headless Chromium (Playwright's Browser), closed at the end."""
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true requires playwright: pip install -e '.[dev]'")
        pytest.skip("SKIPPED BROWSER TESTS: playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Site:
    """A running Router with a known history, and its database URL."""

    router: Router
    store_url: str
    now: datetime

    @property
    def url(self) -> str:
        """The Router's base URL."""
        return self.router.url


COST_SANDBOXES = [("ml", "dana", "gpu-large", "train-1", 4.0, 16.0),
                  ("ml", "dana", "general-coding", "nb-2", 2.0, 4.0),
                  ("web", "erin", "minimal", "site-3", 0.5, 1.0),
                  ("web", XSS_ACTOR, "minimal", "api-4", 1.0, 2.0)]
"""(namespace, owner, template, name, vCPU, GiB): sandboxes with a synthetic cost history."""


def cost_history(now: datetime) -> list[CostSnapshot]:
    """Hourly snapshots over the last 3 days, and some 8 to 10 days ago (the previous week)."""
    out = []
    for i, (namespace, owner, template, name, cpu, mem) in enumerate(COST_SANDBOXES):
        hours = [h for h in range(1, 72, 1 + i)] + [h for h in range(200, 240, 3 + i)]
        for h in hours:
            usd = cpu * 0.031611 + mem * 0.004237
            out.append(CostSnapshot(sandbox_id=name, namespace=namespace, owner=owner,
                                    template=template, cpu_hours=cpu, mem_gb_hours=mem,
                                    estimated_usd=usd, time=now - timedelta(hours=h, minutes=7)))
    return out


def _seed(router: Router, store_url: str, now: datetime) -> None:
    """Real sandboxes through the SDK, plus synthetic events written to the store."""
    alice, bob = router.client("alice"), router.client("bob")
    alice.create_sandbox("minimal", "sb-alice")
    wait_phase(alice, "sb-alice")
    bob.create_sandbox("minimal", "sb-bob", namespace="team-b")
    wait_phase(bob, "sb-bob")
    alice.get_sandbox("sb-alice").stop()
    denied = router.http("bob").post("/sandboxes/sb-alice/stop")  # bob may not: denied
    assert denied.status_code == 404, denied.text
    start = now - timedelta(days=2)
    events = [AuditEvent(actor="robot", action="exec", sandbox_id="sb-robot",
                         namespace="batch", outcome="error" if i % 10 == 0 else "success",
                         details={"command": f"step {i}"}, time=start - timedelta(hours=i))
              for i in range(ROBOT_EVENTS)]
    events.append(AuditEvent(actor=XSS_ACTOR, action="exec", sandbox_id="sb-xss",
                             namespace="evil", outcome="denied",
                             details={"command": XSS_COMMAND, "note": XSS_ACTOR},
                             time=now - timedelta(hours=30)))
    events.append(AuditEvent(actor="ancient", action="exec", sandbox_id="sb-old",
                             namespace="batch", time=now - timedelta(days=400)))
    backend = open_backend(store_url)
    try:
        backend.write_batch([*events, *cost_history(now)])
        # A real purge at a 365-day audit retention removes the ancient event; recorded as
        # the Router's maintenance records it (actor system, action purge), a day ago.
        assert isinstance(backend, SQLBackend)
        report = purge(backend, RetentionPolicy(audit=timedelta(days=365)), now=now)
        (result,) = [r for r in report.results if r.rows]
        record = result.audit_event()
        backend.write_batch([AuditEvent(actor=record.actor, action=record.action,
                                        resource=record.resource, details=record.details,
                                        time=now - timedelta(days=1))])
    finally:
        backend.close()
    router.state.recorder.flush(5)


@contextmanager
def seeded_site(tmp_path: Path, store_url: str, **config: Any) -> Iterator[Site]:
    """A Router on ``store_url`` with the test history in it."""
    now = datetime.now(UTC)
    with running_router(config_for(tmp_path, store_url, **config)) as router:
        _seed(router, store_url, now)
        yield Site(router, store_url, now)


def sign_in(page: Any, base_url: str, who: str) -> None:
    """Sign in through the form, as a person would."""
    page.goto(f"{base_url}/ui/signin")
    page.get_by_label("API key", exact=True).fill(KEYS[who])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
