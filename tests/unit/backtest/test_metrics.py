"""Hand-checked cases of the charger model, the references, the safety audit and the figures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streams.backtest.metrics import (
    Grid,
    audit_setpoints,
    base_load_kw,
    feeder_figures,
    forecast_errors,
    incentive_figures,
    limit_profile,
    settlement_figures,
    simulate_setpoints,
    simulate_uncontrolled,
)
from streams.backtest.optimum import optimal_load
from streams.contracts.models import (
    ChargerRegistration,
    ChargerSetpoint,
    DemandForecast,
    ForecastPoint,
    GridSignal,
    IncentiveEvent,
    MeterReading,
    SchedulePoint,
    Settlement,
)
from streams.contracts.sessions import AcnSession

MIN = 60_000
H = 3_600_000
T0 = 1_700_000_000_000 // H * H
STEP = 5 * MIN


def sess(sid: str = "s1", cid: str = "c1", arr: int = 0, dep: int = 2 * H, kwh: float = 5.0, kw: float = 6.6,
         **kw_: object) -> AcnSession:
    return AcnSession(sid, cid, T0 + arr, T0 + dep, T0 + dep, kwh, kw, **kw_)  # type: ignore[arg-type]


def sp(cid: str, seq: int, kw: float, frm: int, until: int, schedule: list[tuple[int, float]] | None = None,
       fallback: float = 0.0) -> ChargerSetpoint:
    return ChargerSetpoint(charger_id=cid, feeder_id="feeder-1", sequence=seq, setpoint_kw=kw, valid_from=T0 + frm,
                           valid_until=T0 + until, fallback_kw=fallback,
                           schedule=[SchedulePoint(start=T0 + a, kw=v) for a, v in (schedule or [])],
                           reason="optimal", plan_id="p", issued_at=T0 + frm)


def reg(cid: str = "c1", *, bidir: bool = False, icls: str = "non_parallel", export: float = 0.0,
        enrolled: bool = False, kw: float = 6.6) -> ChargerRegistration:
    return ChargerRegistration(charger_id=cid, feeder_id="feeder-1", site_id="s", customer_id=f"cu-{cid}",
                               bidirectional=bidir, inverter_location="offboard",
                               interconnection_class=icls,  # type: ignore[arg-type]
                               export_limit_kw=export, v2g_enrolled=enrolled, max_charge_kw=kw,
                               max_discharge_kw=kw if bidir else 0.0, registered_at=T0)


GRID = Grid(T0, STEP, 24)  # two hours


def test_follows_setpoint_until_it_expires_then_fallback() -> None:
    res = simulate_setpoints([sess()], [sp("c1", 1, 3.0, 0, 30 * MIN)], GRID)
    load = res.ev_kw["feeder-1"]
    assert np.allclose(load[:6], 3.0) and np.allclose(load[6:], 0.0)
    assert res.sessions[0].delivered_kwh == pytest.approx(1.5)


def test_highest_sequence_wins_and_schedule_after_expiry() -> None:
    sps = [sp("c1", 1, 5.0, 0, 60 * MIN), sp("c1", 2, 1.0, 10 * MIN, 20 * MIN, [(10 * MIN, 1.0), (30 * MIN, 2.0)])]
    res = simulate_setpoints([sess(kwh=50)], sps, GRID, schedule_ms=60 * MIN)
    load = res.ev_kw["feeder-1"]
    assert np.allclose(load[:2], 5.0)  # seq 1
    assert np.allclose(load[2:4], 1.0)  # seq 2 while valid
    assert np.allclose(load[4:6], 1.0)  # seq 2 expired: its schedule (first point)
    assert np.allclose(load[6:14], 2.0)  # schedule's second point until valid_from + schedule_ms (70 min)
    assert np.allclose(load[14:], 0.0)  # then its fallback


def test_capped_by_need_rating_and_plug_times() -> None:
    s = sess(arr=10 * MIN, dep=40 * MIN, kwh=1.0, kw=4.0)
    res = simulate_setpoints([s], [sp("c1", 1, 9.0, 0, 2 * H)], GRID)
    load = res.ev_kw["feeder-1"]
    assert np.allclose(load[:2], 0.0)  # not plugged in yet
    assert np.allclose(load[2:5], 4.0)  # rating, not the 9 kW asked
    assert load[5] == pytest.approx(0.0)  # 15 min × 4 kW = 1 kWh: done
    assert res.sessions[0].delivered_kwh == pytest.approx(1.0)


def test_mid_step_setpoint_is_time_weighted() -> None:
    res = simulate_setpoints([sess(kwh=50)], [sp("c1", 1, 6.0, 150_000, 2 * H)], GRID)
    assert res.ev_kw["feeder-1"][0] == pytest.approx(3.0)
    assert res.ev_kw["feeder-1"][1] == pytest.approx(6.0)


def test_discharge_only_for_bidirectional_cars_and_not_below_empty() -> None:
    v2g = sess("s2", "c2", kwh=0.0, bidirectional=True, capacity_kwh=10.0, initial_soc_pct=50.0)
    uni = sess("s1", "c1", kwh=0.0)
    res = simulate_setpoints([uni, v2g], [sp("c1", 1, -5.0, 0, 2 * H), sp("c2", 1, -6.0, 0, 2 * H)], GRID)
    out = {o.session_id: o for o in res.sessions}
    assert out["s1"].exported_kwh == 0.0
    assert out["s2"].exported_kwh == pytest.approx(5.0)  # 50 % of 10 kWh, then empty
    assert res.min_soc_pct["s2"] == pytest.approx(0.0)
    assert res.ev_kw["feeder-1"][0] == pytest.approx(-6.0)


def test_uncontrolled_and_optimal_two_cars() -> None:
    a, b = sess("a", "c1", kwh=6.6), sess("b", "c2", kwh=6.6)
    unc = simulate_uncontrolled([a, b], GRID)
    assert unc.ev_kw["feeder-1"].max() == pytest.approx(13.2)
    load, delivered = optimal_load([a, b], GRID)
    assert load.max() == pytest.approx(6.6, abs=1e-3)
    assert delivered == pytest.approx(13.2, abs=1e-3)


def test_audit_rules() -> None:
    regs = {"c1": reg("c1"), "c2": reg("c2", bidir=True, icls="parallel_exporting", export=3.0, enrolled=True),
            "c3": reg("c3", bidir=True, icls="parallel_exporting", export=3.0, enrolled=False)}
    sessions = [sess("s1", "c1", kw=4.0), sess("s2", "c2", bidirectional=True, capacity_kwh=10, initial_soc_pct=80)]
    ok = [sp("c1", 1, 4.0, 0, 30 * MIN), sp("c2", 1, -3.0, 0, 30 * MIN), sp("c3", 1, 0.0, 0, 30 * MIN)]
    assert audit_setpoints(ok, regs, sessions) == []
    bad = [sp("c1", 2, 5.0, 0, 30 * MIN),  # above the car's 4 kW
           sp("c1", 3, -1.0, 0, 30 * MIN),  # non-exporting site
           sp("c2", 2, -4.0, 0, 30 * MIN),  # above the 3 kW export limit
           sp("c3", 2, -1.0, 0, 30 * MIN),  # not enrolled
           sp("c9", 1, 1.0, 0, 30 * MIN),  # unknown charger
           sp("c1", 4, 1.0, 0, 30 * MIN, [(10 * MIN, 7.0)])]  # schedule point above the limit
    rules = sorted(v.rule for v in audit_setpoints(bad, regs, sessions))
    assert rules == sorted(["above_charge_limit", "export_not_allowed", "above_export_limit", "not_enrolled",
                            "unknown_charger", "above_charge_limit"])
    low = audit_setpoints([sp("c2", 1, -3.0, 0, 30 * MIN)], regs, sessions, min_soc_pct={"s2": 20.0})
    assert [v.rule for v in low] == ["below_reserve"]


def test_accepted_export_offer_allows_discharge_of_unenrolled_in_window() -> None:
    regs = {"c3": reg("c3", bidir=True, icls="parallel_exporting", export=3.0, enrolled=False)}
    offer = IncentiveEvent(offer_id="o1", feeder_id="feeder-1", charger_id="c3", customer_id="cu-c3", action="export",
                           window_start=T0, window_end=T0 + H, expected_kwh=1, compensation=1, expires_at=T0,
                           issued_at=T0, reason="peak")
    sps = [sp("c3", 1, -2.0, 0, 30 * MIN)]
    assert audit_setpoints(sps, regs, [], export_offers=[offer], accepted_offer_ids=["o1"]) == []
    assert [v.rule for v in audit_setpoints(sps, regs, [], export_offers=[offer])] == ["not_enrolled"]


def test_feeder_figures_limit_violation_and_energy() -> None:
    s = sess(kwh=10.0, dep=H)
    res = simulate_setpoints([s], [sp("c1", 1, 6.0, 0, H)], GRID)
    unc = simulate_uncontrolled([s], GRID)
    base = np.full(GRID.n, 4.0)
    imp, exp = limit_profile(GRID, 8.0, 0.0, [], "feeder-1")
    f = feeder_figures(grid=GRID, controlled=res, uncontrolled=unc, optimal_ev_kw=np.zeros(GRID.n),
                       optimal_delivered_kwh=0.0, base_kw=base, import_limit_kw=imp, export_limit_kw=exp,
                       feeder_id="feeder-1", safety_violations=0)
    assert f["peak_kw"] == pytest.approx(10.0)
    assert f["energy_delivered_kwh"] == pytest.approx(6.0)
    assert f["energy_delivered_pct"] == pytest.approx(60.0)
    assert f["energy_delivered_pct_of_deliverable"] == pytest.approx(100 * 6 / 6.6, abs=1e-3)
    assert f["limit_violation_kwh"] == pytest.approx(2.0)  # 2 kW over for one hour
    assert f["limit_violation_steps"] == 12
    assert f["uncontrolled_peak_kw"] == pytest.approx(10.6)
    assert f["load_factor"] == pytest.approx((4.0 + 6.0 * 0.5) / 10.0)


def test_limit_profile_applies_signals() -> None:
    sig = GridSignal(signal_id="dr", feeder_id="feeder-1", issued_at=T0, valid_from=T0 + H, valid_until=T0 + 2 * H,
                     import_limit_kw=5.0)
    imp, exp = limit_profile(GRID, None, None, [sig], "feeder-1")
    assert np.isinf(imp[:12]).all() and np.allclose(imp[12:], 5.0) and np.isinf(exp).all()


def test_base_load_sums_meters_over_the_periods_their_readings_end() -> None:
    """A reading stamped t is its meter's mean over the period ending at t (from its previous reading; the first one
    over the meter's usual spacing): 0 before that, the last value held after the last reading."""
    rs = [MeterReading(meter_id=m, feeder_id="feeder-1", timestamp=T0 + t, active_power_kw=v)
          for m, t, v in (("m1", 30 * MIN, 2.0), ("m1", 60 * MIN, 4.0), ("m2", 30 * MIN, 1.0), ("m2", 60 * MIN, 1.0),
                          ("m3", 60 * MIN, 10.0), ("m3", 90 * MIN, 10.0))]
    base = base_load_kw(rs, GRID)["feeder-1"]
    assert np.allclose(base[:6], 3.0) and np.allclose(base[6:12], 15.0) and np.allclose(base[12:], 15.0)
    assert base_load_kw(rs[:2], GRID)["feeder-1"][:6].tolist() == [2.0] * 6  # not the 4.0 of the period after


