"""Share links over real HTTP against a running Router: create, list, redeem, revoke, the
refusals, the admin view, and every attempt in the audit log (never the token or its hash).

The published SDK (agenttier 0.8.1) has no share-link methods, so the links are
driven with plain HTTP; what a redeem grants is then checked with the SDK.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from agenttier.exceptions import AuthorizationError, NotFoundError
from agenttier.models import SandboxSummary
from router_helpers import (
    Router,
    config_for,
    eventually,
    running_router,
    stored_audit,
    wait_phase,
)

from agenttier_router.storage import parse_ts

STORE = "links.db"
LINKS = "/sandboxes/sb/share-links"


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/{STORE}"


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    with running_router(config_for(tmp_path, _url(tmp_path))) as router:
        alice = router.client("alice")
        alice.create_sandbox("general-coding", "sb")
        wait_phase(alice, "sb")
        yield router


def _create(router: Router, who: str = "alice", **body: Any) -> dict[str, Any]:
    response = router.http(who).post(LINKS, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _redeem(router: Router, who: str, token: str) -> httpx.Response:
    return router.http(who).post("/share-links/redeem", json={"token": token})


def _links(router: Router) -> list[dict[str, Any]]:
    links: list[dict[str, Any]] = router.http("alice").get("/sandboxes/sb/share").json()[
        "shareLinks"]
    return links


def test_a_link_is_created_listed_redeemed_and_revoked(router: Router) -> None:
    created = _create(router, level="collaborator", expiresIn="24h", maxUses=2)
    assert set(created) == {"id", "token", "level", "expiresAt", "maxUses", "warning"}
    assert re.fullmatch(r"[0-9a-f]{16}", created["id"])
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", created["token"])
    assert (created["level"], created["maxUses"]) == ("collaborator", 2)
    assert "only once" in created["warning"]
    expires = parse_ts(created["expiresAt"])
    now = datetime.now(UTC)
    assert now + timedelta(hours=23) < expires <= now + timedelta(hours=24)
    assert _links(router) == [{"id": created["id"], "level": "collaborator",
                               "expiresAt": created["expiresAt"], "maxUses": 2,
                               "usedCount": 0}]

    with pytest.raises(NotFoundError):  # bob cannot see it yet
        router.client("bob").get_sandbox("sb").status()
    redeemed = _redeem(router, "bob", created["token"])
    assert redeemed.status_code == 200, redeemed.text
    body = redeemed.json()
    summary = SandboxSummary.model_validate(body)
    assert (summary.sandbox_id, summary.namespace, summary.status) == ("sb", "default",
                                                                       "Running")
    assert (body["level"], body["linkId"]) == ("collaborator", created["id"])
    bob_sandbox = router.client("bob").get_sandbox("sb")
    assert bob_sandbox.exec("echo shared").stdout == "shared\n"  # a collaborator may exec
    sharing = router.http("alice").get("/sandboxes/sb/share").json()
    assert sharing["users"] == [{"identity": "bob", "level": "collaborator"}]
    assert sharing["shareLinks"][0]["usedCount"] == 1

    revoked = router.http("alice").delete(f"{LINKS}/{created['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["shareLinks"] == []
    assert revoked.json()["users"] == [{"identity": "bob", "level": "collaborator"}]
    gone = _redeem(router, "carol", created["token"])
    assert (gone.status_code, gone.json()) == (404, {"error": "share link not found"})
    again = router.http("alice").delete(f"{LINKS}/{created['id']}")
    assert again.status_code == 404 and "not found" in again.json()["error"]


def test_defaults_and_an_empty_body(router: Router) -> None:
    response = router.http("alice").post(LINKS)  # no body at all
    assert response.status_code == 201
    created = response.json()
    assert (created["level"], created["expiresAt"], created["maxUses"]) == ("viewer", None, 0)
    viewer = _redeem(router, "bob", created["token"]).json()
    assert viewer["level"] == "viewer"
    with pytest.raises(AuthorizationError):  # a viewer may not exec
        router.client("bob").get_sandbox("sb").exec("true")


def test_two_concurrent_redeems_of_the_last_use_exactly_one_wins(router: Router) -> None:
    token = _create(router, maxUses=1)["token"]
    start = threading.Barrier(2)
    answers: dict[str, int] = {}

    def redeem(who: str) -> None:
        start.wait()
        answers[who] = _redeem(router, who, token).status_code

    threads = [threading.Thread(target=redeem, args=(who,)) for who in ("bob", "carol")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answers.values()) == [200, 410]
    winner = next(who for who, status in answers.items() if status == 200)
    sharing = router.http("alice").get("/sandboxes/sb/share").json()
    assert sharing["users"] == [{"identity": winner, "level": "viewer"}]
    assert sharing["shareLinks"][0]["usedCount"] == 1


def test_a_used_up_link_is_refused(router: Router) -> None:
    token = _create(router, maxUses=1)["token"]
    assert _redeem(router, "bob", token).status_code == 200
    refused = _redeem(router, "carol", token)
    assert refused.status_code == 410
    assert refused.json() == {"error": "this share link has been used its 1 time"}
    assert _links(router)[0]["usedCount"] == 1


def test_an_expired_link_is_refused(router: Router) -> None:
    created = _create(router, expiresIn="1ms")
    expires = parse_ts(created["expiresAt"])
    while datetime.now(UTC) <= expires:  # the Router shares this machine's clock
        time.sleep(0.005)
    refused = _redeem(router, "bob", created["token"])
    assert (refused.status_code, refused.json()) == (
        410, {"error": "this share link has expired"})
    sharing = router.http("alice").get("/sandboxes/sb/share").json()
    assert sharing["users"] == [] and sharing["shareLinks"][0]["usedCount"] == 0


def test_the_owner_cannot_redeem_their_own_link(router: Router) -> None:
    token = _create(router)["token"]
    refused = _redeem(router, "alice", token)
    assert refused.status_code == 409
    assert "you own sandbox 'sb'" in refused.json()["error"]
    assert _links(router)[0]["usedCount"] == 0


@pytest.mark.parametrize("tamper", [
    pytest.param(lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), id="one-char-changed"),
    pytest.param(lambda t: t[:-1], id="truncated"),
    pytest.param(lambda t: t + "x", id="longer"),
    pytest.param(lambda t: t.upper(), id="upper-cased"),
    pytest.param(lambda t: "%%%" + t[3:], id="not-base64url"),
    pytest.param(lambda t: "x" * 43, id="made-up"),
])
def test_a_tampered_or_unknown_token_is_not_found(router: Router, tamper: Any) -> None:
    token = _create(router)["token"]
    refused = _redeem(router, "bob", tamper(token))
    assert (refused.status_code, refused.json()) == (404, {"error": "share link not found"})
    assert _links(router)[0]["usedCount"] == 0


@pytest.mark.parametrize("body", [
    pytest.param({}, id="no-token"),
    pytest.param({"token": ""}, id="empty"),
    pytest.param({"token": 42}, id="not-a-string"),
    pytest.param({"token": "x" * 2000}, id="too-long"),
])
def test_a_redeem_without_a_token_is_a_bad_request(router: Router, body: Any) -> None:
    response = router.http("bob").post("/share-links/redeem", json=body)
    assert response.status_code == 400
    assert response.json()["fields"][0]["field"] == "token"


@pytest.mark.parametrize(("body", "message"), [
    pytest.param({"level": "owner"}, 'level must be "viewer" or "collaborator"', id="bad-level"),
    pytest.param({"maxUses": -1}, "maxUses must be >= 0 (0 = unlimited)", id="negative-uses"),
    pytest.param({"maxUses": "3"}, "maxUses must be >= 0 (0 = unlimited)", id="uses-string"),
    pytest.param({"maxUses": 2.5}, "maxUses must be >= 0 (0 = unlimited)", id="uses-float"),
    pytest.param({"maxUses": 10**9}, "maxUses must be at most 1000000", id="too-many-uses"),
    pytest.param({"expiresIn": "0s"}, "expiresIn must be a positive Go duration", id="zero"),
    pytest.param({"expiresIn": "-1h"}, "expiresIn must be a positive Go duration", id="past"),
    pytest.param({"expiresIn": "1d"}, "expiresIn must be a positive Go duration", id="days"),
    pytest.param({"expiresIn": "soon"}, "expiresIn must be a positive Go duration", id="word"),
    pytest.param({"expiresIn": 3600}, "expiresIn must be a positive Go duration", id="number"),
])
def test_bad_link_requests_are_refused_and_nothing_is_made(router: Router, body: Any,
                                                           message: str) -> None:
    response = router.http("alice").post(LINKS, json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert len(response.json()["fields"]) == 1
    assert _links(router) == []


def test_only_the_owner_or_an_admin_creates_and_revokes(router: Router) -> None:
    bob = router.http("bob")
    assert bob.post(LINKS, json={}).status_code == 404  # bob cannot even see sb
    link = _create(router)
    assert bob.delete(f"{LINKS}/{link['id']}").status_code == 404
    router.http("alice").post("/sandboxes/sb/share", json={"identity": "bob",
                                                           "level": "collaborator"})
    assert bob.post(LINKS, json={}).status_code == 403  # shared, but not the owner
    assert bob.delete(f"{LINKS}/{link['id']}").status_code == 403
    assert [x["id"] for x in _links(router)] == [link["id"]]
    by_admin = _create(router, "carol", level="collaborator")
    assert router.http("carol").delete(f"{LINKS}/{link['id']}").status_code == 200
    assert [x["id"] for x in _links(router)] == [by_admin["id"]]
    assert router.http().post(LINKS, json={}).status_code == 401
    assert router.http().post("/share-links/redeem",
                              json={"token": by_admin["token"]}).status_code == 401


def test_admin_sharing_lists_links_of_unshared_sandboxes_too(router: Router) -> None:
    link = _create(router, maxUses=5)
    body = router.http("carol").get("/admin/sharing").json()
    assert body == {"sandboxes": [{
        "sandboxId": "sb", "namespace": "default", "owner": "alice", "users": [], "groups": [],
        "shareLinks": [{"id": link["id"], "level": "viewer", "expiresAt": None, "maxUses": 5,
                        "usedCount": 0}]}]}
    assert link["token"] not in json.dumps(body)


def test_unshare_by_kind_keeps_the_other_kind(router: Router) -> None:
    alice = router.http("alice")
    alice.post("/sandboxes/sb/share", json={"identity": "devs", "level": "viewer"})
    alice.post("/sandboxes/sb/share", json={"identity": "devs", "level": "collaborator",
                                            "kind": "group"})
    left = alice.delete("/sandboxes/sb/share", params={"identity": "devs", "kind": "group"})
    assert left.status_code == 200
    assert (left.json()["users"], left.json()["groups"]) == (
        [{"identity": "devs", "level": "viewer"}], [])


def _trail(url: str) -> list[tuple[str, str, str, str]]:
    return [(e.action, e.actor, e.sandbox_id, e.outcome) for e in stored_audit(url)
            if e.action.startswith("share-link.")]


def test_every_attempt_is_recorded_without_the_token(store_url: str, tmp_path: Path) -> None:
    tokens: list[str] = []
    with running_router(config_for(tmp_path, store_url)) as router:
        alice = router.client("alice")
        alice.create_sandbox("general-coding", "sb")
        wait_phase(alice, "sb")
        created = _create(router, level="collaborator", maxUses=1, expiresIn="1h")
        tokens.append(created["token"])
        assert router.http("alice").post(LINKS, json={"maxUses": -1}).status_code == 400
        assert router.http("bob").post(LINKS, json={}).status_code == 404
        assert router.http().post(LINKS, json={}).status_code == 401
        assert _redeem(router, "alice", created["token"]).status_code == 409
        assert _redeem(router, "bob", created["token"]).status_code == 200
        assert _redeem(router, "carol", created["token"]).status_code == 410
        assert _redeem(router, "carol", "y" * 43).status_code == 404
        assert router.http("bob").delete(f"{LINKS}/{created['id']}").status_code == 403
        assert router.http("alice").delete(f"{LINKS}/0000000000000000").status_code == 404
        assert router.http("alice").delete(f"{LINKS}/{created['id']}").status_code == 200
        eventually(lambda: len(_trail(store_url)) == 11, "the audit events to be stored")
    assert _trail(store_url) == [
        ("share-link.create", "alice", "sb", "success"),
        ("share-link.create", "alice", "sb", "error"),
        ("share-link.create", "bob", "sb", "denied"),
        ("share-link.create", "anonymous", "sb", "denied"),
        ("share-link.redeem", "alice", "sb", "denied"),
        ("share-link.redeem", "bob", "sb", "success"),
        ("share-link.redeem", "carol", "sb", "denied"),
        ("share-link.redeem", "carol", "", "denied"),
        ("share-link.revoke", "bob", "sb", "denied"),
        ("share-link.revoke", "alice", "sb", "denied"),
        ("share-link.revoke", "alice", "sb", "success"),
    ]
    events = [e for e in stored_audit(store_url) if e.action.startswith("share-link.")]
    details = [json.loads(e.details) for e in events]
    assert details[0] == {"email": "alice@example.com", "level": "collaborator", "maxUses": 1,
                          "expiresAt": details[0]["expiresAt"], "linkId": created["id"]}
    assert details[1]["reason"] == "maxUses must be >= 0 (0 = unlimited)"
    assert details[4]["reason"] == "owner" and details[4]["linkId"] == created["id"]
    assert (details[5]["granted"], details[5]["usedCount"]) == ("collaborator", 1)
    assert details[6]["reason"] == "exhausted"
    assert details[10]["linkId"] == created["id"]
    everything = json.dumps([e.details for e in stored_audit(store_url)])
    digest = hashlib.sha256(tokens[0].encode()).hexdigest()
    assert tokens[0] not in everything and digest not in everything


def test_share_links_on_the_kubernetes_plane(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from kubecontroller import Controller, seed_templates
    from kubefake import FakeKubernetes

    with FakeKubernetes() as kube:
        seed_templates(kube)
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig")))
        config = config_for(tmp_path, _url(tmp_path), control_plane_url="kubernetes://")
        with running_router(config) as router:
            alice = router.http("alice")
            eventually(lambda: alice.get("/sandboxes").status_code == 200, "the informer")
            assert alice.post("/sandboxes", json={
                "name": "sb", "templateRef": {"name": "general-coding",
                                              "kind": "ClusterSandboxTemplate"}}
                              ).status_code == 201
            Controller(kube).reconcile("sb", "default")
            created = _create(router, maxUses=1, level="collaborator")
            stored = kube.get("sandboxes", "default", "sb")
            assert stored is not None
            entry = stored["spec"]["sharing"]["shareLinks"][0]
            assert entry["tokenHash"] == hashlib.sha256(created["token"].encode()).hexdigest()
            assert created["token"] not in json.dumps(stored)
            eventually(lambda: _links(router) != [], "the link in the informer's cache")
            redeemed = _redeem(router, "bob", created["token"])
            assert redeemed.status_code == 200, redeemed.text
            assert redeemed.json()["level"] == "collaborator"
            assert _redeem(router, "carol", created["token"]).status_code == 410
            assert _links(router)[0]["usedCount"] == 1
            assert alice.delete(f"{LINKS}/{created['id']}").json()["shareLinks"] == []
            assert _redeem(router, "carol", created["token"]).status_code == 404
        assert kube.rejected == []
