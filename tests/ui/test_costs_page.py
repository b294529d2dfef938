"""The costs page in Chromium, against a real Router over HTTP (SQLite, PostgreSQL).

Every figure on the page is checked against the JSON API for the same window,
which the page states in ``<time datetime>`` elements.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from browser_helpers import XSS_ACTOR, Site, launch, seeded_site, sign_in
from realdb import IsolatedDatabase


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch() as opened:
        yield opened


@pytest.fixture(scope="module", params=[pytest.param(k, id=k) for k in ("sqlite", "postgresql")])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         browser: Any) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp(f"costs-{request.param}")
    db = IsolatedDatabase(request.param, tmp)
    try:
        with seeded_site(tmp, db.url) as running:
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


def window(page: Any) -> tuple[str, str]:
    since = page.locator("time#since").get_attribute("datetime")
    until = page.locator("time#until").get_attribute("datetime")
    return since, until


def api_totals(site: Site, group: str, since: str, until: str, **filters: str
               ) -> dict[str, dict[str, Any]]:
    body = site.router.http("carol").get("/records/costs", params={
        "groupBy": group, "since": since, "until": until, **filters}).json()
    return {t["key"]: t for t in body["totals"]}


def table(page: Any) -> dict[str, list[str]]:
    found = {}
    for row in page.locator("table.costs tbody tr").all():
        found[row.locator("th").inner_text()] = row.locator("td").all_inner_texts()
    return found


def test_each_grouping_matches_the_api_and_shares_add_up(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/ui/costs")
    since, until = window(page)
    for group in ("namespace", "owner", "template", "sandbox"):
        page.get_by_label("Group by", exact=True).select_option(group)
        page.get_by_role("button", name="Apply").click()
        page.wait_for_load_state()
        assert window(page)[0] >= since
        since, until = window(page)
        expected = api_totals(site, group, since, until)
        shown = table(page)
        assert set(shown) == set(expected), group
        for key, cells in shown.items():
            # Shown rounded (4 and 3 places); the series and the totals may sum in
            # another order, so a value on a rounding boundary may round either way.
            usd, cpu = expected[key]["estimatedUsd"], expected[key]["cpuHours"]
            assert float(cells[2]) == pytest.approx(usd, abs=0.51e-4), (group, key)
            assert float(cells[0]) == pytest.approx(cpu, abs=0.51e-3), (group, key)
        total = sum(t["estimatedUsd"] for t in expected.values())
        assert float(page.locator("#total-usd").inner_text()) == pytest.approx(total, abs=0.51e-4)
        shares = sum(float(c[3].rstrip("%")) for c in shown.values())
        assert shares == pytest.approx(100, abs=0.1 * len(shown))
        assert page.locator("svg.chart rect").count() > 0


def test_the_previous_window_and_the_price_table_are_shown(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/ui/costs?window=7d")
    since, until = window(page)
    from datetime import timedelta

    from agenttier_router.storage import format_ts, parse_ts
    start, end = parse_ts(since), parse_ts(until)
    before = api_totals(site, "namespace", format_ts(start - (end - start)), since)
    expected = sum(t["estimatedUsd"] for t in before.values())
    assert expected > 0
    assert float(page.locator("#prev-usd").inner_text()) == pytest.approx(expected, abs=0.51e-4)
    assert end - start == timedelta(days=7)
    prices = page.get_by_role("table", name="The price table this Router estimates costs with")
    assert prices.locator("tbody tr").all_inner_texts() == [
        "vCPU\t0.031611", "GiB of memory\t0.004237"]


def test_a_group_drills_down_to_its_sandboxes_and_a_sandbox_to_its_history(
        page: Any, site: Site) -> None:
    page.goto(f"{site.url}/ui/costs?window=7d&groupBy=namespace")
    page.get_by_role("link", name="ml", exact=True).click()
    page.wait_for_load_state()
    query = parse_qs(urlparse(page.url).query)
    assert query["groupBy"] == ["sandbox"] and query["namespace"] == ["ml"]
    assert set(table(page)) == {"ml/train-1", "ml/nb-2"}
    page.get_by_role("link", name="ml/train-1").click()
    page.wait_for_load_state()
    since, until = window(page)
    snapshots = site.router.http("carol").get("/records/costs", params={
        "sandbox": "train-1", "namespace": "ml", "since": since, "until": until,
        "limit": 500}).json()["snapshots"]
    shown = page.locator("table.snapshots tbody tr").count()
    assert shown == len(snapshots) == 71
    assert set(table(page)) == {"ml/train-1"}
    assert page.get_by_role("heading", name="Transitions of train-1").is_visible()
    # sb-alice is real: its drill-down shows the transitions the Router recorded.
    page.goto(f"{site.url}/ui/costs?window=7d&groupBy=sandbox&namespace=default"
              "&sandbox=sb-alice")
    phases = page.locator("table.transitions tbody tr td:nth-child(2)").all_inner_texts()
    assert phases == ["Stopped", "Running", "Creating"]


def test_the_csv_export_is_exactly_the_window(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/ui/costs?window=7d&namespace=web&groupBy=owner")
    since, until = window(page)
    with page.expect_download() as waiting:
        page.get_by_role("link", name="Export CSV").click()
    rows = list(csv.DictReader(io.StringIO(waiting.value.path().read_text(encoding="utf-8"))))
    expected = site.router.http("carol").get("/records/costs", params={
        "namespace": "web", "since": since, "until": until, "limit": 1000}).json()["snapshots"]
    assert len(rows) == len(expected) > 0
    assert {r["namespace"] for r in rows} == {"web"}
    assert {r["owner"] for r in rows} == {"erin", XSS_ACTOR}


def test_stored_markup_in_a_group_key_renders_as_text(page: Any, site: Site) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{site.url}/ui/costs?window=7d&groupBy=owner")
    assert XSS_ACTOR in table(page)
    assert XSS_ACTOR in page.locator("ul.legend").inner_text()
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("main script").count() == 0
    assert not errors
