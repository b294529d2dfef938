"""Errors: the SDK decodes every error body, bad input is a 4xx naming the field, never a 5xx.

A request the control plane refuses (a conflict, an unknown template) is
still an action, recorded with outcome ``error``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from agenttier.exceptions import APIError, ConflictError
from router_helpers import Router, config_for, running_router, stored_audit, wait_phase


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'errors.db'}"


@pytest.fixture
def router(store: str, tmp_path: Path) -> Iterator[Router]:
    with running_router(config_for(tmp_path, store)) as router:
        yield router


def test_the_sdk_decodes_errors_and_they_are_recorded(router: Router, store: str) -> None:
    alice = router.client("alice")
    with pytest.raises(APIError) as bad_template:
        alice.create_sandbox("no-such-template", "sb-e")
    assert bad_template.value.status_code == 400
    assert "unknown template 'no-such-template'" in str(bad_template.value)
    assert bad_template.value.body == {"error": str(bad_template.value).split(": ", 1)[1]}

    sandbox = alice.create_sandbox("minimal", "sb-e")
    wait_phase(alice, "sb-e")
    with pytest.raises(ConflictError, match="already exists"):
        alice.create_sandbox("minimal", "sb-e")
    with pytest.raises(ConflictError, match="cannot resume"):
        sandbox.resume()
    sandbox.stop()
    with pytest.raises(ConflictError, match="it is Stopped, not Running"):
        sandbox.stop()
    with pytest.raises(ConflictError, match="exec in"):
        sandbox.exec("true")
    assert sandbox.status().status == "Stopped"

    router.state.recorder.flush(10)
    events = stored_audit(store)
    assert [(e.action, e.outcome) for e in events] == [
        ("create", "error"), ("create", "success"), ("create", "error"), ("resume", "error"),
        ("stop", "success"), ("stop", "error"), ("exec", "error"),
    ]
    first = json.loads(events[0].details)
    assert first["template"] == "no-such-template"
    assert "unknown template" in first["error"]
    assert json.loads(events[-1].details)["command"] == "true"


def test_an_invalid_name_is_400_naming_the_field(router: Router) -> None:
    alice = router.client("alice")
    for name in ("Bad_Name", "-dash", "x" * 64):
        with pytest.raises(APIError) as caught:
            alice.create_sandbox("minimal", name)
        assert caught.value.status_code == 400
        body = caught.value.body
        assert body["error"].startswith("invalid request: name: ")
        assert [f["field"] for f in body["fields"]] == ["name"]
    assert alice.list_sandboxes() == []


BAD_REQUESTS = [  # (method, path, json body, the field the error must name)
    ("POST", "/sandboxes", {"name": "ok", "templateRef": {}}, "templateRef.name"),
    ("POST", "/sandboxes", {"name": "ok"}, "templateRef"),
    ("POST", "/sandboxes", {"name": "ok", "namespace": "Team A",
                            "templateRef": {"name": "minimal"}}, "namespace"),
    ("POST", "/sandboxes/sb-x/exec", {"command": "true", "timeout": 0}, "timeout"),
    ("POST", "/sandboxes/sb-x/exec", {"command": "true", "timeout": 3601}, "timeout"),
    ("POST", "/sandboxes/sb-x/exec", {"command": ""}, "command"),
    ("POST", "/sandboxes/sb-x/exec", {"timeout": 5}, "command"),
    ("POST", "/sandboxes/sb-x/share", {"identity": "bob", "level": "owner"}, "level"),
    ("POST", "/sandboxes/sb-x/share", {"identity": "bob", "level": "viewer", "kind": "robot"},
     "kind"),
    ("POST", "/sandboxes/sb-x/share", {"level": "viewer"}, "identity"),
    ("GET", "/sandboxes/" + "x" * 254, None, "sandbox_id"),
    ("GET", "/sandboxes/sb-x?namespace=", None, "namespace"),
]


def test_bad_input_is_4xx_naming_the_field(router: Router) -> None:
    alice = router.client("alice")
    alice.create_sandbox("minimal", "sb-x")
    wait_phase(alice, "sb-x")
    http = router.http("alice")
    for method, path, body, field in BAD_REQUESTS:
        response = http.request(method, path, json=body)
        assert response.status_code == 400, (method, path, body, response.text)
        error = response.json()["error"]
        assert error.startswith("invalid request: ") and field in error, (path, body, error)


def test_malformed_bodies_and_unknown_routes_are_4xx(router: Router) -> None:
    http = router.http("alice")
    cases = [
        http.post("/sandboxes", content=b"{not json", headers={"content-type": "application/json"}),
        http.post("/sandboxes", json=["a", "list"]),
        http.post("/sandboxes", content=b"name=x", headers={"content-type": "text/plain"}),
        http.post("/sandboxes/sb-x/exec", content=b"\xff\xfe",
                  headers={"content-type": "application/json"}),
        http.post("/sandboxes/sb-x/exec", json={"command": "true", "timeout": "soon"}),
        http.get("/nowhere"),
        http.put("/sandboxes"),
    ]
    for response in cases:
        assert 400 <= response.status_code < 500, (response.request.url, response.text)
        assert isinstance(response.json()["error"], str)
    assert cases[-2].status_code == 404
    assert cases[-1].status_code == 405


def test_a_name_in_several_namespaces_needs_the_namespace(router: Router, store: str) -> None:
    alice = router.client("alice")
    alice.create_sandbox("minimal", "sb-twice")
    wait_phase(alice, "sb-twice")  # before the name becomes ambiguous
    alice.create_sandbox("minimal", "sb-twice", namespace="team-a")
    with pytest.raises(ConflictError, match=r"namespaces default, team-a\); add \?namespace="):
        alice.get_sandbox("sb-twice")
    http = router.http("alice")
    assert http.post("/sandboxes/sb-twice/stop").status_code == 409
    named = http.get("/sandboxes/sb-twice", params={"namespace": "team-a"})
    assert (named.status_code, named.json()["namespace"]) == (200, "team-a")
    stopped = http.post("/sandboxes/sb-twice/stop", params={"namespace": "default"})
    assert (stopped.status_code, stopped.json()["status"]) == (200, "Stopped")
    # bob sees neither, so for him the name is simply not found.
    assert router.http("bob").get("/sandboxes/sb-twice").status_code == 404
    router.state.recorder.flush(10)
    stops = stored_audit(store, action="stop")
    assert [(e.outcome, e.namespace) for e in stops] == [("error", ""), ("success", "default")]
    assert "several sandboxes" in json.loads(stops[0].details)["reason"]
