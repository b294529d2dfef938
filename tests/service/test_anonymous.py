"""Folding anonymous denials: per source and reason, the first of an interval, then a count."""

from __future__ import annotations

from agenttier_router.service.anonymous import FIELD_LIMIT, AnonymousDenials, cap_fields


class Clock:
    """A clock the test moves by hand (time itself is not what is tested)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_first_of_each_interval_then_one_count() -> None:
    clock = Clock()
    folded = AnonymousDenials(10.0, clock=clock)
    assert folded.admit("10.0.0.1", "no key", {"action": "exec"})
    assert [folded.admit("10.0.0.1", "no key", {"action": a}) for a in ("exec", "stop")] == [
        False, False]
    assert folded.admit("10.0.0.2", "no key", {"action": "exec"})  # another source
    assert folded.admit("10.0.0.1", "bad host", {"action": "request"})  # another reason
    assert folded.due() == []
    clock.now = 10.0
    [window] = folded.due()
    assert (window.source, window.reason, window.count) == ("10.0.0.1", "no key", 2)
    assert dict(window.actions) == {"exec": 1, "stop": 1}
    assert window.first == {"action": "exec"}
    assert folded.admit("10.0.0.1", "no key", {"action": "exec"})  # a new interval
    assert folded.due(everything=True) == []


def test_an_interval_that_ends_before_the_sweep_is_not_lost() -> None:
    clock = Clock()
    folded = AnonymousDenials(10.0, clock=clock)
    for _ in range(4):
        folded.admit("a", "r", {"action": "x"})
    clock.now = 11.0
    assert folded.admit("a", "r", {"action": "x"})  # opens the next window
    assert folded.admit("a", "r", {"action": "x"}) is False
    counts = sorted(w.count for w in folded.due(everything=True))
    assert counts == [1, 3]


def test_past_max_sources_new_addresses_share_a_window() -> None:
    folded = AnonymousDenials(10.0, clock=Clock(), max_sources=2)
    assert folded.admit("a", "r", {}) and folded.admit("b", "r", {})
    assert folded.admit("c", "r", {})  # the first in the shared "*" window
    assert not folded.admit("d", "r", {})
    [shared] = folded.due(everything=True)
    assert (shared.source, shared.count) == ("*", 1)


def test_interval_zero_folds_nothing() -> None:
    folded = AnonymousDenials(0.0)
    assert all(folded.admit("a", "r", {}) for _ in range(5))


def test_cap_fields() -> None:
    capped = cap_fields({"path": "/" + "x" * 500, "count": 3, "short": "ok"})
    assert len(capped["path"]) == FIELD_LIMIT and capped["path"].endswith("…")
    assert (capped["count"], capped["short"]) == (3, "ok")
