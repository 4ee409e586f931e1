"""FeederDispatcher end to end on small hand-checked fleets."""

from __future__ import annotations

import pickle
from dataclasses import fields
from typing import Any

import numpy as np
import pytest

from streams.contracts.models import (
    ChargerRegistration,
    ChargerTelemetry,
    GridSignal,
    IncentiveResponse,
    MeterReading,
)
from streams.dispatch.config import DispatchConfig
from streams.dispatch.dispatcher import FeederDispatcher
from streams.dispatch.plan import PlannerWeights
from streams.dispatch.planner import HOUR_MS
from tests.unit.dispatch.fleet import cfg

T0 = 1_700_000_000_000 // HOUR_MS * HOUR_MS
Q = 15 * 60_000


def reg(cid, cls="parallel_non_exporting", enrolled=False, bidir=False, export=0.0, kw=7.0):
    return ChargerRegistration(charger_id=cid, feeder_id="f1", site_id="s-" + cid, customer_id="u-" + cid,
                               bidirectional=bidir, inverter_location="offboard", interconnection_class=cls,
                               export_limit_kw=export, v2g_enrolled=enrolled, max_charge_kw=kw,
                               max_discharge_kw=kw if bidir else 0.0, registered_at=T0)


def tel(cid, t, connected=True, energy=10.0, dep_h=4.0, delivered=0.0, power=0.0, soc=None, cap=None,
        grid="grid_connected", bidir=False):
    return ChargerTelemetry(charger_id=cid, feeder_id="f1", timestamp=t, connected=connected,
                            session_id="s-" + cid if connected else None, power_kw=power, max_charge_kw=7.0,
                            max_discharge_kw=7.0 if bidir else 0.0, departure_time=T0 + int(dep_h * HOUR_MS),
                            requested_energy_kwh=energy, energy_delivered_kwh=delivered, soc_pct=soc,
                            battery_capacity_kwh=cap, grid_state=grid)


def test_one_car_gets_a_flat_optimal_setpoint_and_a_schedule():
    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("c1"))
    d.on_telemetry(tel("c1", T0))
    res = d.on_interval(T0)
    assert len(res.setpoints) == 1
    sp = res.setpoints[0]
    assert sp.reason == "optimal" and sp.setpoint_kw == pytest.approx(2.5, abs=1e-3)
    assert sp.sequence == 1 and sp.valid_until > sp.valid_from and sp.schedule[0].start == T0
    assert sp.plan_id == res.plan.plan_id


def test_emit_on_change_or_refresh_not_every_interval():
    d = FeederDispatcher("f1", cfg(setpoint_refresh_ms=2 * Q, replan_ms=Q))
    d.on_registration(reg("c1"))
    d.on_telemetry(tel("c1", T0))
    assert len(d.on_interval(T0).setpoints) == 1
    d.on_telemetry(tel("c1", T0 + Q, delivered=2.5 * 0.25))
    assert d.on_interval(T0 + Q).setpoints == []  # same power, not yet refreshed
    d.on_telemetry(tel("c1", T0 + 2 * Q, delivered=2.5 * 0.5))
    again = d.on_interval(T0 + 2 * Q).setpoints
    assert len(again) == 1 and again[0].sequence == 2


def test_unknown_charger_gets_nothing_and_islanded_gets_nothing():
    d = FeederDispatcher("f1", cfg())
    d.on_telemetry(tel("ghost", T0))
    d.on_registration(reg("home"))
    d.on_telemetry(tel("home", T0, grid="islanded"))
    assert d.on_interval(T0).setpoints == []


def test_stale_telemetry_gets_the_fallback_and_leaves_the_plan():
    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("c1"))
    d.on_registration(reg("c2"))
    d.on_telemetry(tel("c1", T0))
    d.on_telemetry(tel("c2", T0 - 2 * HOUR_MS))  # last heard 2 h ago
    res = d.on_interval(T0)
    by = {sp.charger_id: sp for sp in res.setpoints}
    assert by["c2"].reason == "stale_telemetry" and by["c2"].setpoint_kw == 0.0
    assert "c2" not in res.plan.schedules and by["c1"].reason == "optimal"


