"""Issue 15: the same inputs give the same plan in any process. A float summed over a ``set`` of charger ids is
summed in an order that depends on the interpreter's string hash seed (``PYTHONHASHSEED``, random per process), and
floats do not add associatively: the broker's worker and the in-process runner then disagreed in the last bit of the
running peak (the planner's peak floor), which the setpoint lag's energy row tipped into 5.336 vs 5.337 kW."""

from __future__ import annotations

from streams.dispatch.dispatcher import FeederDispatcher
from tests.fixtures.fresh_process import evaluate
from tests.unit.dispatch.fleet import T0, cfg, reg, tel

KW = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.7, "e": 1.1, "f": 1.3, "g": 2.9}
"""Chargers' ratings: each car wants more than it can get in its hour, so its setpoint is its rating; these
ratings add up to a different float in different orders."""


def fleet_after_one_interval() -> FeederDispatcher:
    """Seven cars at their full rating: no feeder meter, so the commanded fleet power is the running peak."""
    d = FeederDispatcher("f1", cfg(setpoint_lag_ms=60_000))
    for cid, kw in KW.items():
        d.on_registration(reg(cid, "site-" + cid, cls="non_parallel", kw=kw))
        d.on_telemetry(tel(cid, T0, energy=50.0, dep_h=1.0, kw=kw))
    d.on_interval(T0)
    return d


def figures(d: FeederDispatcher) -> str:
    """What the next plan is given from this interval, to the last bit: the fleet power logged and the peak floor."""
    return repr((d.fleet_log, d.peak_kw))


def test_the_commanded_fleet_power_and_peak_floor_are_the_same_in_every_process() -> None:
    d = fleet_after_one_interval()
    assert [sp.setpoint_kw for sp in d.last_sent.values()] == list(KW.values())  # every car at its rating
    setup = ("from tests.unit.dispatch.test_process_independence import fleet_after_one_interval, figures\n"
             "d = fleet_after_one_interval()")
    # the last line: HiGHS prints its banner on stdout when it is first loaded
    seen = {evaluate(setup, "figures(d)", seed).splitlines()[-1] for seed in (1, 2, 3, 4, 5)}
    assert seen == {figures(d)}, "the commanded fleet power (the next plan's peak floor) depends on the hash seed"
    assert d.peak_kw == sum(KW.values())  # summed in charger-id order, as it is in every process
