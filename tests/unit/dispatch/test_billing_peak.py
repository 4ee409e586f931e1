"""The measured load of yesterday that bounds a plan's base load from below (issue 15, V2G week)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from streams.dispatch.billing_peak import DAY_MS, LOAD_HOLD_MS, mean_power, yesterday_load
from streams.dispatch.dispatcher import FeederDispatcher
from streams.dispatch.plan import PlannerWeights
from tests.unit.dispatch.fleet import HOUR_MS, T0, Q, cfg, reg, signal, tel


def test_yesterday_load_is_the_reading_of_the_interval_holding_that_time_a_day_earlier() -> None:
    hist = [(T0 - DAY_MS + Q, 10.0), (T0 - DAY_MS + 2 * Q, 20.0), (T0 - DAY_MS + 4 * Q, 40.0)]
    t = np.array([T0 + 1, T0 + Q + 1, T0 + 2 * Q + 1, T0 + 5 * Q, T0 - 2 * HOUR_MS])
    out = yesterday_load(hist, t, LOAD_HOLD_MS)
    assert out[:3].tolist() == [10.0, 20.0, 40.0]  # the third time's interval ended a gap of one reading later
    assert math.isnan(out[3])  # nothing measured after that time yesterday
    assert math.isnan(out[4])  # the nearest reading ends 2 h after it: more than the gap allowed
    assert np.isnan(yesterday_load([], t, LOAD_HOLD_MS)).all()


def _car_kw_at_t0(yesterday_kw: float | None) -> float:
    """A car that needs 7 kWh in 2 h (7 kW max) under a 20 kW import limit, the forecast says 5 kW of base load;
    yesterday the feeder drew ``yesterday_kw`` over the same first hour (and 5 kW after it)."""
    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("a", "site-a", cls="non_parallel"))
    d.on_telemetry(tel("a", T0, energy=7.0, dep_h=2.0))
    d.on_signal(signal("cap", T0, T0 + 8 * HOUR_MS, imp=20.0))
    if yesterday_kw is not None:
        for k in range(1, 4 * 8 + 1):
            d.observe_load(T0 - DAY_MS + k * Q, yesterday_kw if k <= 4 else 5.0)
    return sum(sp.setpoint_kw for sp in d.on_interval(T0, [5.0] * 40).setpoints)


def test_a_plan_does_not_count_on_the_load_falling_below_yesterdays_at_the_same_time() -> None:
    # without the history the plan spreads the 7 kWh flat over the 2 h (3.5 kW); with 18 kW yesterday in the first
    # hour it expects that hour to be the peak and moves all the charging into the second
    assert _car_kw_at_t0(None) == pytest.approx(3.5, abs=1e-2)
    assert _car_kw_at_t0(18.0) == pytest.approx(0.0, abs=1e-2)
    assert _car_kw_at_t0(3.0) == pytest.approx(3.5, abs=1e-2)  # a lower load yesterday does not lower the forecast


def test_the_plan_base_takes_yesterdays_load_only_where_it_was_measured() -> None:
    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("a", "site-a", cls="non_parallel"))
    d.on_telemetry(tel("a", T0, energy=7.0, dep_h=2.0))
    for k in range(1, 5):  # yesterday's first hour only
        d.observe_load(T0 - DAY_MS + k * Q, 30.0)
    d.on_interval(T0, [5.0] * 40)
    assert d.plan_request is not None
    base = d.plan_request.base_kw
    assert base[:4] == pytest.approx([30.0] * 4)
    assert base[4:] == pytest.approx([5.0] * (len(base) - 4))


def test_the_load_history_keeps_one_day_and_the_hold() -> None:
    d = FeederDispatcher("f1", cfg())
    for k in range(0, 4 * 30):  # 30 h of readings
        d.observe_load(T0 + k * Q, 1.0)
    last = T0 + (4 * 30 - 1) * Q
    assert d.load_history[-1][0] == last
    assert d.load_history[0][0] >= last - DAY_MS - LOAD_HOLD_MS
    assert d.load_history[0][0] - Q < last - DAY_MS - LOAD_HOLD_MS  # nothing needed was dropped


def test_the_running_peak_is_measured_load_plus_commanded_ev_power_never_a_forecast() -> None:
    # the forecast says 100 kW of base load where the meter reads 50 kW: a peak floor taken from the forecast would
    # be 50 kW of phantom headroom every later plan fills with EV load
    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("a", "site-a", cls="non_parallel"))
    d.on_telemetry(tel("a", T0, energy=14.0, dep_h=2.0))  # needs 7 kW for the whole 2 h
    d.observe_load(T0, 50.0)
    d.on_interval(T0, [100.0] * 40)
    kw = sum(sp.setpoint_kw for sp in d.last_sent.values())
    assert kw == pytest.approx(7.0, abs=1e-6)
    assert d.peak_kw == pytest.approx(50.0)  # nothing measured yet over the interval the car charges in
    d.observe_load(T0 + Q, 52.0)  # the meter's reading of that interval: its load plus the 7 kW commanded
    assert d.peak_kw == pytest.approx(59.0)
    d.on_interval(T0 + Q, [100.0] * 40)
    assert d.plan_request is not None and d.plan_request.peak_floor_kw == pytest.approx(59.0)


def test_without_a_meter_the_running_peak_is_the_commanded_ev_power() -> None:
    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("a", "site-a", cls="non_parallel"))
    d.on_telemetry(tel("a", T0, energy=14.0, dep_h=2.0))
    d.on_interval(T0)
    assert d.peak_kw == pytest.approx(7.0, abs=1e-6)


def test_mean_power_of_the_commanded_log_over_an_interval() -> None:
    log = [(T0, 10.0), (T0 + Q // 3, 40.0)]
    assert mean_power(log, T0, T0 + Q) == pytest.approx(30.0)
    assert mean_power(log, T0 - Q, T0) == 0.0  # before the first command: nothing
    assert mean_power(log, T0 + Q, T0 + 2 * Q) == pytest.approx(40.0)  # the last command holds


def test_a_rising_load_is_planned_to_go_on_rising_for_the_hold() -> None:
    # readings of 10 then 20 kW (15-minute intervals ending at T0 - Q and T0), the forecast says 5 kW: with the ramp
    # hold the next half hour's base is the last reading carried on at its slope (10 kW per interval from the last
    # interval's middle), without it the last reading held flat; a falling load is only held
    def base(readings: list[float], ramp: bool) -> list[float]:
        d = FeederDispatcher("f1", cfg(ramp_hold=ramp))
        d.on_registration(reg("a", "site-a", cls="non_parallel"))
        d.on_telemetry(tel("a", T0, energy=7.0, dep_h=4.0))
        d.observe_load(T0 - Q, readings[0])
        d.observe_load(T0, readings[1])
        d.on_interval(T0, [5.0] * 40)
        assert d.plan_request is not None
        return list(d.plan_request.base_kw[:3])

    assert base([10.0, 20.0], ramp=False) == pytest.approx([20.0, 20.0, 5.0])
    assert base([10.0, 20.0], ramp=True) == pytest.approx([30.0, 40.0, 5.0])
    assert base([20.0, 10.0], ramp=True) == pytest.approx([10.0, 10.0, 5.0])


def _planned_base(readings: tuple[float, float], forecast_kw: float, upper: list[float] | None) -> list[float]:
    """The first three steps of the planned base load after two 15-minute readings (ending at T0 - Q and T0), with a
    flat forecast and the forecast's upper bound (``None``: none), the ramp hold on."""
    d = FeederDispatcher("f1", cfg(ramp_hold=True))
    d.on_registration(reg("a", "site-a", cls="non_parallel"))
    d.on_telemetry(tel("a", T0, energy=7.0, dep_h=4.0))
    d.observe_load(T0 - Q, readings[0])
    d.observe_load(T0, readings[1])
    d.on_interval(T0, [forecast_kw] * 40, base_upper_kw=upper)
    assert d.plan_request is not None
    return list(d.plan_request.base_kw[:3])