def test_forecast_errors_by_horizon_with_naive() -> None:
    grid = Grid(T0, 15 * MIN, 4 * 24 * 2)
    actual = np.full(grid.n, 10.0)
    fc = DemandForecast(feeder_id="feeder-1", issued_at=T0 + 24 * H, step_ms=15 * MIN, model_id="m", coverage=0.9,
                        reporting_share=1.0,
                        points=[ForecastPoint(step=k, start=T0 + 24 * H + (k - 1) * 15 * MIN, kw=11.0, lower_kw=9,
                                              upper_kw=13) for k in (1, 4)])
    out = forecast_errors([fc], actual, grid, (15, 60))
    assert out["15"]["mae_kw"] == pytest.approx(1.0) and out["60"]["mae_kw"] == pytest.approx(1.0)
    assert out["15"]["naive_mae_kw"] == pytest.approx(0.0)
    assert out["15"]["smape_pct"] == pytest.approx(100 * 2 / 21, abs=1e-3)


def test_incentive_and_settlement_figures() -> None:
    offer = IncentiveEvent(offer_id="o1", feeder_id="feeder-1", charger_id="c3", customer_id="cu", action="export",
                           window_start=T0, window_end=T0 + H, expected_kwh=2, compensation=0.6, expires_at=T0,
                           issued_at=T0, reason="peak")
    f = incentive_figures([offer], ["o1"])
    assert (f["offered"], f["accepted"], f["accepted_cost"]) == (1, 1, 0.6)
    st = Settlement(settlement_id="x", feeder_id="feeder-1", charger_id="c3", customer_id="cu", period_start=T0,
                    period_end=T0 + H, exported_kwh=2.0, price_per_kwh=0.3, amount=0.6)
    assert settlement_figures([st, st]) == {"count": 2, "exported_kwh": 4.0, "amount": 1.2}
    assert math.isfinite(settlement_figures([])["amount"])
