"""The pages' small parts on their own: sessions, the chart, the window and bucket maths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agenttier_router.api.auth import Identity
from agenttier_router.api.sessions import SessionStore
from agenttier_router.ui.activity import to_rfc3339
from agenttier_router.ui.chart import OTHER, PALETTE, stacked_bars
from agenttier_router.ui.costs import Window, buckets


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_expires_ends_on_sign_out_and_the_oldest_goes_past_the_limit() -> None:
    clock = Clock()
    store = SessionStore(lifetime=60, limit=2, clock=clock)
    alice, bob, carol = (Identity(subject=s) for s in ("alice", "bob", "carol"))
    first = store.open(alice)
    assert store.identify(first) == alice
    assert store.identify("made-up") is None and store.identify(None) is None
    clock.now += 61
    assert store.identify(first) is None  # expired
    second, third = store.open(bob), store.open(carol)
    store.close(second)
    assert store.identify(second) is None and store.identify(third) == carol
    fourth, fifth = store.open(alice), store.open(bob)
    assert store.identify(third) is None  # the oldest, past the limit of 2
    assert {store.identify(fourth), store.identify(fifth)} == {alice, bob}
    assert len({first, second, third, fourth, fifth}) == 5
    assert "alice" not in repr(store)


def test_the_chart_stacks_escapes_and_sums_the_rest_as_other() -> None:
    days = ["2026-11-30T00:00:00.000000Z", "2026-12-01T00:00:00.000000Z"]
    values = {f'<script>k{i}</script>"': {days[0]: float(i + 1)} for i in range(10)}
    values["last"] = {days[1]: 2.0}
    svg, legend = stacked_bars(days, values, hourly=False)
    assert "<script>" not in svg and "&lt;script&gt;k0&lt;/script&gt;&#34;" in svg
    assert [colour for _, colour in legend] == [*PALETTE, OTHER]
    assert legend[-1][0] == "3 others"
    # Day one: 8 keys in their colours, and one "other" rectangle for keys 9 and 10 (9 + 10).
    assert svg.count("<rect") == 8 + 1 + 1
    assert "other, 2026-11-30T00:00:00.000000Z: 19.0000 USD" in svg
    assert ">11-30<" in svg and ">12-01<" in svg


def test_buckets_cover_the_window_and_from_to_fields_become_rfc3339() -> None:
    until = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)
    window = Window(until - timedelta(days=2), until)
    assert window.previous == Window(until - timedelta(days=4), window.since)
    assert buckets(window, "day") == ["2026-11-29T00:00:00.000000Z",
                                      "2026-11-30T00:00:00.000000Z",
                                      "2026-12-01T00:00:00.000000Z"]
    hours = buckets(window, "hour")
    assert len(hours) == 49 and hours[0] == "2026-11-29T15:00:00.000000Z"
    assert to_rfc3339("2026-11-30T10:00") == "2026-11-30T10:00:00Z"
    assert to_rfc3339("2026-11-30") == "2026-11-30T00:00:00Z"
    assert to_rfc3339("2026-11-30T10:00:00+01:00") == "2026-11-30T10:00:00+01:00"
