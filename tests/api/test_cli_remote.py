"""``agenttier-router records … --url``: the CLI reads history through a Router's API."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from router_helpers import KEYS, config_for, running_router, wait_phase

from agenttier_router.cli import cli


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_records_through_the_api_match_the_database(store_url: str, tmp_path: Path) -> None:
    with running_router(config_for(tmp_path, store_url, cost_interval=60.0)) as router:
        alice = router.client("alice")
        sandbox = alice.create_sandbox(template="minimal", name="remote-1")
        wait_phase(alice, "remote-1")
        sandbox.exec("echo hi")
        sandbox.stop()
        bob = router.http("bob")
        assert bob.post("/sandboxes/remote-1/stop").status_code == 404  # denied, recorded
        remote = ("--url", router.url, "--api-key", KEYS["carol"])
        for command in (["audit"], ["sandbox-events"], ["costs"],
                        ["costs", "--group-by", "namespace"],
                        ["audit", "--outcome", "denied"], ["audit", "--actor", "alice"],
                        ["audit", "--resource", "sandbox", "--limit", "2", "--all"]):
            code, through_api, err = run("records", *command, "--format", "json", *remote)
            assert code == 0, err
            code, from_db, err = run("records", *command, "--format", "json", "--dsn", store_url)
            assert code == 0, err
            assert json.loads(through_api) == json.loads(from_db), command
            assert json.loads(through_api), command  # something was recorded for each

        code, _, err = run("records", "audit", "--url", router.url, "--api-key", KEYS["alice"])
        assert code == 1 and "403" in err and "admins" in err  # alice is not an admin
        code, _, err = run("records", "audit", "--url", router.url, "--dsn", store_url)
        assert code == 2 and "two sources" in err
        code, _, err = run("records", "audit", "--url", "router:8080")
        assert code == 2 and "http://" in err


def test_a_router_that_does_not_answer() -> None:
    code, out, err = run("records", "audit", "--url", "http://127.0.0.1:1", "--api-key", "k")
    assert code == 1 and out == ""
    assert "cannot reach the Router" in err
