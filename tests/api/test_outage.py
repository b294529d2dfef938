"""A database that is down, or a storage URL that is wrong, never stops the Router.

The PostgreSQL server is shared, so the outage is made with a real TCP proxy
in front of it (``tests/tcpproxy.py``): killed before the Router starts, and
started once the Router has served and spooled. Every record then reaches
the database exactly once (counted by ``event_id``).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from router_helpers import (
    Router,
    config_for,
    eventually,
    running_router,
    stored_audit,
    stored_costs,
    stored_sandbox_events,
    wait_phase,
)
from sqlalchemy.engine import make_url
from tcpproxy import TcpProxy

PASSWORD = "s3cret-Pa55word"


def _ready(router: Router) -> dict[str, Any]:
    response = httpx.get(f"{router.url}/readyz")
    assert response.status_code == 200  # storage never makes the Router unready
    assert PASSWORD not in response.text
    storage: dict[str, Any] = response.json()["storage"]
    return storage


def _act(router: Router, name: str) -> None:
    """create, exec and stop ``name`` as alice: three audit events, three transitions."""
    alice = router.client("alice")
    sandbox = alice.create_sandbox("minimal", name)
    wait_phase(alice, name)
    assert sandbox.exec("echo still serving").stdout == "still serving\n"
    sandbox.stop()


def _exactly_once(url: str, sandboxes: list[str]) -> None:
    audit = stored_audit(url)
    assert Counter((e.action, e.sandbox_id) for e in audit) == Counter(
        {(action, name): 1 for name in sandboxes for action in ("create", "exec", "stop")})
    assert all(e.outcome == "success" and e.actor == "alice" for e in audit)
    transitions = stored_sandbox_events(url)
    assert Counter((e.sandbox_id, e.reason) for e in transitions) == Counter(
        {(name, reason): 1 for name in sandboxes for reason in ("Created", "Started", "Stopped")})
    costs = stored_costs(url)
    # One snapshot per minute-aligned bucket each sandbox ran in: one, or two across a minute.
    assert {c.sandbox_id for c in costs} == set(sandboxes)
    assert all(1 <= sum(c.sandbox_id == name for c in costs) <= 2 for name in sandboxes)
    for records in (audit, transitions, costs):
        ids = [r.event_id for r in records]
        assert len(ids) == len(set(ids))


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_database_down_at_start_up_then_back(
    store_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    direct = make_url(store_url)
    assert direct.port is not None
    with TcpProxy(direct.host or "127.0.0.1", direct.port) as proxy:
        proxy.kill()  # connection refused: the database is down before the Router starts
        proxied = direct.set(port=proxy.port, password=PASSWORD)
        url = proxied.render_as_string(hide_password=False)
        with caplog.at_level(logging.INFO), running_router(config_for(tmp_path, url)) as router:
            _act(router, "sb-down")
            storage = eventually(
                lambda: (s := _ready(router))["state"] == "failing" and s["spooled"] >= 6 and s,
                "readyz to report the spooled records")
            assert storage["url"] == proxied.render_as_string(hide_password=True)
            assert "***" in storage["url"]
            assert storage["error"] == ""
            assert any(f.is_file() for f in (tmp_path / "spool").rglob("*"))
            # A read cannot be answered while the database is down: 503, in the SDK's shape.
            read = router.http("carol").get("/audit/events")
            assert read.status_code == 503
            assert read.json()["error"].startswith("storage is unavailable")
            assert PASSWORD not in read.text

            proxy.restart()  # the database is back
            eventually(lambda: len(stored_audit(store_url)) == 3, "the spooled records to arrive")
            eventually(lambda: _ready(router)["state"] == "ok" and _ready(router)["spooled"] == 0,
                       "readyz to report storage ok")
            events = router.http("carol").get("/audit/events").json()["events"]
            assert [e["eventType"] for e in events] == ["stop", "exec", "create"]

            proxy.kill()  # and down again, while the Router runs
            _act(router, "sb-blip")
            eventually(lambda: _ready(router)["spooled"] >= 6, "the second outage to spool")
            proxy.restart()
        # The Router has shut down: the recorder drained everything before it stopped.
        _exactly_once(store_url, ["sb-down", "sb-blip"])
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in messages
    assert PASSWORD not in caplog.text


def test_a_malformed_storage_url_serves_and_spools_until_a_good_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = f"postgresql://router:{PASSWORD}@db.example:notaport/agenttier"
    with caplog.at_level(logging.INFO), running_router(config_for(tmp_path, bad)) as router:
        _act(router, "sb-bad-url")
        storage = eventually(lambda: (s := _ready(router))["spooled"] >= 6 and s,
                             "readyz to report the spooled records")
        assert storage["state"] == "misconfigured"
        assert storage["url"] == "postgresql://<unparseable>"
        assert "malformed postgresql:// storage URL" in storage["error"]
        assert router.http("carol").get("/records/costs").status_code == 503
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR
              and r.getMessage().startswith("storage: cannot open")]
    assert len(errors) == 1  # logged once, clearly
    assert PASSWORD not in caplog.text

    # The next start, with a URL that works and the same spool, writes what was spooled.
    good = f"sqlite:///{tmp_path / 'recovered.db'}"
    with running_router(config_for(tmp_path, good)) as router:
        eventually(lambda: len(stored_audit(good)) == 3, "the spool to be replayed")
        assert _ready(router)["state"] == "ok"
    _exactly_once(good, ["sb-bad-url"])
