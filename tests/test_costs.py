"""The price table and the cost sampler: snapshots that add up to running time x rates."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agenttier_router.controlplane import (
    DEFAULT_TEMPLATES,
    LocalControlPlane,
    Phase,
    Sandbox,
    Template,
    Transition,
)
from agenttier_router.costs import CostSampler, PriceTable
from agenttier_router.storage import CostSnapshot

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TEMPLATE = Template(name="t", cpu=0.5, memory_gib=1.0)
PRICES = PriceTable()


class FakeClock:
    """A fake clock, set by hand (or stepping on each reading), so sampler times are exact."""

    def __init__(self, now: datetime = T0, step: timedelta = timedelta(0)) -> None:
        self.now = now
        self.step = step
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self.now += self.step
            return self.now


def _t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _transition(phase: Phase, at: datetime, name: str = "sb", namespace: str = "ns",
                template: Template = TEMPLATE) -> Transition:
    sandbox = Sandbox(name=name, namespace=namespace, template=template, phase=phase,
                      owner="alice", owner_email="", created_at=T0, last_activity_at=at)
    return Transition(sandbox=sandbox, phase=phase, reason="", message="", time=at)


def _expected(seconds: float, template: Template = TEMPLATE) -> tuple[float, float, float]:
    hours = seconds / 3600
    cpu, mem = template.cpu * hours, template.memory_gib * hours
    return cpu, mem, cpu * PRICES.cpu_per_vcpu_hour + mem * PRICES.memory_per_gib_hour


def _totals(snapshots: list[CostSnapshot], name: str = "sb") -> tuple[float, float, float]:
    mine = [s for s in snapshots if s.sandbox_id == name]
    return (math.fsum(s.cpu_hours for s in mine), math.fsum(s.mem_gb_hours for s in mine),
            math.fsum(s.estimated_usd for s in mine))


def _assert_close(actual: tuple[float, ...], expected: tuple[float, ...]) -> None:
    assert actual == pytest.approx(expected, rel=1e-9, abs=0)


# The price table

def test_price_table_defaults_are_opencosts() -> None:
    assert PriceTable() == PriceTable(cpu_per_vcpu_hour=0.031611, memory_per_gib_hour=0.004237)
    assert PriceTable(cpu_per_vcpu_hour=1).cpu_per_vcpu_hour == 1.0
    assert type(PriceTable(cpu_per_vcpu_hour=1).cpu_per_vcpu_hour) is float
    assert PriceTable(memory_per_gib_hour=0).memory_per_gib_hour == 0.0


@pytest.mark.parametrize(("price", "error"), [
    pytest.param(-0.01, ValueError, id="negative"),
    pytest.param(float("nan"), ValueError, id="nan"),
    pytest.param(float("inf"), ValueError, id="inf"),
    pytest.param(True, TypeError, id="bool"),
    pytest.param("0.03", TypeError, id="str"),
])
def test_price_table_refuses_bad_prices(price: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="cpu_per_vcpu_hour"):
        PriceTable(cpu_per_vcpu_hour=price)  # type: ignore[arg-type]
    with pytest.raises(error, match="memory_per_gib_hour"):
        PriceTable(memory_per_gib_hour=price)  # type: ignore[arg-type]


def test_prices_set_the_usd() -> None:
    snapshots: list[CostSnapshot] = []
    prices = PriceTable(cpu_per_vcpu_hour=2.0, memory_per_gib_hour=0.5)
    sampler = CostSampler(snapshots.append, prices, clock=FakeClock())
    sampler.observe(_transition(Phase.RUNNING, _t(0), template=Template("big", 4, 8)))
    sampler.observe(_transition(Phase.STOPPED, _t(1800), template=Template("big", 4, 8)))
    [snapshot] = snapshots
    assert (snapshot.cpu_hours, snapshot.mem_gb_hours) == (2.0, 4.0)
    assert snapshot.estimated_usd == 2.0 * 2.0 + 4.0 * 0.5


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf"), True])
def test_sampler_refuses_a_bad_interval(interval: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        CostSampler(lambda s: None, PRICES, interval=interval)


# The sampler's arithmetic

def test_start_stop_resume_delete_sums_exactly() -> None:
    snapshots: list[CostSnapshot] = []
    sampler = CostSampler(snapshots.append, PRICES, clock=FakeClock())
    sampler.observe(_transition(Phase.CREATING, _t(0)))
    sampler.tick(_t(5))
    assert snapshots == []  # Creating accrues nothing
    sampler.observe(_transition(Phase.RUNNING, _t(10)))
    sampler.tick(_t(70))
    sampler.observe(_transition(Phase.STOPPED, _t(100.000001)))
    sampler.tick(_t(130))  # stopped: nothing
    sampler.observe(_transition(Phase.RUNNING, _t(200)))
    sampler.tick(_t(250))
    sampler.tick(_t(250))  # zero-length: nothing
    sampler.observe(_transition(Phase.DELETING, _t(400.5)))
    sampler.observe(_transition(Phase.DELETING, _t(400.6)))  # "Deleted": nothing more
    sampler.tick(_t(500))
    assert [s.time for s in snapshots] == [_t(70), _t(100.000001), _t(250), _t(400.5)]
    assert all((s.sandbox_id, s.namespace) == ("sb", "ns") for s in snapshots)
    assert len({s.event_id for s in snapshots}) == 4
    _assert_close(_totals(snapshots), _expected(90.000001 + 200.5))


def test_a_tick_splits_an_interval() -> None:
    snapshots: list[CostSnapshot] = []
    sampler = CostSampler(snapshots.append, PRICES, clock=FakeClock())
    sampler.observe(_transition(Phase.RUNNING, _t(0)))
    sampler.tick(_t(60))
    sampler.tick(_t(90))
    sampler.observe(_transition(Phase.STOPPED, _t(100)))
    first, second, last = snapshots
    _assert_close((first.cpu_hours, first.mem_gb_hours, first.estimated_usd), _expected(60))
    _assert_close((second.cpu_hours, second.mem_gb_hours, second.estimated_usd), _expected(30))
    _assert_close((last.cpu_hours, last.mem_gb_hours, last.estimated_usd), _expected(10))
    # Whom and what the cost belongs to: the sandbox's owner and template.
    assert {(s.owner, s.template) for s in snapshots} == {("alice", TEMPLATE.name)}


def test_leaving_running_by_error_is_a_final_snapshot() -> None:
    snapshots: list[CostSnapshot] = []
    sampler = CostSampler(snapshots.append, PRICES, clock=FakeClock())
    sampler.observe(_transition(Phase.RUNNING, _t(0)))
    sampler.observe(_transition(Phase.RUNNING, _t(30)))  # a repeat does not restart the clock
    sampler.observe(_transition(Phase.ERROR, _t(60)))
    sampler.observe(_transition(Phase.STOPPED, _t(90)))
    sampler.tick(_t(120))
    [snapshot] = snapshots
    assert snapshot.time == _t(60)
    _assert_close(_totals(snapshots), _expected(60))


def test_tick_uses_the_clock_by_default() -> None:
    snapshots: list[CostSnapshot] = []
    clock = FakeClock(_t(0))
    sampler = CostSampler(snapshots.append, PRICES, clock=clock)
    sampler.observe(_transition(Phase.RUNNING, _t(0)))
    clock.now = _t(45)
    sampler.tick()
    assert [s.time for s in snapshots] == [_t(45)]
    _assert_close(_totals(snapshots), _expected(45))


def test_a_clock_going_back_emits_nothing_negative() -> None:
    snapshots: list[CostSnapshot] = []
    sampler = CostSampler(snapshots.append, PRICES, clock=FakeClock())
    sampler.observe(_transition(Phase.RUNNING, _t(100)))
    sampler.tick(_t(50))
    sampler.observe(_transition(Phase.STOPPED, _t(160)))
    assert [s.time for s in snapshots] == [_t(160)]
    _assert_close(_totals(snapshots), _expected(60))


def test_close_emits_a_last_snapshot_and_ends_accrual() -> None:
    snapshots: list[CostSnapshot] = []
    clock = FakeClock(_t(0))
    sampler = CostSampler(snapshots.append, PRICES, clock=clock)
    sampler.observe(_transition(Phase.RUNNING, _t(0), name="a"))
    sampler.observe(_transition(Phase.RUNNING, _t(20), name="b"))
    sampler.observe(_transition(Phase.STOPPED, _t(30), name="b"))
    sampler.tick(_t(40))
    clock.now = _t(100)
    sampler.close()
    assert [(s.sandbox_id, s.time) for s in snapshots] == [
        ("b", _t(30)), ("a", _t(40)), ("a", _t(100)),
    ]
    _assert_close(_totals(snapshots, "a"), _expected(100))
    _assert_close(_totals(snapshots, "b"), _expected(10))
    sampler.observe(_transition(Phase.RUNNING, _t(110), name="c"))
    sampler.tick(_t(200))
    sampler.close()
    assert len(snapshots) == 3  # nothing after close


def test_many_sandboxes_random_lifecycles_sum_exactly() -> None:
    rng = random.Random(1234)
    snapshots: list[CostSnapshot] = []
    sampler = CostSampler(snapshots.append, PRICES, clock=FakeClock())
    templates = {f"sb-{i}": Template(f"t{i}", rng.choice([0.25, 0.5, 1.5, 3]),
                                     rng.choice([0.25, 1, 2.5, 16])) for i in range(20)}
    running_since: dict[str, datetime | None] = dict.fromkeys(templates)
    running_seconds: dict[str, timedelta] = {name: timedelta(0) for name in templates}
    now = T0
    for _ in range(2000):
        now += timedelta(microseconds=rng.randrange(1, 90_000_000))
        if rng.random() < 0.2:
            sampler.tick(now)
            continue
        name = rng.choice(list(templates))
        since = running_since[name]
        if since is None:
            sampler.observe(_transition(Phase.RUNNING, now, name, template=templates[name]))
            running_since[name] = now
        else:
            phase = rng.choice([Phase.STOPPED, Phase.DELETING, Phase.ERROR])
            sampler.observe(_transition(phase, now, name, template=templates[name]))
            running_seconds[name] += now - since
            running_since[name] = None
    now += timedelta(seconds=1)
    sampler.tick(now)
    for name, since in running_since.items():
        if since is not None:
            running_seconds[name] += now - since
    for name, template in templates.items():
        _assert_close(_totals(snapshots, name),
                      _expected(running_seconds[name].total_seconds(), template))


def test_a_failing_emit_is_logged_and_the_next_tick_covers_its_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    snapshots: list[CostSnapshot] = []
    failing = [True]

    def emit(snapshot: CostSnapshot) -> None:
        if failing[0]:
            raise RuntimeError("recorder is down")
        snapshots.append(snapshot)

    sampler = CostSampler(emit, PRICES, clock=FakeClock())
    sampler.observe(_transition(Phase.RUNNING, _t(0)))
    with caplog.at_level(logging.ERROR):
        sampler.tick(_t(60))  # does not raise
    assert "recorder is down" in caplog.text
    failing[0] = False
    sampler.tick(_t(90))
    assert len(snapshots) == 1
    _assert_close(_totals(snapshots), _expected(90))


def test_observe_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    sampler = CostSampler(lambda s: None, PRICES, clock=FakeClock())
    naive = datetime(2026, 3, 1, 12, 0)
    sampler.observe(_transition(Phase.RUNNING, _t(0)))
    with caplog.at_level(logging.ERROR):
        sampler.observe(_transition(Phase.STOPPED, naive))  # aware minus naive: TypeError
        sampler.observe("not a transition")  # type: ignore[arg-type]
    assert caplog.text.count("could not observe") == 2


def test_the_background_thread_ticks_and_close_completes_the_sum() -> None:
    snapshots: list[CostSnapshot] = []
    lock = threading.Lock()

    def emit(snapshot: CostSnapshot) -> None:
        with lock:
            snapshots.append(snapshot)

    clock = FakeClock(_t(0), step=timedelta(seconds=7))  # every reading is 7 s later
    sampler = CostSampler(emit, PRICES, interval=0.01, clock=clock)
    sampler.observe(_transition(Phase.RUNNING, _t(0)))
    sampler.start()
    with pytest.raises(RuntimeError):
        sampler.start()
    deadline = time.monotonic() + 10
    while len(snapshots) < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    sampler.close()
    assert len(snapshots) >= 4  # at least three ticks and close's last snapshot
    assert snapshots[-1].time == clock.now
    _assert_close(_totals(snapshots), _expected((clock.now - T0).total_seconds()))


def test_wired_to_the_local_control_plane(tmp_path: Path) -> None:
    snapshots: list[CostSnapshot] = []
    clock = FakeClock(_t(0), step=timedelta(seconds=1))
    sampler = CostSampler(snapshots.append, PRICES, clock=clock)
    seen: list[Transition] = []

    def sink(transition: Transition) -> None:
        seen.append(transition)
        sampler.observe(transition)

    plane = LocalControlPlane(tmp_path, DEFAULT_TEMPLATES, sink, clock=clock)
    try:
        plane.create("sb", "ns", "general-coding", "alice", "")
        deadline = time.monotonic() + 10
        while plane.get("sb", "ns").phase is Phase.CREATING and time.monotonic() < deadline:
            time.sleep(0.005)
        sampler.tick()
        plane.stop("sb", "ns")
        plane.resume("sb", "ns")
        sampler.tick()
        plane.delete("sb", "ns")
    finally:
        plane.close()
        sampler.close()
    times = {(t.phase, t.reason): t.time for t in seen}
    seconds = ((times[Phase.STOPPED, "Stopped"] - times[Phase.RUNNING, "Started"])
               + (times[Phase.DELETING, "Deleting"] - times[Phase.RUNNING, "Resumed"]))
    assert len(snapshots) == 4
    _assert_close(_totals(snapshots),
                  _expected(seconds.total_seconds(), DEFAULT_TEMPLATES["general-coding"]))
