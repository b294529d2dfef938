"""Who may do what to a sandbox, and the record every refused attempt leaves.

Owners and admins may do everything; a viewer may read; a collaborator may
also exec, stop and resume; a user grant matches the caller's subject or
email, a group grant one of the caller's groups. A caller who may not see a
sandbox gets 404, exactly as for one that does not exist, and the attempt is
recorded with outcome ``denied``. The history endpoints are for admins.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from agenttier.exceptions import AuthenticationError, AuthorizationError, NotFoundError
from router_helpers import Router, config_for, running_router, stored_audit, wait_phase

NAME = "sb-private"


@pytest.fixture
def router(store_url: str, tmp_path: Path) -> Iterator[Router]:
    """A Router on each backend, with alice's sandbox NAME Running."""
    with running_router(config_for(tmp_path, store_url)) as router:
        alice = router.client("alice")
        alice.create_sandbox("minimal", NAME)
        wait_phase(alice, NAME)
        yield router


def _share(router: Router, identity: str, level: str, kind: str = "user") -> None:
    response = router.http("alice").post(f"/sandboxes/{NAME}/share",
                                         json={"identity": identity, "level": level, "kind": kind})
    assert response.status_code == 200, response.text


def _actions(http: httpx.Client, name: str) -> dict[str, httpx.Response]:
    """Try every sandbox action on ``name``; return the responses by action."""
    return {
        "exec": http.post(f"/sandboxes/{name}/exec", json={"command": "echo hi"}),
        "stop": http.post(f"/sandboxes/{name}/stop"),
        "resume": http.post(f"/sandboxes/{name}/resume"),
        "share": http.post(f"/sandboxes/{name}/share", json={"identity": "x", "level": "viewer"}),
        "unshare": http.delete(f"/sandboxes/{name}/share/x"),
        "delete": http.delete(f"/sandboxes/{name}"),
    }


def test_a_stranger_gets_404_as_if_it_did_not_exist_and_is_recorded(
    router: Router, store_url: str
) -> None:
    bob = router.client("bob")
    with pytest.raises(NotFoundError, match=f"sandbox '{NAME}' not found"):
        bob.get_sandbox(NAME)
    assert bob.list_sandboxes() == []
    http = router.http("bob")
    assert http.get(f"/sandboxes/{NAME}/share").status_code == 404
    hidden = _actions(http, NAME)
    missing = _actions(http, "sb-missing")
    for action, response in hidden.items():
        assert response.status_code == 404, (action, response.text)
        # Nothing tells a hidden sandbox from a missing one but its name.
        assert response.json() == {"error": f"sandbox '{NAME}' not found"}
        assert missing[action].json() == {"error": "sandbox 'sb-missing' not found"}
    assert router.client("alice").get_sandbox(NAME).status().status == "Running"

    router.state.recorder.flush(10)
    denied = stored_audit(store_url, actor="bob")
    assert sorted(e.action for e in denied) == sorted([*hidden, *missing])
    for event in denied:
        assert event.outcome == "denied"
        assert event.sandbox_id in (NAME, "sb-missing")
        details = json.loads(event.details)
        assert details["email"] == "bob@example.com"
        assert "not found" in details["reason"]
    assert stored_audit(store_url, actor="alice", outcome="denied") == []


def test_a_viewer_reads_but_may_not_operate(router: Router, store_url: str) -> None:
    _share(router, "bob", "viewer")
    bob = router.client("bob")
    sandbox = bob.get_sandbox(NAME)
    assert sandbox.status().status == "Running"
    assert [s.name for s in bob.list_sandboxes()] == [NAME]
    sharing = router.http("bob").get(f"/sandboxes/{NAME}/share")
    assert sharing.json()["users"] == [{"identity": "bob", "level": "viewer"}]
    with pytest.raises(AuthorizationError, match="you may not exec"):
        sandbox.exec("echo hi")
    with pytest.raises(AuthorizationError, match="you may not stop"):
        sandbox.stop()
    with pytest.raises(AuthorizationError):
        sandbox.resume()
    with pytest.raises(AuthorizationError):
        sandbox.terminate()
    share = router.http("bob").post(f"/sandboxes/{NAME}/share",
                                    json={"identity": "bob", "level": "collaborator"})
    assert share.status_code == 403
    assert sandbox.status().status == "Running"

    router.state.recorder.flush(10)
    denied = stored_audit(store_url, actor="bob")
    assert [e.action for e in denied] == ["exec", "stop", "resume", "delete", "share"]
    assert {(e.outcome, e.sandbox_id, e.namespace) for e in denied} == {
        ("denied", NAME, "default")}
    assert json.loads(denied[0].details)["command"] == "echo hi"


