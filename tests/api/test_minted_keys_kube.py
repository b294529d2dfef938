"""Minted API keys on the kubernetes plane: Secrets, seen by every Router replica.

Two real Routers run against one API server (:class:`kubefake.FakeKubernetes`
over real HTTP; its docstring says why it is a fake). A key minted through one
works on the other once its watch delivers the Secret, and a key revoked
through one stops on the other the same way; on the Router that made the
change, at once.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apikey_helpers import ApiKeys
from kubecontroller import Controller, seed_templates
from kubefake import FakeKubernetes
from router_helpers import Router, config_for, eventually, running_router, stored_audit, wait_phase

from agenttier_router.apikeys import mint
from agenttier_router.apikeys.kube import LABEL_SELECTOR, SecretKeyStore
from agenttier_router.controlplane.kubernetes.url import client_for

NS = "default"


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as server:
        seed_templates(server)
        monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig(tmp_path / "kubeconfig")))
        yield server
        assert server.rejected == []


def _router(tmp_path: Path, name: str) -> Any:
    home = tmp_path / name
    home.mkdir()
    return running_router(config_for(home, f"sqlite:///{home}/router.db",
                                     control_plane_url="kubernetes://"))


def _synced(router: Router) -> None:
    eventually(lambda: router.http("alice").get("/sandboxes").status_code == 200,
               "the informers to sync")


def _status(router: Router, key: str, path: str = "/user/me") -> int:
    return router.http(key).get(path).status_code


def _secret_texts(kube: FakeKubernetes) -> str:
    """Every stored Secret, with its data decoded: what an etcd reader would see."""
    found = []
    for secret in kube.items("secrets"):
        decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        found.append(json.dumps({**secret, "data": decoded}))
    return "\n".join(found)


def test_keys_are_secrets_seen_by_every_replica(kube: FakeKubernetes, tmp_path: Path) -> None:
    controller = Controller(kube)
    with _router(tmp_path, "a") as first:
        _synced(first)
        alice = first.client("alice")
        alice.create_sandbox(template="general-coding", name="sb-k")
        controller.reconcile("sb-k", NS)
        controller.run("sb-k", NS)
        wait_phase(alice, "sb-k")
        before = ApiKeys(first.http("alice")).create("before", "24h")

        [secret] = kube.items("secrets")
        assert secret["metadata"]["name"] == before["id"]
        assert secret["metadata"]["namespace"] == NS  # the Router's own (its context's)
        assert secret["metadata"]["labels"]["agenttier.io/component"] == "api-key"
        assert secret["type"] == "agenttier.io/api-key"
        assert set(secret["data"]) == {"hash", "metadata"}
        text = _secret_texts(kube)
        assert before["key"] not in text and before["key"][4:] not in text

        with _router(tmp_path, "b") as second:
            _synced(second)
            # Listed when the second Router started.
            assert _status(second, before["key"]) == 200
            # Minted on the first, then seen by the second through its watch.
            scoped = ApiKeys(first.http("alice")).create(
                "agent", sandbox_id="sb-k", action_groups=["run-command"])
            assert _status(first, scoped["key"], "/sandboxes/sb-k") == 200  # at once
            eventually(lambda: _status(second, scoped["key"], "/sandboxes/sb-k") == 200,
                       "the second Router to see the new key")
            agent = second.client(scoped["key"]).get_sandbox("sb-k")
            assert agent.exec("echo scoped").stdout == "scoped\n"
            refused = second.http(scoped["key"]).post("/sandboxes/sb-k/stop")
            assert refused.status_code == 403, refused.text
            body = second.http("carol").get("/admin/sandboxes").json()
            [listed] = body["sandboxes"][0]["scopedApiKeys"]
            assert (listed["id"], listed["actionGroups"]) == (scoped["id"], ["run-command"])
            assert [k["name"] for k in ApiKeys(second.http("alice")).list()] == [
                "before", "agent"]

            # Revoked through the first: refused there at once, and on the second soon.
            assert ApiKeys(first.http("alice")).revoke(scoped["id"]).status_code == 200
            assert _status(first, scoped["key"], "/sandboxes/sb-k") == 401
            eventually(lambda: _status(second, scoped["key"], "/sandboxes/sb-k") == 401,
                       "the second Router to see the revocation")
            assert [s["metadata"]["name"] for s in kube.items("secrets")] == [before["id"]]
            # And the other way round.
            assert ApiKeys(second.http("alice")).revoke(before["id"]).status_code == 200
            assert _status(second, before["key"]) == 401
            eventually(lambda: _status(first, before["key"]) == 401,
                       "the first Router to see the revocation")
            assert second.state.recorder.flush(10)
        assert first.state.recorder.flush(10)

    first_audit = [(e.action, e.outcome) for e in stored_audit(
        f"sqlite:///{tmp_path}/a/router.db", resource="api-key")]
    assert first_audit == [("api-key.create", "success"), ("api-key.create", "success"),
                           ("api-key.revoke", "success")]
    second_events = stored_audit(f"sqlite:///{tmp_path}/b/router.db")
    assert ("stop", "denied") in [(e.action, e.outcome) for e in second_events]
    assert ("api-key.revoke", "success") in [(e.action, e.outcome) for e in second_events]


def test_a_secret_that_is_not_a_key_is_ignored(kube: FakeKubernetes, tmp_path: Path) -> None:
    with _router(tmp_path, "a") as router:
        _synced(router)
        created = ApiKeys(router.http("alice")).create("real")
        kube.put("secrets", {"metadata": {"name": "agenttier-apikey-" + "1" * 40,
                                          "namespace": NS,
                                          "labels": {"agenttier.io/component": "api-key"}},
                             "data": {"hash": "bm90IGEgaGFzaA==", "metadata": "e30="}})
        kube.put("secrets", {"metadata": {"name": "unrelated", "namespace": NS},
                             "data": {"token": "c2VjcmV0"}})
        assert _status(router, created["key"]) == 200
        assert [k["name"] for k in ApiKeys(router.http("alice")).list()] == ["real"]


def test_a_replica_whose_watch_fails_refuses_minted_keys_until_it_recovers(
        kube: FakeKubernetes, tmp_path: Path) -> None:
    api_client, namespace = client_for("kubernetes://")
    store = SecretKeyStore(api_client, namespace, stale_after=0.5, backoff=(0.05, 0.2))
    try:
        assert store.wait_synced(10)
        key, minted = mint(user_id="alice", email="a@example.com", name="k")
        store.add(minted)
        assert store.identify(key) == minted
        for verb in ("list", "watch"):
            kube.forbid(verb, "secrets")
        kube.drop_watches()
        eventually(lambda: store.identify(key) is None, "the stale store to refuse keys")
        for verb in ("list", "watch"):
            kube.allow(verb, "secrets")
        eventually(lambda: store.identify(key) == minted, "the store to recover")
        listed = [q for m, p, q in kube.requests if p.endswith("/secrets") and m == "GET"]
        assert all(q.get("labelSelector") == LABEL_SELECTOR for q in listed)
    finally:
        store.close()


def test_the_api_server_refusing_a_write_is_a_recorded_503(
        kube: FakeKubernetes, tmp_path: Path) -> None:
    with _router(tmp_path, "a") as router:
        _synced(router)
        kube.forbid("create", "secrets")
        response = router.http("alice").post("/user/api-keys", json={"name": "x"})
        assert response.status_code == 503, response.text
        assert "secrets" in response.json()["error"]
        kube.allow("create", "secrets")
        created = ApiKeys(router.http("alice")).create("y")
        kube.forbid("delete", "secrets")
        assert ApiKeys(router.http("alice")).revoke(created["id"]).status_code == 503
        assert _status(router, created["key"]) == 200  # not revoked: it still works
        assert router.state.recorder.flush(10)
    outcomes = [(e.action, e.outcome) for e in stored_audit(
        f"sqlite:///{tmp_path}/a/router.db", resource="api-key")]
    assert outcomes == [("api-key.create", "error"), ("api-key.create", "success"),
                        ("api-key.revoke", "error")]
