"""A dashboard polling the history during an outage adds no write attempts (issue 9).

Every history read waits for what was already recorded; it used to flush,
and each flush cut the recorder's backoff short. PostgreSQL is reached
through a real TCP proxy of the test's own, killed for the outage.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from router_helpers import Router, config_for, eventually, running_router, wait_phase
from sqlalchemy.engine import make_url
from tcpproxy import TcpProxy

from agenttier_router.storage import RecorderConfig


def _write_attempts(router: Router) -> float:
    """Failed plus completed write_batch calls, read from ``/metrics`` over HTTP."""
    text = httpx.get(f"{router.url}/metrics").text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("agenttier_recorder_backend_errors_total",
                               "agenttier_recorder_batch_write_seconds_count"):
                total += sample.value
    return total


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_history_reads_during_an_outage_do_not_multiply_write_attempts(
    store_url: str, tmp_path: Path
) -> None:
    direct = make_url(store_url)
    assert direct.port is not None
    with TcpProxy(direct.host or "127.0.0.1", direct.port) as proxy:
        url = direct.set(port=proxy.port).render_as_string(hide_password=False)
        # After a failure the next try is a minute away: any attempt in between is a read's.
        recorder = RecorderConfig(flush_interval=0.05, retry_initial=60.0, retry_max=120.0)
        with running_router(config_for(tmp_path, url, recorder=recorder)) as router:
            proxy.kill()
            alice = router.client("alice")
            alice.create_sandbox("minimal", "sb-poll")
            wait_phase(alice, "sb-poll")
            eventually(lambda: _write_attempts(router) >= 1, "the first failed write")
            before = _write_attempts(router)
            carol = router.http("carol")
            for _ in range(30):
                assert carol.get("/audit/events").status_code == 503  # the database is down
            assert _write_attempts(router) == before
            proxy.restart()
