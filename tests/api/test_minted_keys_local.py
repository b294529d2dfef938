"""Minted API keys on the local plane, over real HTTP: mint, list, use, scope, revoke.

Keys are kept in ``DATA_DIR/api-keys.json`` (0600, digests only) and survive a
restart; the keys file keeps working beside them. Every refusal of a scoped
key is a 403, recorded as ``denied``.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from agenttier.exceptions import AuthenticationError, AuthorizationError
from apikey_helpers import ApiKeys
from router_helpers import Router, config_for, eventually, running_router, stored_audit, wait_phase

from agenttier_router.apikeys import mint

STORE = "keys.db"
ALL_GROUPS = ["run-command", "files:read", "files:write", "ports", "agent:invoke",
              "agent:configure", "resume", "stop"]


def _config(tmp_path: Path) -> Any:
    return config_for(tmp_path, f"sqlite:///{tmp_path}/{STORE}")


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    """A Router with alice's sb-1 and sb-2 Running, and bob's sb-b."""
    with running_router(_config(tmp_path)) as router:
        alice = router.client("alice")
        for name in ("sb-1", "sb-2"):
            alice.create_sandbox("minimal", name)
        router.client("bob").create_sandbox("minimal", "sb-b")
        for name in ("sb-1", "sb-2"):
            wait_phase(alice, name)
        yield router


def _audit(router: Router, tmp_path: Path, **query: Any) -> list[dict[str, Any]]:
    assert router.state.recorder.flush(10)
    return [{"action": e.action, "actor": e.actor, "outcome": e.outcome,
             "sandbox": e.sandbox_id, **json.loads(e.details)}
            for e in stored_audit(f"sqlite:///{tmp_path}/{STORE}", **query)]


def test_a_user_key_is_minted_listed_used_and_revoked(router: Router, tmp_path: Path) -> None:
    keys = ApiKeys(router.http("alice"))
    created = keys.create("ci", "720h")
    assert (created["name"], created["sandboxId"], created["actionGroups"]) == ("ci", "", [])
    made = datetime.fromisoformat(created["createdAt"])
    assert datetime.fromisoformat(created["expiresAt"]) - made == timedelta(hours=720)
    [listed] = keys.list()
    assert listed == {"id": created["id"], "userId": "alice", "name": "ci",
                      "createdAt": created["createdAt"], "expiresAt": created["expiresAt"]}
    assert ApiKeys(router.http("bob")).list() == []  # only one's own keys

    # It is alice, under the key's name, never an admin, at once.
    me = router.client(created["key"]).current_user()
    assert (me.sub, me.email, me.name, me.groups, me.is_admin) == (
        "alice", "alice@example.com", "ci", [], False)
    assert router.client(created["key"]).get_sandbox("sb-1").status().status == "Running"
    # The key is no one else's.
    assert ApiKeys(router.http("bob")).revoke(created["id"]).json() == {
        "error": "you do not own this API key"}
    assert keys.revoke("agenttier-apikey-" + "0" * 40).json() == {"error": "api key not found"}

    revoked = keys.revoke(created["id"])
    assert (revoked.status_code, revoked.json()) == (200, {"status": "revoked",
                                                           "id": created["id"]})
    with pytest.raises(AuthenticationError):  # at once
        router.client(created["key"]).current_user()
    assert keys.list() == []
    assert keys.revoke(created["id"]).status_code == 404

    audit = _audit(router, tmp_path, resource="api-key")
    assert [(a["action"], a["actor"], a["outcome"]) for a in audit] == [
        ("api-key.create", "alice", "success"), ("api-key.list", "alice", "success"),
        ("api-key.list", "bob", "success"), ("api-key.revoke", "bob", "denied"),
        ("api-key.revoke", "alice", "denied"), ("api-key.revoke", "alice", "success"),
        ("api-key.list", "alice", "success"), ("api-key.revoke", "alice", "denied")]
    assert audit[0]["keyId"] == created["id"] and audit[0]["name"] == "ci"
    assert audit[0]["expiresAt"] == created["expiresAt"] and audit[0]["actionGroups"] == []
    stored = json.dumps(audit)
    assert created["key"] not in stored and created["key"][4:] not in stored


def test_an_admins_key_is_not_an_admin_and_the_keys_file_still_works(router: Router) -> None:
    created = ApiKeys(router.http("carol")).create("carol-ci")
    assert created["expiresAt"] is None
    assert router.http("carol").get("/admin/sandboxes").status_code == 200
    refused = router.http(created["key"]).get("/admin/sandboxes")
    assert (refused.status_code, refused.json()) == (403, {"error": "admin_required"})


def test_keys_are_kept_hashed_in_a_0600_file_and_survive_a_restart(tmp_path: Path) -> None:
    with running_router(_config(tmp_path)) as router:
        keys = ApiKeys(router.http("alice"))
        kept = keys.create("kept")
        gone = keys.create("gone")
        assert keys.revoke(gone["id"]).status_code == 200
    path = tmp_path / "data" / "api-keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert kept["key"] not in text and kept["key"][4:] not in text and gone["id"] not in text
    [record] = json.loads(text)["keys"]
    assert record["id"] == kept["id"] and len(record["hash"]) == 64
    assert not list(path.parent.glob(".api-keys.json.*"))  # no temporary file left behind

    with running_router(_config(tmp_path)) as router:
        assert router.client(kept["key"]).current_user().name == "kept"
        with pytest.raises(AuthenticationError):
            router.client(gone["key"]).current_user()
        assert [k["id"] for k in ApiKeys(router.http("alice")).list()] == [kept["id"]]


def test_a_damaged_keys_file_stops_the_router_rather_than_be_overwritten(
        tmp_path: Path) -> None:
    path = tmp_path / "data" / "api-keys.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"keys": [{"id": "agenttier-apikey-x"')
    with pytest.raises(ValueError, match="damaged"), running_router(_config(tmp_path)):
        pass
    assert path.read_text() == '{"keys": [{"id": "agenttier-apikey-x"'


def test_expired_tampered_and_unknown_keys_get_401(router: Router) -> None:
    store = router.state.api_keys
    assert store is not None
    past = datetime.now(UTC) - timedelta(hours=2)
    old, expired = mint(user_id="alice", email="alice@example.com", name="old",
                        expires_in=timedelta(hours=1), now=past)
    store.add(expired)
    live = ApiKeys(router.http("alice")).create("live")["key"]
    tampered = live[:-1] + ("A" if live[-1] != "A" else "B")
    for key in (old, tampered, "atk_" + "A" * 43, live + "x"):
        response = router.http(key).get("/user/me")
        assert response.status_code == 401, key
    # A key minted to expire in a second stops by itself (no timing assumed: wait for it).
    short = ApiKeys(router.http("alice")).create("short", "1s")["key"]
    eventually(lambda: router.http(short).get("/user/me").status_code == 401,
               "the key to expire")
    assert router.http(live).get("/user/me").status_code == 200


@pytest.mark.parametrize(("body", "status", "error"), [
    ({"sandboxId": "sb-1", "actionGroups": ["nope"]}, 400, "unknown action group: nope"),
    ({"sandboxId": "sb-1", "scopes": ["stop", "nope"]}, 400, "unknown action group: nope"),
    ({"sandboxId": "sb-1", "scopes": ["delete"]}, 400, "delete is not an action group"),
    ({"scopes": ["stop"]}, 400, "scopes require sandboxId"),
    ({"actionGroups": ["stop"]}, 400, "scopes require sandboxId"),
    ({"expiresIn": "0s"}, 400, "expiresIn must be a positive Go duration"),
    ({"expiresIn": "-1h"}, 400, "expiresIn must be a positive Go duration"),
    ({"expiresIn": "soon"}, 400, "expiresIn must be a positive Go duration"),
    ({"name": "x", "owner": "bob"}, 400, "owner"),
    ({"sandboxId": "sb-b"}, 404, "not found"),  # bob's
    ({"sandboxId": "no-such"}, 404, "not found"),
], ids=["unknown-group", "unknown-scope", "delete", "scopes-alone", "groups-alone",
        "zero-expiry", "negative-expiry", "bad-expiry", "unknown-field", "others-sandbox",
        "no-sandbox"])
def test_bad_requests_to_mint(router: Router, tmp_path: Path, body: dict[str, Any],
                              status: int, error: str) -> None:
    response = router.http("alice").post("/user/api-keys", json=body)
    assert response.status_code == status, response.text
    assert error in response.json()["error"]
    assert ApiKeys(router.http("alice")).list() == []
    if body.get("name") != "x":  # refused by the body's shape, before the handler
        [event] = [a for a in _audit(router, tmp_path) if a["action"] == "api-key.create"]
        assert event["outcome"] == ("denied" if status == 404 else "error")


def test_a_viewer_may_not_mint_a_key_for_a_shared_sandbox(router: Router) -> None:
    router.http("bob").post("/sandboxes/sb-b/share", json={"identity": "alice",
                                                           "level": "collaborator"})
    assert router.client("alice").get_sandbox("sb-b").status().name == "sb-b"
    response = ApiKeys(router.http("alice")).create_raw(sandbox_id="sb-b")
    assert response.status_code == 404, response.text


def test_a_scoped_key_reaches_only_its_sandbox_and_its_groups(
        router: Router, tmp_path: Path) -> None:
    keys = ApiKeys(router.http("alice"))
    created = keys.create("agent", sandbox_id="sb-1",
                          action_groups=["files:read", "run-command", "files:read"])
    assert (created["sandboxId"], created["actionGroups"]) == (
        "sb-1", ["run-command", "files:read"])
    [listed] = keys.list()
    assert (listed["sandboxId"], listed["actionGroups"]) == ("sb-1", ["run-command",
                                                                      "files:read"])
    router.client("alice").get_sandbox("sb-1").files.write("/workspace/a.txt", "hello")
    agent = router.client(created["key"])
    sandbox = agent.get_sandbox("sb-1")  # reading its own sandbox needs no group
    assert sandbox.status().status == "Running"
    assert sandbox.exec("cat a.txt").stdout == "hello"
    assert sandbox.files.read("/workspace/a.txt") == b"hello"
    assert [e.name for e in sandbox.files.list()] == ["a.txt"]
    assert agent.current_user().name == "agent"

    http = router.http(created["key"])
    refused = {
        "files.write": lambda: http.put("/sandboxes/sb-1/files/workspace/b.txt", content=b"x"),
        "stop": lambda: http.post("/sandboxes/sb-1/stop"),
        "exec other": lambda: http.post("/sandboxes/sb-2/exec", json={"command": "id"}),
        "get other": lambda: http.get("/sandboxes/sb-2"),
        "other namespace": lambda: http.get("/sandboxes/sb-1", params={"namespace": "ops"}),
        "list": lambda: http.get("/sandboxes"),
        "create": lambda: http.post("/sandboxes", json={
            "name": "sb-x", "templateRef": {"name": "minimal"}}),
        "delete": lambda: http.delete("/sandboxes/sb-1"),
        "share": lambda: http.post("/sandboxes/sb-1/share",
                                   json={"identity": "bob", "level": "viewer"}),
        "sharing": lambda: http.get("/sandboxes/sb-1/share"),
        "bulk": lambda: http.post("/sandboxes/bulk-action",
                                  json={"action": "stop", "ids": ["sb-1"]}),
        "keys": lambda: http.get("/user/api-keys"),
        "mint": lambda: http.post("/user/api-keys", json={"name": "more"}),
        "templates": lambda: http.get("/templates"),
        "records": lambda: http.get("/audit/events"),
    }
    for what, call in refused.items():
        response = call()
        assert response.status_code == 403, (what, response.text)
    with pytest.raises(AuthorizationError):
        sandbox.stop()
    assert router.client("alice").get_sandbox("sb-1").status().status == "Running"
    assert not (router.state.control_plane.workdir("sb-1", "default")  # type: ignore[attr-defined]
                / "b.txt").exists()

    denied = [a for a in _audit(router, tmp_path) if a["outcome"] == "denied"]
    assert len(denied) >= len(refused)  # records also refuses as history
    by_action = {a["action"]: a for a in denied if a.get("keyId") == created["id"]}
    assert {"files.write", "stop", "exec", "get", "list", "create", "delete", "share",
            "sharing.get", "bulk-action", "api-key.list", "api-key.create",
            "templates.list"} <= set(by_action)
    assert all(a["actor"] == "alice" for a in denied)
    assert "run-command" not in by_action["stop"]["reason"]
    assert "stop" in by_action["stop"]["reason"]
    success = [(a["action"], a["sandbox"]) for a in _audit(router, tmp_path)
               if a["outcome"] == "success" and a["action"] in ("exec", "files.read")]
    assert ("exec", "sb-1") in success and ("files.read", "sb-1") in success


def test_a_scoped_key_without_groups_may_do_every_group_and_is_listed_for_admins(
        router: Router) -> None:
    created = ApiKeys(router.http("alice")).create(sandbox_id="sb-2")
    assert created["actionGroups"] == ALL_GROUPS
    user_key = ApiKeys(router.http("alice")).create("user-level")
    agent = router.client(created["key"]).get_sandbox("sb-2")
    agent.files.write("/workspace/w.txt", "written")
    agent.stop()
    wait_phase(router.client("alice"), "sb-2", "Stopped")
    agent.resume()
    body = router.http("carol").get("/admin/sandboxes").json()
    scoped = {s["name"]: s["scopedApiKeys"] for s in body["sandboxes"]}
    assert scoped["sb-1"] == [] and scoped["sb-b"] == []
    [listed] = scoped["sb-2"]
    assert listed == {"id": created["id"], "userId": "alice", "name": "",
                      "sandboxId": "sb-2", "actionGroups": ALL_GROUPS,
                      "createdAt": created["createdAt"]}
    assert user_key["id"] not in json.dumps(body)
    # Revoking the sandbox's key takes it off the list and stops it at once.
    assert ApiKeys(router.http("carol")).revoke(created["id"]).status_code == 200  # an admin
    assert router.http(created["key"]).get("/sandboxes/sb-2").status_code == 401
    body = router.http("carol").get("/admin/sandboxes").json()
    assert all(s["scopedApiKeys"] == [] for s in body["sandboxes"])


def test_a_minted_key_signs_in_to_the_pages_until_it_is_revoked(router: Router) -> None:
    keys = ApiKeys(router.http("alice"))
    user_key = keys.create("browser")
    scoped = keys.create("agent", sandbox_id="sb-1")
    with httpx.Client(base_url=router.url, follow_redirects=False,
                      headers={"Origin": router.url}) as browser:
        refused = browser.post("/ui/signin", data={"api_key": scoped["key"], "next": "/ui/"})
        assert refused.status_code == 401  # a scoped key cannot sign in
        signed = browser.post("/ui/signin", data={"api_key": user_key["key"],
                                                  "next": "/ui/sandboxes"})
        assert signed.status_code == 303 and browser.cookies.get("agenttier_session")
        page = browser.get("/ui/sandboxes")
        assert page.status_code == 200 and "sb-1" in page.text
        assert keys.revoke(user_key["id"]).status_code == 200
        after = browser.get("/ui/sandboxes")  # the session ends with its key
        assert after.status_code == 303 and "/ui/signin" in after.headers["location"]