def test_infeasible_request_is_flagged_in_the_setpoint():
    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("c1"))
    d.on_telemetry(tel("c1", T0, energy=30.0, dep_h=2.0))
    sp = d.on_interval(T0).setpoints[0]
    assert sp.reason == "infeasible_request" and sp.setpoint_kw == pytest.approx(7.0)
    assert "16.00 kWh" in (sp.message or "")


def test_v2g_peak_event_enrolled_exporter_discharges_non_exporting_does_not():
    d = FeederDispatcher("f1", cfg(default_export_limit_kw=50.0))
    d.on_registration(reg("v", cls="parallel_exporting", enrolled=True, bidir=True, export=5.0))
    d.on_registration(reg("n", cls="parallel_non_exporting", enrolled=True, bidir=True, export=5.0))
    for cid in ("v", "n"):
        d.on_telemetry(tel(cid, T0, energy=0.0, soc=80.0, cap=60.0, bidir=True))
    base = [10.0] * 32
    base[0] = 30.0
    res = d.on_interval(T0, base_load_kw=base)
    by = {sp.charger_id: sp for sp in res.setpoints}
    assert by["v"].setpoint_kw == pytest.approx(-5.0)  # export limit 5 kW
    assert by["n"].setpoint_kw >= 0.0


def test_price_signal_and_import_limit_shape_the_plan_and_trigger_offers():
    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("c1"))
    d.on_registration(reg("c2"))
    d.on_telemetry(tel("c1", T0, energy=7.0, dep_h=1.0))
    d.on_telemetry(tel("c2", T0, energy=7.0, dep_h=1.0))
    d.on_signal(GridSignal(signal_id="lim", feeder_id="f1", issued_at=T0, valid_from=T0, valid_until=T0 + HOUR_MS,
                           import_limit_kw=10.0))
    res = d.on_interval(T0)
    assert res.plan.limit_violation_kwh == 0.0  # the limit holds; requests are cut instead
    assert sum(sp.setpoint_kw for sp in res.setpoints) <= 10.0 + 1e-6
    assert "infeasible_request" in {sp.reason for sp in res.setpoints}


def test_offers_when_base_load_exceeds_the_limit_and_accepted_delay_changes_the_plan():
    d = FeederDispatcher("f1", cfg())
    for cid in ("c1", "c2"):
        d.on_registration(reg(cid))
        d.on_telemetry(tel(cid, T0, energy=3.0, dep_h=1.0))
    d.on_signal(GridSignal(signal_id="lim", feeder_id="f1", issued_at=T0, valid_from=T0, valid_until=T0 + HOUR_MS,
                           import_limit_kw=20.0))
    base = [18.0] * 4 + [5.0] * 28  # the cars must charge in the first hour: 18 + 6 kW > 20 kW
    res = d.on_interval(T0, base_load_kw=base)
    assert res.incentives, "the plan exceeds the limit: offers expected"
    offer = res.incentives[0]
    assert offer.window_start == T0 and offer.window_end == T0 + HOUR_MS and offer.compensation > 0
    assert offer.action == "delay_charging" and offer.expected_kwh == pytest.approx(3.0, abs=1e-3)
    d.on_incentive_response(IncentiveResponse(offer_id=offer.offer_id, feeder_id="f1", customer_id=offer.customer_id,
                                              accepted=True, responded_at=T0 + 60_000))
    res2 = d.on_interval(T0 + Q, base_load_kw=base[1:])
    sched = res2.plan.schedules[offer.charger_id]
    assert sched[:3].max() == 0.0  # accepted delay: no charging in the window


def _site_meter(t, kw):
    return MeterReading(meter_id="m", feeder_id="f1", site_id="s-v", timestamp=t, active_power_kw=kw)