def test_a_rising_load_is_carried_on_no_higher_than_the_forecasts_upper_bound() -> None:
    # the same ramp (10 then 20 kW, carried on: 30 and 40 kW) with the forecast's upper prediction bound: the line
    # through the ramp stops at the bound (a forecast that sees the turn coming is not overruled), and so does the
    # last reading held (a forecast that sees the load fall is not planned flat); without a bound it is carried on
    def base(upper: list[float] | None) -> list[float]:
        return _planned_base((10.0, 20.0), 5.0, upper)

    assert base(None) == pytest.approx([30.0, 40.0, 5.0])
    assert base([35.0] * 40) == pytest.approx([30.0, 35.0, 5.0])
    assert base([25.0] * 40) == pytest.approx([25.0, 25.0, 5.0])
    assert base([8.0] * 40) == pytest.approx([8.0, 8.0, 5.0])  # the held reading too stops at the bound


def test_a_falling_load_is_held_no_higher_than_the_forecasts_upper_bound() -> None:
    # readings of 30 then 20 kW, a forecast of 10 kW: the last reading holds for the next half hour, but not above
    # the forecast's upper bound (14 kW: the forecast sees the fall); the hold's end leaves the forecast
    def base(upper: list[float] | None) -> list[float]:
        return _planned_base((30.0, 20.0), 10.0, upper)

    assert base(None) == pytest.approx([20.0, 20.0, 10.0])
    assert base([14.0] * 40) == pytest.approx([14.0, 14.0, 10.0])
    assert base([25.0] * 40) == pytest.approx([20.0, 20.0, 10.0])


