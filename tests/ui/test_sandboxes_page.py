"""The sandboxes page in Chromium: what each caller may see, and the links to its history."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from browser_helpers import Site, launch, seeded_site, sign_in
from router_helpers import KEYS


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch() as opened:
        yield opened


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("ui-sandboxes")
    with seeded_site(tmp, f"sqlite:///{tmp}/store.db") as running:
        yield running


def table(page: Any) -> dict[str, list[str]]:
    found = {}
    for row in page.locator("table.grid tbody tr").all():
        name = row.locator("th").inner_text().split()[0]
        found[name] = row.locator("td").all_inner_texts()
    return found


def test_an_admin_sees_every_sandbox_with_phase_owner_template_age_and_cost(
        browser: Any, site: Site) -> None:
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, site.url, "carol")
    page.get_by_role("link", name="Sandboxes").click()
    page.wait_for_load_state()
    headers = page.locator("table.grid thead th").all_inner_texts()
    assert headers == ["Sandbox", "Phase", "Owner", "Template", "Age", "Cost so far (USD)",
                       "History"]
    shown = table(page)
    assert set(shown) == {"sb-alice", "sb-bob"}
    assert shown["sb-alice"][:3] == ["Stopped", "alice", "minimal"]
    assert shown["sb-bob"][:3] == ["Running", "bob", "minimal"]
    totals = site.router.http("carol").get("/records/costs", params={"groupBy": "sandbox"})
    usd = {t["key"]: (t["estimatedUsd"], t["samples"]) for t in totals.json()["totals"]}
    assert usd["default/sb-alice"][1] >= 1  # it ran and stopped: a cost snapshot
    assert shown["sb-alice"][4] == f"{usd['default/sb-alice'][0]:.6f}"
    page.locator("tr", has_text="sb-alice").get_by_role("link", name="Activity").click()
    page.wait_for_load_state()
    query = parse_qs(urlparse(page.url).query)
    assert query == {"sandbox": ["sb-alice"], "namespace": ["default"]}
    sandboxes = page.locator("table.activity tbody tr.event td.sandbox").all_inner_texts()
    assert sandboxes and all(s.split()[0] == "sb-alice" for s in sandboxes)
    context.close()


def test_a_user_sees_only_their_sandboxes_without_history_links(browser: Any,
                                                                 site: Site) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{site.url}/ui/activity")  # asked for a history page: sign in, then told no
    page.get_by_label("API key", exact=True).fill(KEYS["bob"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert urlparse(page.url).path == "/ui/activity"
    assert page.get_by_role("heading", name="Admins only").is_visible()
    page.goto(f"{site.url}/ui/")
    assert urlparse(page.url).path == "/ui/sandboxes"
    shown = table(page)
    assert list(shown) == ["sb-bob"]
    assert page.get_by_role("link", name="Activity", exact=True).count() == 1  # the nav only
    context.close()
