"""The sign-in and activity pages in Chromium, against a real Router over HTTP (SQLite, PostgreSQL).

Each control is found by its label (its accessible name), as a screen reader
would find it; every row shown is checked against the filter applied.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from browser_helpers import XSS_ACTOR, XSS_COMMAND, Site, launch, seeded_site, sign_in
from realdb import IsolatedDatabase
from router_helpers import KEYS, config_for, running_router

from agenttier_router.api.sessions import COOKIE
from agenttier_router.storage.retention import RetentionPolicy


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch() as opened:
        yield opened


@pytest.fixture(scope="module", params=[pytest.param(k, id=k) for k in ("sqlite", "postgresql")])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         browser: Any) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp(f"ui-{request.param}")
    db = IsolatedDatabase(request.param, tmp)
    try:
        with seeded_site(tmp, db.url, retention=RetentionPolicy(audit=timedelta(days=365))
                         ) as running:
            yield running
    finally:
        db.drop()


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    context = browser.new_context(accept_downloads=True)
    opened = context.new_page()
    sign_in(opened, site.url, "carol")
    yield opened
    context.close()


def rows(page: Any) -> list[dict[str, str]]:
    """The activity table's rows as {column: text}."""
    found = []
    for row in page.locator("table.activity tbody tr.event").all():
        cells = row.locator("td").all_inner_texts()
        found.append({"time": cells[0], "actor": cells[1], "action": cells[2],
                      "sandbox": cells[3], "outcome": cells[4]})
    return found


def apply(page: Any) -> None:
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state()


