"""Share links on the local plane: kept in its state file (hashes only), across restarts, and
a state file from before links existed still opens."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cp_helpers import NS, Transitions, running

from agenttier_router.controlplane import DEFAULT_TEMPLATES, LocalControlPlane
from agenttier_router.controlplane.localstate import STATE_FILE

TOKEN = "k" * 43
DIGEST = hashlib.sha256(TOKEN.encode()).hexdigest()


def _open(root: Path) -> LocalControlPlane:
    return LocalControlPlane(root, DEFAULT_TEMPLATES, Transitions())


def test_links_and_their_counts_survive_a_restart_and_only_hashes_are_saved(root: Path) -> None:
    plane = _open(root)
    running(plane, "sb")
    expires = datetime.now(UTC) + timedelta(days=1)
    link = plane.create_share_link("sb", NS, token_hash=DIGEST, level="collaborator",
                                   expires_at=expires, max_uses=2)
    plane.redeem_share_link(DIGEST, "bob")
    plane.close()
    saved = (root / STATE_FILE).read_bytes()
    assert DIGEST.encode() in saved and TOKEN.encode() not in saved

    again = _open(root)
    try:
        links = again.get("sb", NS).shares.links
        assert [(x.id, x.level, x.expires_at, x.max_uses, x.used_count) for x in links] == [
            (link.id, "collaborator", expires, 2, 1)]
        assert again.redeem_share_link(DIGEST, "carol").link.used_count == 2
    finally:
        again.close()


def test_a_state_file_from_before_links_still_opens(root: Path) -> None:
    plane = _open(root)
    running(plane, "sb")
    plane.share("sb", NS, "user", "bob", "viewer")
    plane.close()
    with sqlite3.connect(root / STATE_FILE) as db:  # as an older Router wrote it
        (doc,) = db.execute("SELECT doc FROM sandboxes").fetchone()
        old = json.loads(doc)
        del old["links"]
        db.execute("UPDATE sandboxes SET doc=?", (json.dumps(old),))
    db.close()

    again = _open(root)
    try:
        sandbox = again.get("sb", NS)
        assert sandbox.shares.links == () and dict(sandbox.shares.users) == {"bob": "viewer"}
        again.create_share_link("sb", NS, token_hash=DIGEST, level="viewer", expires_at=None,
                                max_uses=0)
        assert again.redeem_share_link(DIGEST, "carol").level == "viewer"
    finally:
        again.close()
