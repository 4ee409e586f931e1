"""OCPP ChargingProfile shape, the arrivals forecaster and the backtest core on tiny inputs."""

from __future__ import annotations

import json
import pickle

import pytest

from streams.contracts.models import ChargerSetpoint, SchedulePoint
from streams.dispatch.arrivals import ArrivalForecaster
from streams.dispatch.backtest_core import SimSession, perfect_foresight_peak, run_backtest, uncontrolled_peak
from streams.dispatch.dispatcher import DispatchConfig
from streams.dispatch.ocpp import to_charging_profile
from streams.dispatch.planner import HOUR_MS

T0 = 1_700_000_000_000 // (24 * HOUR_MS) * (24 * HOUR_MS)  # a UTC midnight (Tuesday 2023-11-14)


def sp(kw, schedule):
    return ChargerSetpoint(charger_id="c1", feeder_id="f1", sequence=3, setpoint_kw=kw, valid_from=T0,
                           valid_until=T0 + HOUR_MS, fallback_kw=0.0, schedule=schedule, plan_id="p", issued_at=T0,
                           reason="optimal")


def test_ocpp_profile_shape_and_discharge_limits():
    sched = [SchedulePoint(start=T0, kw=-3.5), SchedulePoint(start=T0 + 900_000, kw=7.2),
             SchedulePoint(start=T0 + 2 * HOUR_MS, kw=1.0)]
    prof = to_charging_profile(sp(-3.5, sched), profile_id=42, transaction_id="tx-1")
    json.dumps(prof)
    assert prof["chargingProfilePurpose"] == "TxProfile" and prof["chargingProfileKind"] == "Absolute"
    assert prof["stackLevel"] == 1 and prof["id"] == 42 and prof["transactionId"] == "tx-1"
    assert prof["validFrom"] == "2023-11-14T00:00:00Z" and prof["validTo"] == "2023-11-14T01:00:00Z"
    (cs,) = prof["chargingSchedule"]
    assert cs["chargingRateUnit"] == "W" and cs["duration"] == 3600 and cs["startSchedule"] == prof["validFrom"]
    assert cs["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": -3500.0}, {"startPeriod": 900, "limit": 7200.0}]
    longer = to_charging_profile(sp(-3.5, sched), 1, until_ms=T0 + 3 * HOUR_MS, allow_discharge=False)
    periods = longer["chargingSchedule"][0]["chargingSchedulePeriod"]
    assert periods[0]["limit"] == 0.0 and periods[-1] == {"startPeriod": 7200, "limit": 1000.0}
    assert "transactionId" not in longer


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


def sessions():
    five = 300_000
    return [SimSession("a", "c1", T0, T0 + 4 * HOUR_MS, 6.6, 6.6),
            SimSession("b", "c2", T0, T0 + 2 * HOUR_MS, 6.6, 6.6),
            SimSession("c", "c3", T0 + 12 * five, T0 + 4 * HOUR_MS, 6.6, 6.6)]


def test_references_on_a_hand_checked_case():
    unc, unc_e = uncontrolled_peak(sessions(), 300_000)
    assert unc == pytest.approx(13.2) and unc_e == pytest.approx(19.8)
    opt, opt_e = perfect_foresight_peak(sessions(), 300_000)
    assert opt == pytest.approx(19.8 / 4, abs=1e-6) and opt_e == pytest.approx(19.8)


def test_backtest_serves_everyone_below_the_uncontrolled_peak():
    cfg = DispatchConfig(step_ms=300_000, forecast_arrivals=True, timezone="UTC")
    res = run_backtest(sessions(), 300_000, cfg, keep_setpoints=True)
    assert res.energy_delivered_pct == pytest.approx(100.0, abs=1e-6)
    assert res.peak_kw < 13.2 - 1e-6
    assert all(s.setpoint_kw >= 0 for s in res.setpoints) and res.n_fallbacks == 0
