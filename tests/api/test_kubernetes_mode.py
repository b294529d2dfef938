"""The Router in kubernetes mode, end to end: the SDK drives it, a cluster (fake) answers.

The API server is :class:`kubefake.FakeKubernetes` over real HTTP (its docstring
says why it is a fake); :class:`kubecontroller.Controller` plays AgentTier's
controller. The Router is the real one, with the official client, and its
records go to real databases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from kubecontroller import Controller, seed_templates
from kubefake import FakeKubernetes
from router_helpers import (
    KEYS,
    config_for,
    eventually,
    free_port,
    running_router,
    stored_audit,
    stored_costs,
    stored_sandbox_events,
    wait_phase,
    write_keys,
)

SCRIPT = Path(sys.executable).with_name("agenttier-router")
NS = "default"


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as server:
        seed_templates(server)
        monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig(tmp_path / "kubeconfig")))
        yield server
        assert server.rejected == []  # every object the Router wrote fits our CRDs


def test_the_sdk_drives_the_router_against_a_cluster(
    kube: FakeKubernetes, store_url: str, tmp_path: Path
) -> None:
    controller = Controller(kube)
    config = config_for(tmp_path, store_url, control_plane_url="kubernetes://",
                        cost_interval=1.0)
    with running_router(config) as router:
        alice = router.client("alice")
        eventually(lambda: router.http("alice").get("/sandboxes").status_code == 200,
                   "the informer to sync")
        alice.create_sandbox(template="general-coding", name="sb-k")
        written = kube.get("sandboxes", NS, "sb-k")
        assert written is not None
        assert written["spec"]["templateRef"]["name"] == "general-coding"
        assert written["spec"]["createdBy"]["email"] == "alice@example.com"
        controller.reconcile("sb-k", NS)
        controller.run("sb-k", NS)
        wait_phase(alice, "sb-k")
        result = alice.get_sandbox("sb-k").exec("echo from the pod")
        assert (result.stdout, result.exit_code) == ("from the pod\n", 0)
        http = router.http("alice")
        shared = http.post("/sandboxes/sb-k/share",
                           json={"identity": "bob", "level": "viewer", "kind": "user"})
        assert shared.status_code == 200, shared.text
        assert router.client("bob").get_sandbox("sb-k").status().status == "Running"
        time.sleep(2.1)  # the cluster's times have whole seconds: let it run for some
        alice.get_sandbox("sb-k").stop()
        controller.act_on_stop("sb-k", NS)
        wait_phase(alice, "sb-k", "Stopped")
        assert router.state.recorder.flush(10)

    audit = [(e.actor, e.action, e.outcome) for e in stored_audit(store_url)]
    assert audit == [("alice", "create", "success"), ("alice", "exec", "success"),
                     ("alice", "share", "success"), ("alice", "stop", "success")]
    reasons = Counter(e.reason for e in stored_sandbox_events(store_url, sandbox_id="sb-k"))
    # Phase changes and the cluster's Events (the controller's and the Router's own).
    assert reasons["Creating"] >= 1 and reasons["ShareGranted"] == 1
    assert {"Running", "Stopped"} <= set(reasons)
    costs = stored_costs(store_url, sandbox_id="sb-k")
    assert costs and all(c.namespace == NS for c in costs)


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_cluster_answers_503_while_it_cannot_be_reached(
    kube: FakeKubernetes, store_url: str, tmp_path: Path
) -> None:
    kube.forbid("list", "sandboxes")
    config = config_for(tmp_path, store_url, control_plane_url="kubernetes://")
    with running_router(config) as router:
        response = router.http("alice").post("/sandboxes/any/stop")
        assert response.status_code == 503, response.text
        assert int(response.headers["Retry-After"]) >= 1
        assert "list" in response.json()["error"] and "sandboxes" in response.json()["error"]
        ready = httpx.get(f"{router.url}/readyz", headers={"X-API-Key": KEYS["alice"]})
        assert ready.status_code == 503
        assert ready.json()["controlPlane"]["state"] == "unavailable"
        kube.allow("list", "sandboxes")
        eventually(lambda: router.http("alice").get("/sandboxes").status_code == 200,
                   "the Router to recover by itself")
        eventually(lambda: httpx.get(f"{router.url}/readyz").status_code == 200, "ready")
        assert router.state.recorder.flush(10)
    [attempt] = stored_audit(store_url)
    assert (attempt.action, attempt.outcome) == ("stop", "error")


@contextmanager
def _router_process(tmp_path: Path, name: str, store_url: str) -> Iterator[str]:
    """``agenttier-router serve --control-plane kubernetes://`` in its own process."""
    home = tmp_path / name
    home.mkdir()
    write_keys(home)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "AGENTTIER_"))}
    with (home / "log").open("wb") as log:
        proc = subprocess.Popen(
            [str(SCRIPT), "serve", "--port", str(port), "--data-dir", str(home / "data"),
             "--control-plane", "kubernetes://", "--storage", store_url,
             "--api-keys", str(home / "keys.json"), "--cost-interval", "1"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}"

    def synced() -> bool:
        assert proc.poll() is None, (home / "log").read_text()
        try:
            return httpx.get(f"{url}/api/v1/sandboxes", timeout=2,
                             headers={"X-API-Key": KEYS["alice"]}).status_code == 200
        except httpx.TransportError:
            return False

    try:
        eventually(synced, f"{name} to serve", timeout=30)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_two_router_processes_store_everything_once(
    kube: FakeKubernetes, store_url: str, tmp_path: Path
) -> None:
    controller = Controller(kube)
    with ExitStack() as stack:
        one = stack.enter_context(_router_process(tmp_path, "one", store_url))
        two = stack.enter_context(_router_process(tmp_path, "two", store_url))
        alice = {"X-API-Key": KEYS["alice"]}
        created = httpx.post(f"{one}/api/v1/sandboxes", headers=alice, timeout=10,
                             json={"name": "sb-2", "templateRef": {"name": "general-coding"}})
        assert created.status_code == 201, created.text
        controller.reconcile("sb-2", NS)
        controller.run("sb-2", NS)

        def phase(url: str) -> str:
            got = httpx.get(f"{url}/api/v1/sandboxes/sb-2", headers=alice, timeout=5)
            return str(got.json().get("status")) if got.status_code == 200 else ""

        eventually(lambda: phase(two) == "Running", "replica two to see it Running")
        eventually(lambda: phase(one) == "Running", "replica one to see it Running")
        time.sleep(2.5)  # both replicas tick through a few buckets of 1 s
        stopped = httpx.post(f"{two}/api/v1/sandboxes/sb-2/stop", headers=alice, timeout=10)
        assert stopped.status_code == 200, stopped.text  # created through one, stopped by two
        controller.act_on_stop("sb-2", NS)
        eventually(lambda: phase(one) == "Stopped" and phase(two) == "Stopped", "Stopped")
    # Both processes have exited, having drained their recorders into the one database.
    events = stored_sandbox_events(store_url, sandbox_id="sb-2")
    assert len({e.event_id for e in events}) == len(events)
    # Three phase changes and the controller's two Events, each once, though two replicas
    # watched them all: a phase change and an Event can read alike, hence the 2. (An
    # Event's phase is the sandbox's as its observer saw it: it may lag the Event.)
    assert Counter((e.reason, e.message) for e in events) == Counter({
        ("Creating", ""): 1,
        ("Creating", "Sandbox creation started"): 1,
        ("Running", ""): 1,
        ("Stopped", "User requested stop"): 2,
    })
    started = next(e.time for e in events if e.phase == "Running")
    # The phase change is written before the controller's Event about it.
    ended = min(e.time for e in events if e.phase == "Stopped")
    costs = stored_costs(store_url, sandbox_id="sb-2")
    ran_hours = (ended - started).total_seconds() / 3600
    total = sum(c.cpu_hours for c in costs)
    # Both replicas priced the same stretch; the store kept each bucket once.
    assert total == pytest.approx(0.5 * ran_hours, rel=1e-6), json.dumps(
        [(c.time.isoformat(), c.cpu_hours) for c in costs])


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_watch_records_a_cluster_beside_any_router(
    kube: FakeKubernetes, store_url: str, tmp_path: Path
) -> None:
    """The headless recorder: sandboxes made by someone else (the Go Router) are recorded."""
    controller = Controller(kube)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "AGENTTIER_"))}
    with (tmp_path / "watch.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(SCRIPT), "watch", "--port", str(port), "--data-dir", str(tmp_path / "data"),
             "--storage", store_url, "--cost-interval", "1"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "watch.log").read_text()
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        eventually(ready, "watch to serve /healthz", timeout=30)
        assert httpx.get(f"{url}/api/v1/sandboxes").status_code == 404  # no API
        assert "agenttier_recorder" in httpx.get(f"{url}/metrics").text
        kube.put("sandboxes", {"metadata": {"name": "by-go", "namespace": NS}, "spec": {
            "templateRef": {"name": "general-coding", "kind": "ClusterSandboxTemplate"}}})
        controller.reconcile("by-go", NS)
        controller.run("by-go", NS)
        time.sleep(2.2)
        controller.act_on_stop("by-go", NS)
        eventually(lambda: len(stored_sandbox_events(store_url, sandbox_id="by-go")) == 5,
                   "the watcher to record three phase changes and two Events")
        assert stored_costs(store_url, sandbox_id="by-go")
    finally:
        proc.terminate()
        proc.wait(30)


