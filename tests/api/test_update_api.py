"""``PATCH /sandboxes/{id}`` over real HTTP, on the local plane: what applies when, who may,
what bad input gets, and the audit event of every outcome.

The published SDK (0.8.1) has no ``Sandbox.update``; :func:`_update` is the
upstream head's method, over the SDK's own HTTP client and error mapping.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import agenttier
import pytest
from agenttier._http import raise_for_status
from agenttier.exceptions import AuthorizationError, NotFoundError
from kubecontroller import Controller, seed_templates
from kubefake import FakeKubernetes
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

from agenttier_router.controlplane import Phase, Sandbox
from agenttier_router.storage import AuditFilter

RESTART = "resource changes take effect after the sandbox is stopped and resumed"
NOTHING = "at least one of idleTimeout, resources, labels, annotations is required"
HOUR = timedelta(hours=1)


def _update(sandbox: agenttier.Sandbox, idle_timeout: str | None = None,
            resources: dict[str, Any] | None = None, labels: dict[str, Any] | None = None,
            annotations: dict[str, Any] | None = None) -> dict[str, Any]:
    """The SDK's ``Sandbox.update`` as upstream's head has it."""
    body = {key: value for key, value in (
        ("idleTimeout", idle_timeout), ("resources", resources), ("labels", labels),
        ("annotations", annotations)) if value is not None}
    if not body:
        raise ValueError("at least one field must be given")
    response = sandbox._http.patch(f"/sandboxes/{sandbox.id}", json=body)
    raise_for_status(response)
    result: dict[str, Any] = response.json()
    return result


def _plane(router: Router, name: str) -> Sandbox:
    return router.state.control_plane.get(name, "default")


def _handle(router: Router, who: str, name: str) -> agenttier.Sandbox:
    """The SDK's handle on a sandbox ``who`` may not be able to see (no lookup first)."""
    return agenttier.Sandbox(http=router.client(who)._http, sandbox_id=name, name=name,
                             namespace="default")


def _started(router: Router, who: str, name: str,
             template: str = "general-coding") -> agenttier.Sandbox:
    client = router.client(who)
    sandbox = client.create_sandbox(template, name)
    wait_phase(client, name)
    return sandbox