def test_a_saw_tooth_forecast_is_planned_at_the_top_of_each_meter_reading_period() -> None:
    # 15-minute meter readings, a forecast of 5-minute intervals that dips in two of each three (what a forecaster
    # learning one interval in three issues): with the period max a plan counts on the top of each period, without it
    # on the dips, where it would put EV load
    saw = [10.0, 10.0, 30.0] * 20  # intervals ending T0+5', T0+10' (dips), T0+15' (the reading's) ...

    def base(period_max: bool) -> list[float]:
        d = FeederDispatcher("f1", replace(cfg(base_period_max=period_max, ramp_hold=False), step_ms=5 * 60_000))
        d.on_registration(reg("a", "site-a", cls="non_parallel"))
        d.on_telemetry(tel("a", T0, energy=7.0, dep_h=4.0))
        d.observe_load(T0 - 4 * HOUR_MS - Q, 5.0)  # two readings 15 minutes apart, long before: the period only
        d.observe_load(T0 - 4 * HOUR_MS, 5.0)
        d.on_interval(T0, saw, T0, 5 * 60_000)
        assert d.plan_request is not None
        return list(d.plan_request.base_kw[:6])

    assert base(False) == pytest.approx([10.0, 10.0, 30.0, 10.0, 10.0, 30.0])
    assert base(True) == pytest.approx([30.0] * 6)


def _flattened_car_kw_at_t0(yesterday: bool) -> float:
    """A car that needs 7 kWh in 2 h, the last reading 20 kW, the forecast 20 kW for an hour then a 5 kW valley;
    flattening on. ``yesterday``: the feeder was measured a day before (20 kW, then 5 kW in the second hour)."""
    d = FeederDispatcher("f1", cfg(weights=PlannerWeights(flatten_per_kwh=0.05)))
    d.on_registration(reg("a", "site-a", cls="non_parallel"))
    d.on_telemetry(tel("a", T0, energy=7.0, dep_h=2.0))
    if yesterday:
        for k in range(1, 4 * 9 + 1):
            d.observe_load(T0 - DAY_MS + k * Q, 20.0 if k <= 4 else 5.0)
    d.observe_load(T0, 20.0)
    return sum(sp.setpoint_kw for sp in d.on_interval(T0, [20.0] * 4 + [5.0] * 36).setpoints)


def test_with_flattening_a_plan_defers_only_into_a_valley_that_yesterday_measured() -> None:
    # a forecast learnt without a day of history has no daily shape: its valley is not evidence, and deferring into
    # it put the sites day's cars on the afternoon's top (the load rose from 42 to 58 kW where the forecast said
    # flat); there the plan takes the last reading, so the car charges now (3.5 kW, flat over the 2 h) ...
    assert _flattened_car_kw_at_t0(yesterday=False) == pytest.approx(3.5, abs=1e-2)
    # ... and where the same valley was measured yesterday, the plan still waits for it
    assert _flattened_car_kw_at_t0(yesterday=True) == pytest.approx(0.0, abs=1e-2)