def test_with_storage_off_the_audit_log_is_the_clusters_events(
    kube: FakeKubernetes, tmp_path: Path
) -> None:
    controller = Controller(kube)
    for name in ("sb-x", "sb-y"):
        kube.put("sandboxes", {"metadata": {"name": name, "namespace": NS}, "spec": {
            "templateRef": {"name": "general-coding", "kind": "ClusterSandboxTemplate"}}})
        controller.reconcile(name, NS)  # the controller's "Creating" Event
    kube.post_event(NS, "sb-x", "Stopped", "User requested stop")
    config = config_for(tmp_path, None, control_plane_url="kubernetes://")
    with running_router(config) as router:
        carol = router.http("carol")
        eventually(lambda: len(carol.get("/audit/events").json()["events"]) == 3,
                   "the cluster's Events, read from memory")
        body = carol.get("/audit/events").json()
        assert body["notice"].startswith("storage is off")
        shown = [(e["sandboxId"], e["eventType"]) for e in body["events"]]
        assert sorted(shown) == [("sb-x", "Creating"), ("sb-x", "Stopped"), ("sb-y", "Creating")]
        times = [e["timestamp"] for e in body["events"]]
        assert times == sorted(times, reverse=True)  # newest first
        only = carol.get("/audit/events", params={"sandbox": "sb-y"}).json()["events"]
        assert [(e["sandboxId"], e["eventType"]) for e in only] == [("sb-y", "Creating")]
        one = carol.get("/audit/events", params={"limit": 1}).json()["events"]
        assert len(one) == 1