def test_an_update_applies_now_or_at_the_next_start_and_is_recorded(
        store_url: str, tmp_path: Path) -> None:
    with running_router(config_for(tmp_path, store_url)) as router:
        sandbox = _started(router, "alice", "sb-up")
        reply = _update(sandbox, idle_timeout="1h30m", labels={"team": "ml", "tier": "b"},
                        annotations={"example.com/note": "hello"})
        assert reply == {"sandboxId": "sb-up", "restartRequired": False, "message": None,
                         "applied": {"idleTimeout": "immediately", "labels": "immediately",
                                     "annotations": "immediately"}}
        now = _plane(router, "sb-up")
        assert now.idle_timeout == 5400.0
        assert dict(now.labels) == {"team": "ml", "tier": "b"}
        assert dict(now.annotations) == {"example.com/note": "hello"}

        # Merged: a null removes a key, the others stay.
        _update(sandbox, labels={"tier": None, "zone": "eu"})
        assert dict(_plane(router, "sb-up").labels) == {"team": "ml", "zone": "eu"}

        reply = _update(sandbox, resources={"requests": {"cpu": "2", "memory": "4Gi"}})
        assert reply == {"sandboxId": "sb-up", "applied": {"resources": "on-restart"},
                         "restartRequired": True, "message": RESTART}
        shown = router.client("alice")._http.get("/sandboxes/sb-up").json()  # read back
        assert {k: shown[k] for k in ("labels", "annotations", "idleTimeout", "resources",
                                      "restartRequired")} == {
            "labels": {"team": "ml", "zone": "eu"}, "annotations": {"example.com/note": "hello"},
            "idleTimeout": "1h30m0s", "resources": {"requests": {"cpu": "2", "memory": "4Gi"}},
            "restartRequired": True}
        pending = _plane(router, "sb-up")
        assert (pending.template.cpu, pending.template.memory_gib) == (0.5, 1.0)  # until...
        assert pending.restart_pending
        assert dict(pending.resources.requests) == {"cpu": "2", "memory": "4Gi"}  # type: ignore[union-attr]
        sandbox.stop()
        sandbox.resume()
        wait_phase(router.client("alice"), "sb-up")
        resumed = _plane(router, "sb-up")
        assert (resumed.template.cpu, resumed.template.memory_gib) == (2.0, 4.0)
        assert not resumed.restart_pending
        assert dict(resumed.labels) == {"team": "ml", "zone": "eu"}  # kept across the restart
        sandbox.stop()

    updates = stored_audit(store_url, action="update")
    assert [(e.actor, e.sandbox_id, e.outcome) for e in updates] == [("alice", "sb-up",
                                                                      "success")] * 3
    details = [json.loads(e.details) for e in updates]
    assert details[0]["fields"] == ["idleTimeout", "labels", "annotations"]
    assert (details[0]["idleTimeout"], details[0]["labels"]) == ("1h30m",
                                                                 {"team": "ml", "tier": "b"})
    assert details[0]["annotationKeys"] == ["example.com/note"]
    assert details[1]["labels"] == {"tier": None, "zone": "eu"}
    assert details[2]["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"}}

    # The cost follows the resources the sandbox ran with: the old ones until its restart.
    transitions = stored_sandbox_events(store_url, sandbox_id="sb-up")
    runs = [t for t in transitions if t.phase in ("Running", "Stopped")]
    assert [t.phase for t in runs] == ["Running", "Stopped", "Running", "Stopped"]
    costs = stored_costs(store_url, sandbox_id="sb-up")
    for (begin, end), (cpu, gib) in zip([(runs[0], runs[1]), (runs[2], runs[3])],
                                        [(0.5, 1.0), (2.0, 4.0)], strict=True):
        pieces = [c for c in costs if begin.time < c.time <= end.time]
        hours = (end.time - begin.time) / HOUR
        assert sum(c.cpu_hours for c in pieces) == pytest.approx(cpu * hours, rel=1e-9, abs=0)
        assert sum(c.mem_gb_hours for c in pieces) == pytest.approx(gib * hours, rel=1e-9,
                                                                     abs=0)


BAD = [
    pytest.param({}, "request", NOTHING, id="empty-body"),
    pytest.param({"labels": None, "idleTimeout": None}, "request", NOTHING, id="all-null"),
    pytest.param({"idleTimeout": "-5m"}, "idleTimeout", "Go duration > 0", id="negative"),
    pytest.param({"idleTimeout": "0s"}, "idleTimeout", "Go duration > 0", id="zero"),
    pytest.param({"idleTimeout": "soon"}, "idleTimeout", "'soon'", id="garbage-duration"),
    pytest.param({"idleTimeout": "30"}, "idleTimeout", "Go duration", id="no-unit"),
    pytest.param({"resources": {"requests": {"cpu": "lots"}}}, "resources",
                 "requests.cpu: 'lots' is not a Kubernetes quantity", id="bad-cpu"),
    pytest.param({"resources": {"limits": {"memory": "512m"}}}, "resources",
                 "limits.memory", id="milli-bytes"),
    pytest.param({"resources": {"requests": {"gpu": "1"}}}, "resources", "'gpu'",
                 id="unknown-resource"),
    pytest.param({"resources": {"requests": {"cpu": "-1"}}}, "resources", "requests.cpu",
                 id="negative-cpu"),
    pytest.param({"resources": {"requests": {"cpu": "4"}, "limits": {"cpu": "2"}}},
                 "resources", "may not exceed limits.cpu", id="request-over-limit"),
    pytest.param({"resources": {"cpus": {}}}, "resources", "'cpus'", id="unknown-part"),
    pytest.param({"labels": {"bad key": "x"}}, "labels", "'bad key'", id="label-key"),
    pytest.param({"labels": {"UPPER.example.com/x": "y"}}, "labels", "prefix",
                 id="label-prefix"),
    pytest.param({"labels": {"x": "y" * 64}}, "labels", "value of 'x'", id="label-value"),
    pytest.param({"labels": {"agenttier.io/action": "stop"}}, "labels", "reserved",
                 id="reserved-label"),
    pytest.param({"annotations": {"agenttier.io/action": "stop"}}, "annotations", "reserved",
                 id="reserved-annotation"),
    pytest.param({"annotations": {"-x": "y"}}, "annotations", "'-x'", id="annotation-key"),
    pytest.param({"annotations": {"big": "x" * (256 * 1024)}}, "annotations",
                 "at most 262144 bytes", id="annotations-too-big"),
]


