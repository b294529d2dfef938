"""The Router keeps its rollups up to date and purges by its retention, recording each purge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from router_helpers import config_for, eventually, running_router, stored_audit

from agenttier_router.storage import AuditEvent, open_backend
from agenttier_router.storage.retention import RetentionPolicy


def test_the_router_purges_what_its_retention_no_longer_keeps(
    store_url: str, tmp_path: Path
) -> None:
    old = datetime.now(UTC) - timedelta(days=3)
    backend = open_backend(store_url)
    try:
        backend.write_batch([AuditEvent(actor="alice", action="exec", sandbox_id="sb-old",
                                        time=old + timedelta(minutes=i)) for i in range(3)]
                            + [AuditEvent(actor="alice", action="exec", sandbox_id="sb-new")])
    finally:
        backend.close()
    config = config_for(tmp_path, store_url, retention=RetentionPolicy(audit=timedelta(days=1)),
                        maintenance_interval=1.0, purge_batch=2, purge_pause=0.5)
    with running_router(config) as router:
        assert router.state.maintenance is not None
        assert (router.state.maintenance.batch, router.state.maintenance.pause) == (2, 0.5)
        eventually(lambda: not any(e.sandbox_id == "sb-old" for e in stored_audit(store_url)),
                   "the old audit events to be purged")
        router.state.recorder.flush(10)
    kept = stored_audit(store_url)
    [purge] = [e for e in kept if e.action == "purge"]
    assert (purge.actor, purge.resource, purge.outcome) == ("system", "audit_events", "success")
    assert '"rows":3' in purge.details
    assert any(e.sandbox_id == "sb-new" for e in kept)


def test_storage_off_has_no_maintenance(tmp_path: Path) -> None:
    with running_router(config_for(tmp_path, None)) as router:
        assert router.state.maintenance is None