def test_a_collaborator_operates_but_may_not_delete_or_share(
    router: Router, store_url: str
) -> None:
    _share(router, "bob@example.com", "collaborator")  # a user grant may name the email
    bob = router.client("bob")
    sandbox = bob.get_sandbox(NAME)
    assert sandbox.exec("echo from bob").stdout == "from bob\n"
    sandbox.stop()
    sandbox.resume()
    with pytest.raises(AuthorizationError, match="you may not delete"):
        sandbox.terminate()
    http = router.http("bob")
    assert http.post(f"/sandboxes/{NAME}/share",
                     json={"identity": "mallory", "level": "viewer"}).status_code == 403
    assert http.delete(f"/sandboxes/{NAME}/share/bob@example.com").status_code == 403
    assert sandbox.status().status == "Running"

    router.state.recorder.flush(10)
    bobs = stored_audit(store_url, actor="bob")
    assert [(e.action, e.outcome) for e in bobs] == [
        ("exec", "success"), ("stop", "success"), ("resume", "success"),
        ("delete", "denied"), ("share", "denied"), ("unshare", "denied"),
    ]


def test_group_shares(router: Router, store_url: str) -> None:
    bob = router.client("bob")
    _share(router, "eng", "collaborator", kind="group")  # alice's group, not bob's
    with pytest.raises(NotFoundError):
        bob.get_sandbox(NAME)
    _share(router, "ops", "viewer", kind="group")
    sandbox = bob.get_sandbox(NAME)
    with pytest.raises(AuthorizationError):
        sandbox.exec("true")
    _share(router, "ops", "collaborator", kind="group")  # a new grant replaces the old
    assert sandbox.exec("echo ops").stdout == "ops\n"
    sharing = router.http("alice").get(f"/sandboxes/{NAME}/share").json()
    assert sharing["groups"] == [{"identity": "eng", "level": "collaborator"},
                                 {"identity": "ops", "level": "collaborator"}]
    assert router.http("alice").delete(f"/sandboxes/{NAME}/share/ops").status_code == 200
    with pytest.raises(NotFoundError):
        bob.get_sandbox(NAME)

    router.state.recorder.flush(10)
    shares = stored_audit(store_url, actor="alice", action="share")
    assert [json.loads(e.details)["kind"] for e in shares] == ["group"] * 3
    assert [(e.action, e.outcome) for e in stored_audit(store_url, actor="bob")] == [
        ("exec", "denied"), ("exec", "success")]


def test_an_admin_may_act_on_anyones_sandbox(router: Router, store_url: str) -> None:
    carol = router.client("carol")
    assert [s.name for s in carol.list_sandboxes()] == [NAME]
    sandbox = carol.get_sandbox(NAME)
    assert sandbox.exec("echo admin").stdout == "admin\n"
    sandbox.terminate()
    router.state.recorder.flush(10)
    assert [(e.action, e.outcome) for e in stored_audit(store_url, actor="carol")] == [
        ("exec", "success"), ("delete", "success")]


@pytest.mark.parametrize("key", [None, "not-a-key-that-anyone-has"], ids=["no-key", "bad-key"])
def test_no_valid_key_is_401_and_recorded_as_anonymous(
    router: Router, store_url: str, key: str | None
) -> None:
    http = router.http(key)
    create = http.post("/sandboxes", json={"name": "sb-anon", "templateRef": {"name": "minimal"}})
    assert create.status_code == 401
    assert create.json() == {"error": "a valid X-API-Key header is required"}
    responses = _actions(http, NAME)
    assert {a: r.status_code for a, r in responses.items()} == dict.fromkeys(responses, 401)
    assert http.get("/user/me").status_code == 401
    assert http.get(f"/sandboxes/{NAME}").status_code == 401
    assert http.get("/sandboxes").status_code == 401
    if key is not None:
        with pytest.raises(AuthenticationError):
            router.client(key).create_sandbox("minimal", "sb-anon")

    router.state.recorder.flush(10)
    anonymous = stored_audit(store_url, actor="anonymous")
    expected = ["create", *responses] + (["create"] if key is not None else [])
    assert [e.action for e in anonymous] == expected
    for event in anonymous:
        assert event.outcome == "denied"
        details = json.loads(event.details)
        assert "email" not in details
        assert details["reason"] == "no valid API key"
    # A keyless caller's body is never read (issue 9, item 5): the record has the path only.
    assert json.loads(anonymous[0].details)["path"] == "/api/v1/sandboxes"
    assert "template" not in json.loads(anonymous[0].details)
    assert router.client("alice").get_sandbox(NAME).status().status == "Running"


def test_history_is_for_admins(router: Router) -> None:
    for path in ("/audit/events", "/records/sandbox-events", "/records/costs",
                 "/records/costs?groupBy=namespace", "/analytics/costs", "/analytics/usage"):
        assert router.http().get(path).status_code == 401, path
        for user in ("alice", "bob"):
            response = router.http(user).get(path)
            assert response.status_code == 403, (path, user)
            # the SDK's analytics answer as the Go Router's admin-only routes do
            expected = "admin_required" if "analytics" in path else "reading history is for admins"
            assert response.json() == {"error": expected}
        assert router.http("carol").get(path).status_code == 200, path


def test_user_me(router: Router) -> None:
    me = router.client("bob").current_user()
    assert (me.sub, me.email, me.groups, me.is_admin) == ("bob", "bob@example.com", ["ops"],
                                                          False)
    assert router.client("carol").current_user().is_admin is True
