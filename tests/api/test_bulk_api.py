"""Bulk create and bulk actions over real HTTP: one result and one audit event per item."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from router_helpers import Router, config_for, eventually, running_router, stored_audit

STORE = "bulk.db"


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    with running_router(config_for(tmp_path, f"sqlite:///{tmp_path}/{STORE}")) as router:
        yield router


def _item(name: str, template: str = "minimal") -> dict[str, object]:
    return {"name": name, "namespace": "default",
            "templateRef": {"name": template, "kind": "ClusterSandboxTemplate"}}


def _audit(router: Router, tmp_path: Path, **query: str) -> list[tuple[str, str, str]]:
    assert router.state.recorder.flush(10)
    return [(e.action, e.sandbox_id, e.outcome)
            for e in stored_audit(f"sqlite:///{tmp_path}/{STORE}", **query)]


def _running(router: Router, *names: str) -> None:
    def all_running() -> bool:
        phases = {s.name: s.phase.value for s in router.state.control_plane.list()}
        return all(phases.get(n) == "Running" for n in names)
    eventually(all_running, f"{names} to be Running")


def test_bulk_create_reports_each_item(router: Router, tmp_path: Path) -> None:
    response = router.http("alice").post("/sandboxes/bulk", json={"items": [
        _item("b-1"), _item("b-2", "no-such-template"), _item("b-3"), _item("b-1")]})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["index"], r["status"], r["sandboxId"]) for r in results] == [
        (0, "created", "b-1"), (1, "error", None), (2, "created", "b-3"), (3, "error", None)]
    assert "no-such-template" in results[1]["error"]
    assert results[3]["error"]  # the name is taken
    assert _audit(router, tmp_path, action="create") == [
        ("create", "b-1", "success"), ("create", "b-2", "error"), ("create", "b-3", "success"),
        ("create", "b-1", "error")]
    details = [json.loads(e.details) for e in stored_audit(
        f"sqlite:///{tmp_path}/{STORE}", action="create")]
    assert [d["bulkIndex"] for d in details] == [0, 1, 2, 3]


def test_bulk_action_with_per_item_rules(router: Router, tmp_path: Path) -> None:
    alice, bob = router.http("alice"), router.http("bob")
    alice.post("/sandboxes/bulk", json={"items": [_item("a-1"), _item("a-2")]})
    bob.post("/sandboxes/bulk", json={"items": [_item("bob-1")]})
    _running(router, "a-1", "a-2", "bob-1")

    stopped = alice.post("/sandboxes/bulk-action",
                         json={"action": "stop", "ids": ["a-1", "bob-1", "nope", "a-2"]})
    assert stopped.status_code == 200, stopped.text
    assert [(r["id"], r["status"]) for r in stopped.json()["results"]] == [
        ("a-1", "ok"), ("bob-1", "error"), ("nope", "error"), ("a-2", "ok")]
    assert "not found" in stopped.json()["results"][1]["error"]  # bob's is invisible to alice
    again = alice.post("/sandboxes/bulk-action", json={"action": "stop", "ids": ["a-1"]})
    assert again.json()["results"][0]["status"] == "error"  # not Running any more: 409 rules
    deleted = alice.post("/sandboxes/bulk-action", json={"action": "delete", "ids": ["a-1"]})
    assert deleted.json()["results"] == [{"id": "a-1", "status": "ok", "error": None}]
    assert _audit(router, tmp_path, action="stop") == [
        ("stop", "a-1", "success"), ("stop", "bob-1", "denied"), ("stop", "nope", "denied"),
        ("stop", "a-2", "success"), ("stop", "a-1", "error")]
    assert _audit(router, tmp_path, action="delete") == [("delete", "a-1", "success")]


def test_bulk_refusals(router: Router, tmp_path: Path) -> None:
    anonymous = router.http()
    assert anonymous.post("/sandboxes/bulk", json={"items": [_item("x")]}).status_code == 401
    assert anonymous.post("/sandboxes/bulk-action",
                          json={"action": "stop", "ids": ["x"]}).status_code == 401
    alice = router.http("alice")
    for body in ({"items": []}, {"items": "x"}):
        assert alice.post("/sandboxes/bulk", json=body).status_code == 400
    for body in ({"action": "explode", "ids": ["x"]}, {"action": "stop", "ids": []}):
        assert alice.post("/sandboxes/bulk-action", json=body).status_code == 400
    assert _audit(router, tmp_path, outcome="denied") == [
        ("bulk-create", "", "denied"), ("bulk-action", "", "denied")]
    assert router.state.control_plane.list() == []


def test_bulk_and_files_on_the_kubernetes_plane(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Bulk works through the contract on any plane, and so do files (through pods/exec)."""
    from kubecontroller import Controller, seed_templates
    from kubefake import FakeKubernetes

    with FakeKubernetes() as kube:
        seed_templates(kube)
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig")))
        controller = Controller(kube)
        config = config_for(tmp_path, f"sqlite:///{tmp_path}/{STORE}",
                            control_plane_url="kubernetes://")
        with running_router(config) as router:
            alice = router.http("alice")
            eventually(lambda: alice.get("/sandboxes").status_code == 200, "the informer")
            created = alice.post("/sandboxes/bulk", json={"items": [
                _item("k-1", "general-coding"), _item("k-2", "no-such-template")]})
            assert [r["status"] for r in created.json()["results"]] == ["created", "error"]
            controller.reconcile("k-1", "default")
            controller.run("k-1", "default")
            _running(router, "k-1")
            stopped = alice.post("/sandboxes/bulk-action",
                                 json={"action": "stop", "ids": ["k-1", "k-9"]})
            assert [r["status"] for r in stopped.json()["results"]] == ["ok", "error"]
            assert kube.get("sandboxes", "default", "k-1") is not None
            controller.act_on_stop("k-1", "default")
            eventually(lambda: router.state.control_plane.get("k-1", "default").phase.value
                       == "Stopped", "k-1 to stop")
            # running again, for the files check: the pod's workspace is a directory here
            # (its spec.storage.mountPath; tests/kubefake.py says why)
            workspace = tmp_path / "k-1-workspace"
            workspace.mkdir()
            kube.patch("sandboxes", "default", "k-1",
                       {"spec": {"storage": {"mountPath": str(workspace)}}})
            controller.run("k-1", "default")
            _running(router, "k-1")
            written = alice.put("/sandboxes/k-1/files/workspace/a.txt", content=b"through exec")
            assert written.status_code == 201, written.text
            assert (workspace / "a.txt").read_bytes() == b"through exec"
            assert alice.get("/sandboxes/k-1/files/workspace/a.txt").content == b"through exec"
            assert _audit(router, tmp_path, action="stop") == [
                ("stop", "k-1", "success"), ("stop", "k-9", "denied")]
        assert kube.rejected == []
