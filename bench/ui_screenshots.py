"""Screenshots of each page, for the README: sign-in, activity (and a row expanded), costs,
a sandbox's cost drill-down, sandboxes, and the non-admin's "admins only" page.

A Router runs in this process on a fresh SQLite file in ``bench/.data/``, with
three people (an admin and two users), real sandboxes made through the API,
and a synthetic month of audit events and cost snapshots written to the store.
Debian's Chromium (headless, through Playwright) signs in through the form and
saves 1280-pixel-wide PNGs into ``docs/ui/``. Run from the repo root::

    .venv/bin/python bench/ui_screenshots.py
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from router_common import DATA_DIR, fresh_sqlite
from ui_common import chromium, serve

from agenttier_router.api import RouterConfig
from agenttier_router.api.auth import load_keys
from agenttier_router.storage import AuditEvent, CostSnapshot, open_backend

OUT = Path(__file__).resolve().parent.parent / "docs" / "ui"
PEOPLE = {
    "maria": ("maria-admin-key-0123456789", ["agenttier-admins"]),
    "dev-alice": ("alice-user-key-0123456789", ["eng"]),
    "dev-bob": ("bob-user-key-01234567890a", ["eng"]),
}
TEAMS = [("ml-research", "dev-alice", "gpu-large", 4, 16), ("ml-research", "dev-bob",
          "general-coding", 2, 4), ("web", "dev-bob", "minimal", 1, 2),
         ("data", "dev-alice", "general-coding", 2, 4), ("ci", "ci-bot", "minimal", 1, 1)]


def history(now: datetime) -> list[Any]:
    """A month of audit events and hourly cost snapshots, a little random."""
    rng = random.Random(7)
    out: list[Any] = []
    for n in range(400):
        namespace, owner, *_ = rng.choice(TEAMS)
        outcome = rng.choices(["success", "denied", "error"], [90, 6, 4])[0]
        action = rng.choice(["exec", "exec", "exec", "create", "stop", "resume", "share"])
        details = {"command": rng.choice(["pytest -q", "python train.py --epochs 3",
                                          "pip install -r requirements.txt", "make build"])}
        if outcome != "success":
            details["reason"] = "not shared with you" if outcome == "denied" else "timed out"
        out.append(AuditEvent(actor=owner, action=action, namespace=namespace,
                              sandbox_id=f"{namespace}-{n % 7}", outcome=outcome,
                              details=details,
                              time=now - timedelta(minutes=7 + n * 100 + rng.randrange(60))))
    for i, (namespace, owner, template, cpu, mem) in enumerate(TEAMS):
        for h in range(1, 24 * 30):
            if rng.random() < 0.35 + 0.1 * i:
                continue
            out.append(CostSnapshot(
                sandbox_id=f"{namespace}-{i}", namespace=namespace, owner=owner,
                template=template, cpu_hours=float(cpu), mem_gb_hours=float(mem),
                estimated_usd=cpu * 0.031611 + mem * 0.004237,
                time=now - timedelta(hours=h, minutes=3)))
    return out


def main() -> None:
    DATA_DIR.mkdir(exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    url = fresh_sqlite(DATA_DIR / "ui_screenshots.db")
    keys_file = DATA_DIR / "ui_screenshots-keys.json"
    keys_file.write_text(json.dumps([
        {"key": key, "subject": who, "email": f"{who}@example.com", "groups": groups}
        for who, (key, groups) in PEOPLE.items()]), encoding="utf-8")
    config = RouterConfig(storage_url=url, keys=load_keys(keys_file, "agenttier-admins"),
                          data_dir=DATA_DIR / "ui_screenshots-data")
    now = datetime.now(UTC)
    with serve(config) as (base, app), chromium() as browser:
        for who, name, template in [("dev-alice", "notebook", "general-coding"),
                                    ("dev-bob", "api-tests", "minimal")]:
            response = httpx.post(f"{base}/api/v1/sandboxes", headers={
                "X-API-Key": PEOPLE[who][0]}, json={"name": name,
                                                     "templateRef": {"name": template}})
            response.raise_for_status()
        time.sleep(1)
        httpx.post(f"{base}/api/v1/sandboxes/api-tests/stop",
                   headers={"X-API-Key": PEOPLE["dev-bob"][0]}).raise_for_status()
        httpx.post(f"{base}/api/v1/sandboxes/notebook/stop",
                   headers={"X-API-Key": PEOPLE["dev-bob"][0]})  # denied: not bob's
        backend = open_backend(url)
        backend.write_batch(history(now))
        backend.close()
        app.state.services.recorder.flush(5)

        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(f"{base}/ui/signin")
        page.screenshot(path=str(OUT / "signin.png"))
        page.get_by_label("API key", exact=True).fill(PEOPLE["maria"][0])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        page.screenshot(path=str(OUT / "activity.png"))
        page.goto(f"{base}/ui/activity?outcome=denied")
        page.get_by_role("button", name="Details").first.click()
        page.locator("tr.more ol, tr.more p").first.wait_for()
        page.screenshot(path=str(OUT / "activity-denied-expanded.png"))
        page.goto(f"{base}/ui/costs?window=30d&groupBy=namespace")
        page.screenshot(path=str(OUT / "costs.png"), full_page=True)
        page.goto(f"{base}/ui/costs?window=7d&groupBy=owner&bucket=day")
        page.screenshot(path=str(OUT / "costs-by-owner.png"))
        page.goto(f"{base}/ui/costs?window=7d&groupBy=sandbox&namespace=web&sandbox=web-2")
        page.screenshot(path=str(OUT / "costs-sandbox.png"))
        page.goto(f"{base}/ui/sandboxes")
        page.screenshot(path=str(OUT / "sandboxes.png"))
        context.close()

        context = browser.new_context(viewport={"width": 1280, "height": 500})
        page = context.new_page()
        page.goto(f"{base}/ui/signin")
        page.get_by_label("API key", exact=True).fill(PEOPLE["dev-bob"][0])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        page.screenshot(path=str(OUT / "admins-only.png"))
        context.close()
    for path in sorted(OUT.glob("*.png")):
        print(f"  {path.relative_to(OUT.parent.parent)}  {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
