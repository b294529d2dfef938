"""A name taken by a sandbox the caller cannot see (issue 9, item 11).

The 409 neither names nor describes the other user's sandbox, and the
attempt is recorded as ``denied``; the owner still hears "already exists".
"""

from __future__ import annotations

import json
from pathlib import Path

from router_helpers import config_for, running_router, stored_audit, wait_phase


def test_a_hidden_name_is_a_plain_conflict_and_recorded(tmp_path: Path, store_url: str) -> None:
    with running_router(config_for(tmp_path, store_url)) as router:
        alice = router.client("alice")
        alice.create_sandbox("minimal", "sb-taken")
        wait_phase(alice, "sb-taken")
        body = {"name": "sb-taken", "templateRef": {"name": "minimal"}}
        bob = router.http("bob").post("/sandboxes", json=body)
        assert bob.status_code == 409
        assert bob.json() == {"error": "the name 'sb-taken' is not available in namespace "
                                       "'default'; choose another"}
        again = router.http("alice").post("/sandboxes", json=body)
        assert again.status_code == 409 and "already exists" in again.json()["error"]
        router.state.recorder.flush(10)
        [denied] = stored_audit(store_url, actor="bob")
        assert (denied.action, denied.outcome, denied.sandbox_id) == ("create", "denied",
                                                                     "sb-taken")
        assert "may not see" in json.loads(denied.details)["reason"]
        [error] = stored_audit(store_url, actor="alice", outcome="error")
        assert error.action == "create"
