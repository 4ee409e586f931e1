"""Stationary batteries dispatched by the same LP; backup mode removes and re-adds a charger."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streams.contracts.models import ChargerSetpoint
from streams.dispatch.dispatcher import FeederDispatcher
from streams.dispatch.planner import HOUR_MS

from .fleet import T0, Q, cfg, reg, signal, tel

CAP, P, SOC_MIN, SOC_MAX, RTE = 100.0, 25.0, 20.0, 90.0, 0.81


def _battery(d, soc=50.0, cls="parallel_exporting"):
    d.on_registration(reg("bat", "sub-1", cls=cls, bidir=True, export=P, kw=P, asset="stationary_battery",
                          battery_capacity_kwh=CAP, min_soc_pct=SOC_MIN, max_soc_pct=SOC_MAX,
                          round_trip_efficiency=RTE))
    d.on_telemetry(tel("bat", T0, soc=soc, bidir=True, kw=P, battery=True))


def test_battery_charges_cheap_discharges_dear_within_its_limits():
    d = FeederDispatcher("f1", cfg())
    _battery(d)
    d.on_signal(signal("cheap", T0, T0 + 4 * HOUR_MS, price=0.05))
    d.on_signal(signal("dear", T0 + 4 * HOUR_MS, T0 + 8 * HOUR_MS, price=0.60))
    res = d.on_interval(T0, base_load_kw=[60.0] * 16 + [100.0] * 16)  # the evening peak is dear too
    sched = res.plan.schedules["bat"]
    assert sched.max() <= P + 1e-6 and sched.min() >= -P - 1e-6
    assert sched[:16].sum() > 0 and sched[16:].sum() < 0  # charge while cheap, discharge while dear
    # the SoC the plan implies (one-way efficiency sqrt(RTE)) stays within the registered limits
    eta = math.sqrt(RTE)
    de = np.where(sched > 0, sched * eta, sched / eta) * (Q / HOUR_MS)
    soc = 50.0 + np.cumsum(de) / CAP * 100
    assert soc.min() >= SOC_MIN - 1e-6 and soc.max() <= SOC_MAX + 1e-6
    assert soc[-1] >= 50.0 - 1e-6  # ends the horizon no emptier than it started
    sp = next(sp for sp in res.setpoints if sp.charger_id == "bat")
    assert isinstance(sp, ChargerSetpoint) and 0 < sp.setpoint_kw <= P and sp.session_id is None


def test_battery_near_its_top_soc_is_clipped_by_safety():
    d = FeederDispatcher("f1", cfg())
    _battery(d, soc=SOC_MAX - 0.5)  # 0.5 kWh of room: at most 1 kW over the 30-min validity
    d.on_signal(signal("cheap", T0, T0 + 8 * HOUR_MS, price=-0.5))  # paid to consume: wants to charge
    res = d.on_interval(T0, base_load_kw=[100.0])
    sp = next(sp for sp in res.setpoints if sp.charger_id == "bat")
    assert 0.0 <= sp.setpoint_kw <= 0.5 / (d.config.setpoint_validity_ms / HOUR_MS) + 1e-6


def test_battery_is_not_offered_incentives_and_without_soc_stays_idle():
    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("bat", "sub-1", cls="parallel_exporting", bidir=True, export=P, kw=P,
                          asset="stationary_battery"))
    d.on_telemetry(tel("bat", T0, bidir=True, kw=P, battery=True))  # no SoC, no capacity
    d.on_signal(signal("cap", T0, T0 + 8 * HOUR_MS, imp=50.0))
    res = d.on_interval(T0, base_load_kw=[80.0])  # over the limit: the battery cannot be told to help blindly
    assert res.incentives == []
    assert all(sp.setpoint_kw == 0.0 for sp in res.setpoints)


def test_backup_mode_removes_and_re_adds_a_charger_and_records_the_episode():
    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("c1", "home"))
    d.on_telemetry(tel("c1", T0))
    first = d.on_interval(T0)
    assert "c1" in first.plan.schedules and first.setpoints
    assert first.flexibility and any(p.up_kw > 0 for p in first.flexibility[0].points)

    d.on_telemetry(tel("c1", T0 + Q, grid="islanded"))  # outage: the home runs off the car
    out = d.on_interval(T0 + Q)
    assert out.replanned and "c1" not in out.plan.schedules
    assert [sp for sp in out.setpoints if sp.charger_id == "c1"] == []  # no grid setpoint
    assert "c1" not in d.flexible_sessions(T0 + Q)
    assert all(p.up_kw == 0 and p.down_kw == 0 for p in out.flexibility[0].points)  # not counted as flexible
    assert [(e.charger_id, e.site_id, e.start_ms, e.end_ms) for e in out.backup_episodes] == \
        [("c1", "home", T0 + Q, None)]

    d.on_telemetry(tel("c1", T0 + 3 * Q, grid="islanded"))
    assert d.on_interval(T0 + 3 * Q).backup_episodes == []  # still the same episode
    d.on_telemetry(tel("c1", T0 + 4 * Q))  # grid back
    back = d.on_interval(T0 + 4 * Q)
    assert "c1" in back.plan.schedules and [sp.charger_id for sp in back.setpoints] == ["c1"]
    assert [(e.start_ms, e.end_ms) for e in back.backup_episodes] == [(T0 + Q, T0 + 4 * Q)]
    (ep,) = d.backup_episodes("c1")
    assert ep.duration_ms == 3 * Q and not ep.open


def test_islanded_telemetry_does_not_count_as_exported_energy():
    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("v", "home", cls="parallel_exporting", bidir=True, enrolled=True, export=7.0))
    d.on_telemetry(tel("v", T0, grid="islanded", power=-5.0, bidir=True, soc=80.0, cap=60.0))
    d.on_telemetry(tel("v", T0 + HOUR_MS, grid="islanded", power=-5.0, bidir=True, soc=70.0, cap=60.0))
    assert "v" not in d.exports
    assert d.backup_episodes("v")[0].open


@pytest.mark.parametrize("cls", ["parallel_non_exporting"])
def test_behind_the_meter_battery_without_a_site_meter_never_discharges(cls):
    d = FeederDispatcher("f1", cfg())
    _battery(d, soc=80.0, cls=cls)
    d.on_signal(signal("dear", T0, T0 + 8 * HOUR_MS, price=0.60))
    res = d.on_interval(T0, base_load_kw=[100.0])
    assert res.plan.schedules["bat"].min() >= -1e-9


def test_a_drained_battery_plans_its_recharge_to_its_target_within_the_horizon():
    """Each plan ends the horizon at least at the target SoC: the recharge is planned, not put off at each
    re-plan (a battery drained at noon stayed empty for the rest of the sites day before)."""
    d = FeederDispatcher("f1", cfg())
    _battery(d, soc=SOC_MIN)
    res = d.on_interval(T0, base_load_kw=[60.0] * 32)
    sched = res.plan.schedules["bat"]
    eta = math.sqrt(RTE)
    de = np.where(sched > 0, sched * eta, sched / eta) * (Q / HOUR_MS)
    end_pct = SOC_MIN + de.sum() / CAP * 100
    assert end_pct >= d.config.battery_target_soc_pct - 1e-3
