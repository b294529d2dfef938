"""``optional.storage.retention.*``: retention, from Helm values to the serve command."""

from __future__ import annotations

import pytest
from helm_helpers import render, render_error

from agenttier_router.cli.db import retention_policy
from agenttier_router.storage.retention import ENV_VARS


def test_retention_is_forever_by_default() -> None:
    env = render({"optional.storage.enabled": True}).env()
    assert not set(ENV_VARS.values()) & set(env)


def test_retention_values_become_the_routers_environment() -> None:
    env = render({"optional.storage.enabled": True,
                  "optional.storage.retention.audit": "365d",
                  "optional.storage.retention.sandboxEvents": "90d",
                  "optional.storage.retention.costs": "30d",
                  "optional.storage.retention.rollupsHourly": "60d",
                  "optional.storage.retention.rollupsDaily": "0"}).env()
    shown = {kind: env.get(var) for kind, var in ENV_VARS.items()}
    assert shown == {"audit": "365d", "sandbox-events": "90d", "costs": "30d",
                     "rollups-hourly": "60d", "rollups-daily": None}
    # What the chart renders is what `serve` accepts.
    policy = retention_policy({f"retention_{k.replace('-', '_')}": v for k, v in shown.items()})
    assert policy.audit is not None and policy.audit.days == 365
    assert policy.rollups_daily is None


@pytest.mark.parametrize("bad", ["1 year", "-5d", "365"])
def test_a_malformed_retention_fails_the_render(bad: str) -> None:
    error = render_error({"optional.storage.enabled": True,
                          "optional.storage.retention.audit": bad})
    assert "retention" in error