def test_sign_in_sets_a_strict_httponly_cookie_and_sign_out_ends_it(browser: Any,
                                                                      site: Site) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{site.url}/")
    assert urlparse(page.url).path == "/ui/signin"
    sign_in(page, site.url, "carol")
    assert urlparse(page.url).path == "/ui/activity"
    assert page.get_by_role("heading", name="Activity").is_visible()
    (cookie,) = [c for c in context.cookies() if c["name"] == COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert KEYS["carol"] not in cookie["value"]
    assert KEYS["carol"] not in page.url
    assert page.evaluate("() => JSON.stringify(window.localStorage)") == "{}"
    assert page.evaluate("() => document.cookie") == ""  # HttpOnly: no script sees it
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    assert urlparse(page.url).path == "/ui/signin"
    assert not [c for c in context.cookies() if c["name"] == COOKIE]
    # The old token is dead on the server too, not only forgotten by the browser.
    stale = httpx.get(f"{site.url}/ui/activity", cookies={COOKIE: cookie["value"]})
    assert stale.status_code == 303
    context.close()


def test_a_wrong_key_is_refused_and_a_non_admin_sees_admins_only(browser: Any,
                                                                  site: Site) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{site.url}/ui/signin")
    page.get_by_label("API key", exact=True).fill("not-a-key-0123456789")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "That API key is not valid."
    sign_in(page, site.url, "alice")
    assert urlparse(page.url).path == "/ui/sandboxes"  # a user's home
    page.goto(f"{site.url}/ui/activity")
    assert page.get_by_role("heading", name="Admins only").is_visible()
    assert "alice" not in page.locator("main").inner_text().split("not an admin")[1]
    page.goto(f"{site.url}/ui/costs")
    assert page.get_by_role("heading", name="Admins only").is_visible()
    page.goto(f"{site.url}/ui/sandboxes")
    names = page.locator("table.grid tbody th").all_inner_texts()
    assert [n.split()[0] for n in names] == ["sb-alice"]  # not bob's
    context.close()


def test_each_filter_shows_only_matching_rows(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/ui/activity")
    everything = rows(page)
    assert len(everything) == 50
    banner = page.get_by_role("note").inner_text()
    cutoff = (site.now - timedelta(days=365)).strftime("%Y-%m-%d %H:%M")
    assert f"audit records before {cutoff}" in banner and "removed 1 rows" in banner
    assert "Retention setting: audit records are kept for 365 days." in banner
    for label, value, column in [("Actor", "alice", "actor"), ("Action", "stop", "action"),
                                 ("Sandbox", "sb-bob", "sandbox"),
                                 ("Namespace", "team-b", "sandbox")]:
        page.goto(f"{site.url}/ui/activity")
        page.get_by_label(label, exact=True).fill(value)
        apply(page)
        shown = rows(page)
        assert shown, f"{label}={value} shows no rows"
        for row in shown:
            assert value in row[column].split(), (label, row)
        assert parse_qs(urlparse(page.url).query)[label.lower()] == [value]
    for outcome in ("denied", "error", "success"):
        page.goto(f"{site.url}/ui/activity")
        page.get_by_label("Outcome", exact=True).select_option(outcome)
        apply(page)
        shown = rows(page)
        assert shown and all(outcome in r["outcome"] for r in shown), outcome
    # bob's refused stop is there, and it is marked by more than colour.
    page.goto(f"{site.url}/ui/activity?outcome=denied&actor=bob")
    (denied,) = rows(page)
    assert denied["outcome"] == "✖ denied" and denied["action"] == "stop"


def test_from_and_to_bound_the_rows_and_the_url_reproduces_the_view(page: Any,
                                                                      site: Site) -> None:
    start = site.now - timedelta(days=2, hours=20)
    end = site.now - timedelta(days=2, hours=10)
    page.goto(f"{site.url}/ui/activity")
    page.get_by_label("From", exact=True).fill(start.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("To", exact=True).fill(end.strftime("%Y-%m-%dT%H:%M"))
    apply(page)
    shown = rows(page)
    assert len(shown) == 10
    lo, hi = start.strftime("%Y-%m-%d %H:%M"), end.strftime("%Y-%m-%d %H:%M")
    assert all(lo <= r["time"] < hi + ":99" and r["actor"] == "robot" for r in shown)
    again = page.context.new_page()
    again.goto(page.url)
    assert rows(again) == shown
    again.close()
    page.goto(f"{site.url}/ui/activity")
    page.get_by_role("link", name="24h", exact=True).click()
    page.wait_for_load_state()
    recent = rows(page)
    assert recent and all(r["actor"] in ("alice", "bob", "system") for r in recent)
    page.get_by_role("link", name="7d", exact=True).click()
    page.wait_for_load_state()
    assert any(r["actor"] == XSS_ACTOR for r in rows(page))


def test_older_and_newer_page_through_the_cursor(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/ui/activity?actor=robot")
    first = rows(page)
    assert len(first) == 50
    assert page.get_by_role("link", name="Newer").count() == 0
    page.get_by_role("link", name="Older").click()
    page.wait_for_load_state()
    second = rows(page)
    assert len(second) == 20 and second[0]["time"] < first[-1]["time"]
    assert page.get_by_role("link", name="Older").count() == 0
    assert "oldest record kept" in page.locator("nav.pager").inner_text()
    page.get_by_role("link", name="Newer").click()
    page.wait_for_load_state()
    assert rows(page) == first


def test_a_row_expands_to_its_details_and_lifecycle(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/ui/activity?sandbox=sb-alice&action=create")
    page.get_by_role("button", name="Details").first.click()
    more = page.locator("tr.more").first
    assert more.is_visible()
    assert "alice@example.com" in more.locator("pre.details").inner_text()
    timeline = more.get_by_role("list", name="Lifecycle timeline")
    timeline.wait_for()
    phases = timeline.locator("li strong").all_inner_texts()
    assert phases == ["Creating", "Running", "Stopped"]
    title = more.locator("time").first.get_attribute("title")
    assert title and title.startswith("Local time: ")


def test_stored_script_and_markup_render_as_text(page: Any, site: Site) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{site.url}/ui/activity?namespace=evil")
    (row,) = rows(page)
    assert row["actor"] == XSS_ACTOR
    page.get_by_role("button", name="Details").click()
    details = page.locator("pre.details").inner_text()
    assert XSS_COMMAND.replace('"', '\\"') in details and XSS_ACTOR in details
    page.locator("tr.more ol, tr.more p").first.wait_for()
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("main img").count() == 0
    assert page.locator("main script").count() == 0
    assert not errors


def test_state_changing_requests_check_origin_and_pages_send_a_strict_csp(site: Site) -> None:
    with httpx.Client(base_url=site.url) as client:
        page = client.get("/ui/signin")
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        form = {"api_key": KEYS["carol"]}
        assert client.post("/ui/signin", data=form).status_code == 403  # no Origin
        foreign = client.post("/ui/signin", data=form, headers={"Origin": "https://evil.test"})
        assert foreign.status_code == 403 and COOKIE not in foreign.cookies
        own = client.post("/ui/signin", data=form, headers={"Origin": site.url})
        assert own.status_code == 303 and own.cookies.get(COOKIE)
        # A cookie never authorizes a change through the JSON API.
        body = {"name": "via-cookie", "templateRef": {"name": "minimal"}}
        made = client.post("/api/v1/sandboxes", json=body, headers={"Origin": site.url})
        assert made.status_code == 401


def test_dev_auth_needs_no_sign_in(browser: Any, tmp_path: Any) -> None:
    with running_router(config_for(tmp_path, f"sqlite:///{tmp_path}/dev.db", keys=None,
                                   dev_auth=True)) as router:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{router.url}/")
        assert urlparse(page.url).path == "/ui/activity"
        assert page.get_by_role("heading", name="Activity").is_visible()
        assert page.get_by_role("button", name="Sign out").count() == 0
        page.goto(f"{router.url}/ui/signin")
        assert urlparse(page.url).path == "/ui/activity"
        context.close()


def test_both_exports_download_exactly_the_filtered_view(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/ui/activity?actor=robot&outcome=error")
    http = httpx.Client(base_url=f"{site.url}/api/v1", headers={"X-API-Key": KEYS["carol"]})
    expected = http.get("/audit/events", params={"actor": "robot", "outcome": "error",
                                                 "limit": 1000}).json()["events"]
    http.close()
    assert len(expected) == 7
    with page.expect_download() as waiting:
        page.get_by_role("link", name="Export CSV").click()
    text = waiting.value.path().read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["eventId"] for r in rows] == [e["eventId"] for e in expected]
    assert {(r["actor"], r["outcome"]) for r in rows} == {("robot", "error")}
    with page.expect_download() as waiting:
        page.get_by_role("link", name="Export JSONL").click()
    lines = waiting.value.path().read_text(encoding="utf-8").splitlines()
    parsed = [json.loads(line) for line in lines]
    assert [p["eventId"] for p in parsed] == [e["eventId"] for e in expected]
    assert parsed[0]["details"] == expected[0]["details"]
