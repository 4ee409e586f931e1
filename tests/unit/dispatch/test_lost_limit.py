"""A feeder import limit the base load alone breaks (issue 15, item 5): drivers are not starved for it."""

from __future__ import annotations

import pytest

from streams.contracts.models import ChargerSetpoint
from streams.dispatch.dispatcher import FeederDispatcher
from tests.unit.dispatch.fleet import HOUR_MS, T0, cfg, reg, signal, tel


def _three_cars(base_kw: float) -> list[ChargerSetpoint]:
    d = FeederDispatcher("f1", cfg())
    for cid in ("a", "b", "c"):
        d.on_registration(reg(cid, "site-" + cid, cls="non_parallel"))
        d.on_telemetry(tel(cid, T0, energy=14.0, dep_h=2.0))  # 7 kW for the whole stay to be full
    d.on_signal(signal("cap", T0, T0 + 8 * HOUR_MS, imp=20.0))
    return d.on_interval(T0, [base_kw] * 40).setpoints


def test_a_lost_limit_does_not_cut_charging_to_zero() -> None:
    # 25 kW of base load against a 20 kW limit: cutting the cars would not hold it; they charge at full power
    sps = _three_cars(25.0)
    assert sum(sp.setpoint_kw for sp in sps) == pytest.approx(21.0, abs=1e-2)
    assert all("import limit lost" in (sp.message or "") for sp in sps)  # the setpoints say so


def test_a_held_limit_still_cuts_charging() -> None:
    # 8 kW of base load: 12 kW of room under the limit, shared by the three cars
    sps = _three_cars(8.0)
    assert sum(sp.setpoint_kw for sp in sps) == pytest.approx(12.0, abs=1e-2)
    assert not any("import limit lost" in (sp.message or "") for sp in sps)


def test_a_plan_does_not_count_on_the_load_falling_below_the_last_measurement() -> None:
    # the forecast says 5 kW, the interval just measured 18 kW: under a 20 kW limit the car gets 2 kW, not 7
    def car_kw(measured: float | None) -> float:
        d = FeederDispatcher("f1", cfg())
        d.on_registration(reg("a", "site-a", cls="non_parallel"))
        d.on_telemetry(tel("a", T0, energy=14.0, dep_h=2.0))
        d.on_signal(signal("cap", T0, T0 + 8 * HOUR_MS, imp=20.0))
        if measured is not None:
            d.observe_load(T0, measured)
        return sum(sp.setpoint_kw for sp in d.on_interval(T0, [5.0] * 40).setpoints)

    assert car_kw(None) == pytest.approx(7.0, abs=1e-2)
    assert car_kw(18.0) == pytest.approx(2.0, abs=1e-2)
    assert car_kw(3.0) == pytest.approx(7.0, abs=1e-2)  # a lower measurement does not lower the forecast