@pytest.fixture(scope="module")
def shared_router(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp_path = tmp_path_factory.mktemp("update")
    with running_router(config_for(tmp_path, f"sqlite:///{tmp_path}/update.db")) as router:
        _started(router, "alice", "sb-bad")
        yield router


@pytest.mark.parametrize(("body", "field", "says"), BAD)
def test_bad_input_is_a_400_naming_the_field_and_changes_nothing(
        shared_router: Router, body: dict[str, Any], field: str, says: str) -> None:
    before = _plane(shared_router, "sb-bad")
    response = shared_router.http("alice").patch("/sandboxes/sb-bad", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert says in error["error"]
    if field == "request":
        assert error["error"] == NOTHING
    assert error["fields"][0]["field"] == field
    assert _plane(shared_router, "sb-bad") == before
    assert shared_router.state.recorder.flush(10)
    last = shared_router.state.backend.list_audit_events(
        AuditFilter(action="update", limit=1)).items[0]
    assert (last.actor, last.outcome, last.sandbox_id) == ("alice", "error", "sb-bad")
    assert json.loads(last.details)["error"] == error["error"]


def test_an_empty_map_counts_as_present(shared_router: Router) -> None:
    sandbox = shared_router.client("alice").get_sandbox("sb-bad")
    assert _update(sandbox, labels={}) == {"sandboxId": "sb-bad", "restartRequired": False,
                                           "applied": {"labels": "immediately"},
                                           "message": None}
    with pytest.raises(ValueError):
        _update(sandbox)  # as the SDK does, before any request


def test_only_the_owner_or_an_admin_may_update(store_url: str, tmp_path: Path) -> None:
    with running_router(config_for(tmp_path, store_url)) as router:
        _started(router, "alice", "sb-who")
        as_bob = router.client("bob").get_sandbox
        # Not shared with bob: as if it did not exist.
        with pytest.raises(NotFoundError):
            _update(_handle(router, "bob", "sb-who"), labels={"x": "y"})
        owner = router.http("alice")
        for level in ("viewer", "collaborator"):
            shared = owner.post("/sandboxes/sb-who/share",
                                json={"identity": "bob", "level": level, "kind": "user"})
            assert shared.status_code == 200, shared.text
            with pytest.raises(AuthorizationError):
                _update(as_bob("sb-who"), labels={"x": "y"})
        admin = _update(router.client("carol").get_sandbox("sb-who"), idle_timeout="10m")
        assert admin["applied"] == {"idleTimeout": "immediately"}
        assert router.http().patch("/sandboxes/sb-who",
                                   json={"labels": {"x": "y"}}).status_code == 401
        with pytest.raises(NotFoundError):
            _update(_handle(router, "alice", "nope"), labels={"x": "y"})
        assert dict(_plane(router, "sb-who").labels) == {}
        assert _plane(router, "sb-who").idle_timeout == 600.0
    events = stored_audit(store_url, action="update")
    assert [(e.actor, e.sandbox_id, e.outcome) for e in events] == [
        ("bob", "sb-who", "denied"), ("bob", "sb-who", "denied"), ("bob", "sb-who", "denied"),
        ("carol", "sb-who", "success"), ("anonymous", "sb-who", "denied"),
        ("alice", "nope", "denied")]
    assert json.loads(events[1].details)["labels"] == {"x": "y"}


def test_an_idle_sandbox_is_stopped_after_its_idle_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/idle.db"
    with running_router(config_for(tmp_path, url)) as router:
        sandbox = _started(router, "alice", "sb-idle", "minimal")
        busy = _started(router, "alice", "sb-busy", "minimal")
        _update(sandbox, idle_timeout="1s")
        # A generous deadline: the plane looks twice a second, the machine may be loaded.
        eventually(lambda: _plane(router, "sb-idle").phase is Phase.STOPPED,
                   "sb-idle to stop when idle", timeout=60)
        assert _plane(router, "sb-idle").message == "Idle for 1s"
        assert _plane(router, "sb-busy").phase is Phase.RUNNING  # no idle timeout: runs on
        # Resumed, it runs again until idle again.
        sandbox.resume()
        eventually(lambda: _plane(router, "sb-idle").phase is Phase.STOPPED,
                   "sb-idle to stop again", timeout=60)
        busy.stop()
    stops = [(t.phase, t.reason, t.message)
             for t in stored_sandbox_events(url, sandbox_id="sb-idle") if t.phase == "Stopped"]
    assert stops == [("Stopped", "IdleTimeout", "Idle for 1s")] * 2


def test_an_update_on_the_kubernetes_plane(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/kube.db"
    with FakeKubernetes() as kube:
        seed_templates(kube)
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig")))
        controller = Controller(kube)
        config = config_for(tmp_path, url, control_plane_url="kubernetes://")
        with running_router(config) as router:
            alice = router.client("alice")
            eventually(lambda: router.http("alice").get("/sandboxes").status_code == 200,
                       "the informer to sync")
            sandbox = alice.create_sandbox(template="general-coding", name="sb-k")
            controller.reconcile("sb-k", "default")
            controller.run("sb-k", "default")
            wait_phase(alice, "sb-k")
            reply = _update(sandbox, idle_timeout="45m", labels={"team": "ml"},
                            resources={"requests": {"cpu": "1", "memory": "4Gi"}})
            assert reply["applied"] == {"idleTimeout": "immediately", "labels": "immediately",
                                        "resources": "on-restart"}
            written = kube.get("sandboxes", "default", "sb-k")
            assert written is not None
            assert written["spec"]["idleTimeout"] == "45m0s"
            assert written["spec"]["resources"]["requests"] == {"cpu": "1", "memory": "4Gi"}
            assert written["metadata"]["labels"] == {"team": "ml"}
            pending = _plane(router, "sb-k")
            assert (pending.template.cpu, pending.restart_pending) == (0.5, True)
            sandbox.stop()
            controller.act_on_stop("sb-k", "default")
            wait_phase(alice, "sb-k", "Stopped")
            sandbox.resume()
            controller.run("sb-k", "default")
            wait_phase(alice, "sb-k")
            eventually(lambda: _plane(router, "sb-k").template.cpu == 1.0, "the new rate")
            assert _plane(router, "sb-k").template.memory_gib == 4.0
            sandbox.stop()
            controller.act_on_stop("sb-k", "default")
            wait_phase(alice, "sb-k", "Stopped")
            assert router.state.recorder.flush(10)
        assert kube.rejected == []  # every object the Router wrote fits our CRDs
    updates = stored_audit(url, action="update")
    assert [(e.actor, e.outcome) for e in updates] == [("alice", "success")]
    # (The fake controller's whole-second times give these runs no length to cost: the
    # contract suite checks that the Running transition the cost sampler reads has the rate.)