def test_export_is_settled_when_the_car_leaves_as_its_site_meter_measured():
    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("v", cls="parallel_exporting", enrolled=True, bidir=True, export=7.0))
    d.on_site_meter(_site_meter(T0, 0.5))  # readings: the average over the period ending at their time
    d.on_telemetry(tel("v", T0, power=-6.0, soc=80.0, cap=60.0, bidir=True))
    d.on_site_meter(_site_meter(T0 + HOUR_MS // 4, -5.0))  # the home used 1 kW of the 6: 5 kW at the meter
    d.on_site_meter(_site_meter(T0 + HOUR_MS // 2, -5.0))
    d.on_telemetry(tel("v", T0 + HOUR_MS // 2, power=0.0, soc=75.0, cap=60.0, bidir=True))
    d.on_telemetry(tel("v", T0 + HOUR_MS, connected=False))
    res = d.on_interval(T0 + HOUR_MS)
    assert len(res.settlements) == 1
    st = res.settlements[0]
    assert st.export_basis == "site_meter"
    assert st.exported_kwh == pytest.approx(2.5) and st.amount == pytest.approx(2.5 * 0.20)


def test_discharge_nobody_commanded_or_metered_is_not_paid_and_behind_the_meter_is_apart():
    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("v", cls="parallel_exporting", enrolled=True, bidir=True, export=7.0))
    d.on_registration(reg("h", cls="parallel_non_exporting", enrolled=True, bidir=True))
    for cid in ("v", "h"):
        d.on_telemetry(tel(cid, T0, power=-6.0, soc=80.0, cap=60.0, bidir=True))
        d.on_telemetry(tel(cid, T0 + HOUR_MS // 2, power=0.0, soc=75.0, cap=60.0, bidir=True))
        d.on_telemetry(tel(cid, T0 + HOUR_MS, connected=False))
    res = d.on_interval(T0 + HOUR_MS)
    by = {st.charger_id: st for st in res.settlements}
    assert by["v"].exported_kwh == 0.0 and by["v"].export_basis == "commanded"  # no setpoint asked for it
    assert by["h"].exported_kwh == 0.0 and by["h"].amount == 0.0 and by["h"].self_consumed_kwh == pytest.approx(3.0)


def test_dispatcher_pickles_round_trip():
    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("c1"))
    d.on_telemetry(tel("c1", T0))
    d.on_interval(T0)
    d2 = pickle.loads(pickle.dumps(d))
    a = d.on_interval(T0 + 2 * Q)
    b = d2.on_interval(T0 + 2 * Q)
    assert [s.model_dump() for s in a.setpoints] == [s.model_dump() for s in b.setpoints]


def test_the_solver_iteration_limit_of_the_config_reaches_highs():
    def run(limit):
        d = FeederDispatcher("f1", cfg(solver_iteration_limit=limit))
        for i in range(6):
            d.on_registration(reg(f"c{i}"))
            d.on_telemetry(tel(f"c{i}", T0, energy=6.0 + i, dep_h=2.0 + i))
        return d, d.on_interval(T0)

    d, res = run(50_000)
    assert res.plan.solver == "highs" and d.n_fallbacks == 0
    d, res = run(1)
    assert res.plan.solver == "llf" and res.plan.solver_failure == "iteration_limit" and d.n_fallbacks == 1
    assert d.n_solver_time_limits == 0 and res.setpoints
    assert {sp.reason for sp in res.setpoints} == {"fallback_heuristic"}


def test_a_car_is_planned_full_a_setpoint_lag_before_it_leaves():
    # a setpoint reaches its charger about setpoint_lag_ms into its step, the step before's power running on until
    # then: the last rise of power before departure would come late, so the energy is planned in that much earlier
    for lag_ms, last_kw in ((0, 3.5), (Q, 0.0)):
        d = FeederDispatcher("f1", cfg(setpoint_lag_ms=lag_ms))
        d.on_registration(reg("c1"))
        d.on_telemetry(tel("c1", T0, energy=7.0, dep_h=2.0))
        plan = d.on_interval(T0).plan
        sched = plan.schedules["c1"]
        assert float(sum(sched * Q / HOUR_MS)) == pytest.approx(7.0, abs=1e-6)
        assert plan.power_at("c1", T0 + 2 * HOUR_MS - Q) == pytest.approx(last_kw, abs=1e-6)
        assert plan.power_at("c1", T0) == pytest.approx(7.0 / (2.0 - lag_ms / HOUR_MS), abs=1e-6)


def _with_bound(config: DispatchConfig) -> tuple[FeederDispatcher, bool]:
    """A dispatcher with one car, after an interval whose forecast is 10 kW with an upper bound of 14 kW; whether it
    re-planned."""
    d = FeederDispatcher("f1", config)
    d.on_registration(reg("c1"))
    d.on_telemetry(tel("c1", T0))
    res = d.on_interval(T0, base_load_kw=[10.0] * 32, base_start_ms=T0, base_step_ms=Q, base_upper_kw=[14.0] * 32)
    return d, res.replanned


def _without(obj: Any, name: str) -> Any:
    """``obj`` as the state codec rebuilds one written before the field ``name`` existed: attribute by attribute."""
    old = object.__new__(type(obj))
    for f in fields(obj):
        if f.name != name:
            object.__setattr__(old, f.name, getattr(obj, f.name))
    return old


def test_the_forecasts_upper_bound_reaches_the_near_term_peak_for_its_window_only():
    d, replanned = _with_bound(cfg(near_peak_upper_ms=Q))
    assert replanned
    near = d.plan_request.near_base_kw
    edges = d.plan_request.edges_ms
    assert len(near) == len(edges) - 1
    assert [kw for e, kw in zip(edges, near, strict=False) if e < T0 + Q] == pytest.approx([14.0] * 1)
    assert all(kw == pytest.approx(10.0) for e, kw in zip(edges, near, strict=False) if e >= T0 + Q)
    assert d.plan_request.base_kw == pytest.approx([10.0] * len(near))  # the horizon keeps the point forecast
    off, _ = _with_bound(cfg())  # 0: never
    assert off.plan_request.near_base_kw == ()


def test_a_config_restored_from_a_checkpoint_before_the_upper_bound_is_replaced_by_the_current_one():
    new = cfg(near_peak_upper_ms=Q, weights=PlannerWeights(upper_peak_per_kw=10.0))
    d = FeederDispatcher("f1", _without(cfg(weights=_without(new.weights, "upper_peak_per_kw")), "near_peak_upper_ms"))
    assert "near_peak_upper_ms" in d.reconfigure(new) and d.config is new
    d.on_registration(reg("c1"))
    d.on_telemetry(tel("c1", T0))
    d.on_interval(T0, base_load_kw=[10.0] * 32, base_start_ms=T0, base_step_ms=Q, base_upper_kw=[14.0] * 32)
    assert d.plan_request.near_base_kw[0] == 14.0 and min(d.plan_request.upper_base_kw) >= 14.0


def test_reconfigure_applies_the_new_settings_and_keeps_the_signals_and_what_was_learnt():
    d = FeederDispatcher("f1", cfg(default_import_limit_kw=100.0))
    d.on_registration(reg("c1"))
    d.on_telemetry(tel("c1", T0))
    d.on_signal(GridSignal(signal_id="lim", feeder_id="f1", issued_at=T0, valid_from=T0, valid_until=T0 + HOUR_MS,
                           import_limit_kw=10.0))
    d.on_interval(T0)
    d.forecaster.observe("c0", T0 - 24 * HOUR_MS, T0 - 20 * HOUR_MS, 12.0, 7.0)
    learnt = d.forecaster
    new = cfg(default_import_limit_kw=50.0, weights=PlannerWeights(flatten_per_kwh=0.0, peak_per_kw=7.0))
    assert sorted(d.reconfigure(new)) == ["default_import_limit_kw", "weights"]
    assert d.config is new and d.dirty and d.forecaster is learnt
    imp, _, _ = d.limits.profile(np.array([T0, T0 + HOUR_MS, T0 + 2 * HOUR_MS]))
    assert imp.tolist() == [10.0, 50.0], "the signal holds over the new default"
    assert d.on_interval(T0 + 60_000).replanned, "the next interval plans on the new settings"
    assert d.reconfigure(new) == []
    d.reconfigure(cfg(default_import_limit_kw=50.0, timezone="America/Los_Angeles"))
    assert d.forecaster is not learnt and d.forecaster.timezone == "America/Los_Angeles", \
        "arrivals learnt on another calendar start afresh"
