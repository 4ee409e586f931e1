"""The perfect-foresight optimum on hand-checked cases: charging alone, and V2G under the dispatcher's rules
(enrolment, per-charger export limit, per-site export limit, SoC reserve)."""

from __future__ import annotations

import numpy as np
import pytest

from streams.backtest.metrics import Grid
from streams.backtest.optimum import optimal_load
from streams.contracts.models import SiteRegistration
from tests.unit.backtest.test_metrics import GRID, STEP, T0, H, reg, sess

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
