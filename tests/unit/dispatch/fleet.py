"""Builders of small fleets for the site / storage / VPP tests."""

from __future__ import annotations

from streams.contracts.models import ChargerRegistration, ChargerTelemetry, GridSignal, MeterReading
from streams.dispatch.dispatcher import DispatchConfig
from streams.dispatch.plan import PlannerWeights
from streams.dispatch.planner import HOUR_MS

T0 = 1_700_000_000_000 // HOUR_MS * HOUR_MS
Q = 15 * 60_000
PLAIN = {"setpoint_lag_ms": 0, "ramp_hold": False, "base_period_max": False, "charge_taper_soc_pct": None,
         "weights": PlannerWeights(flatten_per_kwh=0.0)}
"""The plain planner of hand-checked plans (the product's defaults turn the refinements on)."""


def cfg(**kw) -> DispatchConfig:
    """Hand-checked plans over whole windows: no setpoint lag unless asked (test_dispatcher tests the lag), and none of
    the planning refinements (flattening, ramp hold, saw-tooth top, taper) unless asked."""
    return DispatchConfig(step_ms=Q, fine_ms=None, coarse_step_ms=None, horizon_ms=8 * HOUR_MS,
                          forecast_arrivals=False, **{**PLAIN, **kw})


def reg(cid, site, cls="parallel_non_exporting", enrolled=False, bidir=False, export=0.0, kw=7.0,
        site_limit=None, asset="ev_charger", **extra) -> ChargerRegistration:
    return ChargerRegistration(charger_id=cid, feeder_id="f1", site_id=site, customer_id="u-" + cid,
                               bidirectional=bidir, inverter_location="offboard", interconnection_class=cls,
                               export_limit_kw=export, v2g_enrolled=enrolled, max_charge_kw=kw,
                               max_discharge_kw=kw if bidir else 0.0, site_import_limit_kw=site_limit,
                               asset_type=asset, registered_at=T0, **extra)


def tel(cid, t, energy=10.0, dep_h=8.0, soc=None, cap=None, bidir=False, kw=7.0, power=0.0, connected=True,
        grid="grid_connected", battery=False, target=None, dep_ms=None) -> ChargerTelemetry:
    return ChargerTelemetry(charger_id=cid, feeder_id="f1", timestamp=t, connected=connected,
                            session_id=None if battery or not connected else "s-" + cid, power_kw=power,
                            max_charge_kw=kw, max_discharge_kw=kw if bidir else 0.0,
                            departure_time=None if battery else dep_ms or T0 + int(dep_h * HOUR_MS),
                            requested_energy_kwh=None if battery or target is not None else energy,
                            target_soc_pct=target,
                            energy_delivered_kwh=None if battery else 0.0, soc_pct=soc, battery_capacity_kwh=cap,
                            grid_state=grid)


def meter(site, t, kw) -> MeterReading:
    return MeterReading(meter_id="m-" + site, feeder_id="f1", site_id=site, timestamp=t, active_power_kw=kw)


MONTH0 = 1_701_388_800_000  # 2023-12-01T00:00Z: a new billing month


def signal(sid, start, end, site=None, imp=None, exp=None, price=None, demand=None) -> GridSignal:
    return GridSignal(signal_id=sid, feeder_id="f1", site_id=site, issued_at=T0 - 1, valid_from=start,
                      valid_until=end, import_limit_kw=imp, export_limit_kw=exp, price_per_kwh=price,
                      demand_charge_per_kw=demand)
