"""``agenttier-router watch``: the headless recorder refuses what it cannot record."""

from __future__ import annotations

from cli_helpers import run


def test_watch_needs_a_cluster() -> None:
    out = run("watch", "--control-plane", "local:///tmp/x", "--storage", "sqlite:///x.db")
    assert out.code == 2
    assert out.error_lines == [
        "agenttier-router: error: Invalid value for '--control-plane': watch records a "
        "cluster: use kubernetes://[?context=&namespace=] (see 'agenttier-router watch --help')"]


def test_watch_needs_storage() -> None:
    out = run("watch", "--control-plane", "kubernetes://")
    assert out.code == 2
    assert "watch needs somewhere to record: pass --storage URL" in out.stderr
