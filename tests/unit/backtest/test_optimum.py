"""The perfect-foresight optimum on hand-checked cases: charging alone, and V2G under the dispatcher's rules
(enrolment, per-charger export limit, per-site export limit, SoC reserve)."""

from __future__ import annotations

import numpy as np
import pytest

from streams.backtest.metrics import Grid
from streams.backtest.optimum import optimal_load
from streams.contracts.models import ChargerSetpoint, SchedulePoint, SiteRegistration
from streams.simulate.twin import ChargerTwin, TwinConfig, TwinFleet, TwinSession
from tests.unit.backtest.test_metrics import GRID, MIN, STEP, T0, H, reg, sess

BASE = np.where((np.arange(GRID.n) >= 6) & (np.arange(GRID.n) < 12), 20.0, 10.0)  # 20 kW from 0:30 to 1:00


def peak(load: np.ndarray) -> float:
    return float((BASE + load).max())


def v2g(sid: str, cid: str, soc: float = 80.0, cap: float = 20.0, arr: int = 0):
    return sess(sid, cid, arr=arr, kwh=0.0, bidirectional=True, capacity_kwh=cap, initial_soc_pct=soc)


def exporting(cid: str, export: float = 3.0, enrolled: bool = True, site: str = "s"):
    return reg(cid, bidir=True, icls="parallel_exporting", export=export, enrolled=enrolled).model_copy(
        update={"site_id": site})


def test_charging_only_spreads_the_energy() -> None:
    three = [sess("a", "c1", dep=4 * H // 2, kwh=6.6), sess("b", "c2", dep=H, kwh=6.6),
             sess("c", "c3", arr=H, dep=2 * H, kwh=6.6)]
    load, delivered = optimal_load(three, Grid(T0, STEP, 24))
    assert load.max() == pytest.approx(19.8 / 2, abs=1e-3)  # 19.8 kWh over two hours
    assert delivered == pytest.approx(19.8, abs=1e-3)


def test_v2g_per_charger_export_limit() -> None:
    regs = {"c1": exporting("c1", site="s1"), "c2": exporting("c2", site="s2")}
    load, _ = optimal_load([v2g("a", "c1"), v2g("b", "c2")], GRID, BASE, registrations=regs)
    assert peak(load) == pytest.approx(20.0 - 2 * 3.0, abs=1e-3)  # each charger exports at most 3 kW
    one_site = {"c1": exporting("c1"), "c2": exporting("c2")}
    load, _ = optimal_load([v2g("a", "c1"), v2g("b", "c2")], GRID, BASE, registrations=one_site)
    assert peak(load) == pytest.approx(20.0 - 3.0, abs=1e-3)  # one site: its chargers' strictest limit, 3 kW


def test_v2g_per_site_export_limit() -> None:
    regs = {"c1": exporting("c1", export=6.6), "c2": exporting("c2", export=6.6)}
    site = {"s": SiteRegistration(site_id="s", feeder_id="feeder-1", interconnection_class="parallel_exporting",
                                  export_limit_kw=4.0, registered_at=T0)}
    load, _ = optimal_load([v2g("a", "c1"), v2g("b", "c2")], GRID, BASE, registrations=regs, sites=site)
    assert peak(load) == pytest.approx(20.0 - 4.0, abs=1e-3)  # the site's net export is at most 4 kW
    assert load.min() >= -4.0 - 1e-6


def test_v2g_keeps_the_soc_reserve() -> None:
    regs = {"c1": exporting("c1", export=6.6)}
    car = v2g("a", "c1", soc=35.0, cap=10.0, arr=H // 2)  # plugged in when the peak starts
    load, _ = optimal_load([car], GRID, BASE, registrations=regs, reserve_soc_pct=30.0)
    soc = 3.5 + np.cumsum(load) * STEP / H
    assert soc.min() == pytest.approx(3.0, abs=1e-3)  # 35 % -> 30 % of 10 kWh, no lower
    assert peak(load) == pytest.approx(20.0 - 1.0, abs=1e-3)  # 0.5 kWh over the half hour of the peak


def test_no_v2g_without_enrolment_or_export_rights() -> None:
    for regs in ({"c1": exporting("c1", enrolled=False)}, {"c1": reg("c1", bidir=True, icls="non_parallel")},
                 {}):
        load, _ = optimal_load([v2g("a", "c1")], GRID, BASE, registrations=regs)
        assert peak(load) == pytest.approx(20.0, abs=1e-3) and load.min() >= -1e-6


def _twin_delivers(car, load: np.ndarray, cfg: TwinConfig) -> float:
    """What a charger twin delivers when commanded the optimum's step powers (one setpoint, its schedule)."""
    steps = [(T0 + i * STEP, float(kw)) for i, kw in enumerate(load)]
    cmd = ChargerSetpoint(charger_id=car.station_id, feeder_id="feeder-1", sequence=1, setpoint_kw=steps[0][1],
                          valid_from=T0, valid_until=T0 + STEP, fallback_kw=0.0, reason="optimal", plan_id="p",
                          issued_at=T0, schedule=[SchedulePoint(start=a, kw=b) for a, b in steps])
    tw = ChargerTwin(car.station_id, "feeder-1", [TwinSession(car.session_id, car.station_id, car.arrival,
                                                              car.departure, car.departure, car.requested_energy_kwh,
                                                              car.max_power_kw, 0.0, car.capacity_kwh,
                                                              car.initial_soc_pct)], cfg, start_ms=T0)
    fleet = TwinFleet({tw.charger_id: tw})
    fleet.step(T0)
    fleet.deliver([cmd], T0)
    while (t := fleet.next_time()) is not None:
        fleet.step(t)
    (res,) = fleet.finish()
    return res.delivered_kwh


def test_with_the_twins_physics_the_optimum_claims_only_what_a_twin_can_take() -> None:
    # 20 kWh battery at 70 %, 5 kWh asked in 50 minutes at 6.6 kW: above 80 % SoC the car tapers its charging
    car = sess("a", "c1", dep=50 * MIN, kwh=5.0, capacity_kwh=20.0, initial_soc_pct=70.0)
    cfg = TwinConfig(default_fallback_kw=0.0)
    ideal, ideal_kwh = optimal_load([car], GRID)
    assert ideal_kwh == pytest.approx(5.0, abs=1e-6) and _twin_delivers(car, ideal, cfg) < 4.8  # unattainable
    load, delivered = optimal_load([car], GRID, physics=cfg)
    assert delivered < 4.8  # the taper binds
    # and the twin does take it (the LP tapers on each step's starting SoC, a little above the twin's taper)
    assert _twin_delivers(car, load, cfg) == pytest.approx(delivered, rel=0.03)
    soc = 14.0 + np.cumsum(load) * cfg.charge_efficiency * STEP / H
    assert soc.max() <= 20.0 + 1e-6
