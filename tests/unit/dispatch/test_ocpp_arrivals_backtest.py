"""OCPP ChargingProfile shape, the arrivals forecaster and the backtest engine on tiny inputs."""

from __future__ import annotations

import datetime as dt
import pickle
from pathlib import Path

import pytest

from streams.backtest.closedloop import run_closed_loop, run_settings
from streams.backtest.inputs import from_flags
from streams.backtest.report import compute_report
from streams.contracts.models import ChargerSetpoint
from streams.contracts.topics import SETPOINTS
from streams.dispatch.arrivals import ArrivalForecaster
from streams.dispatch.planner import HOUR_MS

T0 = 1_700_000_000_000 // (24 * HOUR_MS) * (24 * HOUR_MS)  # a UTC midnight (Tuesday 2023-11-14)


def sp(kw, schedule):
    return ChargerSetpoint(charger_id="c1", feeder_id="f1", sequence=3, setpoint_kw=kw, valid_from=T0,
                           valid_until=T0 + HOUR_MS, fallback_kw=0.0, schedule=schedule, plan_id="p", issued_at=T0,
                           reason="optimal")


def test_arrivals_forecast_learns_only_from_the_past_per_day_type():
    fc = ArrivalForecaster(timezone="UTC", bin_minutes=60)
    assert fc.expected_sessions(T0, T0 + HOUR_MS * 24) == []
    fc.start(T0)
    for day in range(2):  # Tue, Wed: one car at 08:00 for 4 h, 10 kWh
        a = T0 + day * 24 * HOUR_MS + 8 * HOUR_MS
        fc.observe(f"s{day}", a, a + 4 * HOUR_MS, 10.0, 7.0)
    now = T0 + 2 * 24 * HOUR_MS + 6 * HOUR_MS  # Thursday 06:00
    ex = fc.expected_sessions(now, now + 12 * HOUR_MS)
    assert len(ex) == 1 and ex[0].virtual
    assert ex[0].arrival_ms == now + 2 * HOUR_MS and ex[0].departure_ms == now + 6 * HOUR_MS
    assert ex[0].energy_kwh == pytest.approx(10.0) and ex[0].max_charge_kw == pytest.approx(7.0)
    later = fc.expected_sessions(now + 3 * HOUR_MS, now + 12 * HOUR_MS)
    assert later == []  # the 08:00 arrival is in the past now
    weekend = T0 + 4 * 24 * HOUR_MS  # Saturday: no weekend history
    assert fc.expected_sessions(weekend, weekend + 12 * HOUR_MS) == []
    assert pickle.loads(pickle.dumps(fc)).expected_sessions(now, now + 12 * HOUR_MS) == ex


def test_a_day_first_seen_in_its_afternoon_is_not_averaged_in_as_a_day_without_arrivals():
    la = dt.timezone(dt.timedelta(hours=-8))  # Pacific standard time, all November
    fc = ArrivalForecaster(timezone="America/Los_Angeles", bin_minutes=60)
    fc.start(T0)  # a UTC midnight: Monday 16:00 in Los Angeles, the morning's arrivals never seen
    monday = int(dt.datetime(2023, 11, 13, tzinfo=la).timestamp() * 1000)
    for day in (1, 2):  # Tuesday and Wednesday: one car at 08:00 local for 4 h, 10 kWh
        a = monday + day * 24 * HOUR_MS + 8 * HOUR_MS
        fc.observe(f"s{day}", a, a + 4 * HOUR_MS, 10.0, 7.0)
    now = monday + 3 * 24 * HOUR_MS + 6 * HOUR_MS  # Thursday 06:00 local
    ex = fc.expected_sessions(now, now + 12 * HOUR_MS)
    assert len(ex) == 1 and ex[0].arrival_ms == now + 2 * HOUR_MS
    assert ex[0].energy_kwh == pytest.approx(10.0)  # the mean of Tuesday and Wednesday, not a third of 20 kWh


def test_a_day_first_seen_just_after_its_midnight_counts_whole():
    fc = ArrivalForecaster(timezone="UTC", bin_minutes=60)
    fc.start(T0 + 30 * 60_000)  # Tuesday 00:30
    a = T0 + 8 * HOUR_MS
    fc.observe("s0", a, a + 4 * HOUR_MS, 10.0, 7.0)  # Tuesday's car is learnt from
    now = T0 + 24 * HOUR_MS + 6 * HOUR_MS  # Wednesday 06:00
    ex = fc.expected_sessions(now, now + 12 * HOUR_MS)
    assert len(ex) == 1 and ex[0].energy_kwh == pytest.approx(10.0)


def sessions_csv(tmp: Path) -> Path:
    five = 300_000

    def iso(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    rows = [("a", "c1", T0, T0 + 4 * HOUR_MS), ("b", "c2", T0, T0 + 2 * HOUR_MS),
            ("c", "c3", T0 + 12 * five, T0 + 4 * HOUR_MS)]
    path = tmp / "s.csv"
    path.write_text("session_id,station_id,arrival_utc,departure_utc,requested_energy_kwh,max_power_kw\n"
                    + "".join(f"{s},{c},{iso(a)},{iso(d)},6.6,6.6\n" for s, c, a, d in rows))
    return path


def test_backtest_serves_everyone_below_the_uncontrolled_peak(tmp_path: Path) -> None:
    inputs = from_flags(sessions_csv(tmp_path), step_ms=300_000, settings={"dispatch_forecast_arrivals": True})
    settings = run_settings(inputs)
    run = run_closed_loop(inputs, settings)
    sps = run.outputs.get(SETPOINTS, [])
    t = compute_report(inputs, setpoints=sps, settings=settings, twins=run).figures["total"]
    assert t["uncontrolled_peak_kw"] == pytest.approx(13.2, abs=1e-3)
    assert t["optimal_peak_kw"] == pytest.approx(19.8 / 4, abs=1e-2)  # 19.8 kWh over the four hours
    assert t["energy_delivered_pct_of_deliverable"] == pytest.approx(100.0, abs=1e-3)
    assert t["peak_kw"] < 13.2 - 1e-6
    assert sps and all(s.setpoint_kw >= 0 for s in sps)
