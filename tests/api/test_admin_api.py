"""The admin fleet views over real HTTP, read back by the SDK's ``SandboxSummary``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from agenttier.models import SandboxSummary
from router_helpers import Router, config_for, running_router, stored_audit

STORE = "admin.db"


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    with running_router(config_for(tmp_path, f"sqlite:///{tmp_path}/{STORE}")) as router:
        router.client("alice").create_sandbox("minimal", "a-1")
        router.client("bob").create_sandbox("minimal", "b-1", namespace="ops")
        yield router


def test_admin_sees_every_sandbox(router: Router) -> None:
    body = router.http("carol").get("/admin/sandboxes").json()
    summaries = [SandboxSummary.model_validate(s) for s in body["sandboxes"]]
    assert [(s.name, s.namespace) for s in summaries] == [("a-1", "default"), ("b-1", "ops")]
    assert all(s["scopedApiKeys"] == [] for s in body["sandboxes"])
    ops = router.http("carol").get("/admin/sandboxes", params={"namespace": "ops"}).json()
    assert [s["name"] for s in ops["sandboxes"]] == ["b-1"]


def test_admin_sharing_lists_every_grant(router: Router) -> None:
    assert router.http("carol").get("/admin/sharing").json() == {"sandboxes": []}
    router.http("alice").post("/sandboxes/a-1/share",
                              json={"identity": "bob", "level": "viewer"})
    router.http("alice").post("/sandboxes/a-1/share",
                              json={"identity": "ops", "level": "collaborator", "kind": "group"})
    assert router.http("carol").get("/admin/sharing").json() == {"sandboxes": [{
        "sandboxId": "a-1", "namespace": "default", "owner": "alice",
        "users": [{"identity": "bob", "level": "viewer"}],
        "groups": [{"identity": "ops", "level": "collaborator"}], "shareLinks": []}]}


def test_admin_views_are_for_admins_and_recorded(router: Router, tmp_path: Path) -> None:
    for path in ("/admin/sandboxes", "/admin/sharing"):
        assert router.http().get(path).status_code == 401
        response = router.http("alice").get(path)
        assert (response.status_code, response.json()) == (403, {"error": "admin_required"})
        assert router.http("carol").get(path).status_code == 200
    assert router.state.recorder.flush(10)
    events = stored_audit(f"sqlite:///{tmp_path}/{STORE}", resource="admin")
    assert [(e.action, e.actor, e.outcome) for e in events] == [
        ("admin.sandboxes", "anonymous", "denied"), ("admin.sandboxes", "alice", "denied"),
        ("admin.sandboxes", "carol", "success"), ("admin.sharing", "anonymous", "denied"),
        ("admin.sharing", "alice", "denied"), ("admin.sharing", "carol", "success")]
