"""Rules of the safety envelope that the planner never tests (it plans within them): planned values that break
them are clipped. Each case was a mutant of streams/dispatch/safety.py that survived the suite."""

from __future__ import annotations

import pytest

from streams.dispatch.safety import SafetyRules, safe_setpoint
from streams.dispatch.state import charger_from_registration, session_from_telemetry

from .fleet import T0, reg, tel

RULES = SafetyRules()  # reserve 30 %


def envelope(planned: float, charger, telemetry, export_allowed: bool = False) -> float:  # type: ignore[no-untyped-def]
    session = session_from_telemetry(None, telemetry)
    out = safe_setpoint(planned, charger_from_registration(charger), session, T0, 3600.0, RULES,
                        export_allowed=export_allowed)
    assert out.send
    return out.kw


def v2g(enrolled: bool = True):  # type: ignore[no-untyped-def]
    return reg("c", "A", cls="parallel_exporting", enrolled=enrolled, bidir=True, export=5.0)


def car(soc: float = 50.0, cap: float | None = 60.0, **update):  # type: ignore[no-untyped-def]
    return tel("c", T0, soc=soc, cap=cap, bidir=True).model_copy(update=update)


def test_a_bidirectional_charger_discharges_only_with_consent() -> None:
    assert envelope(-5.0, v2g(enrolled=False), car()) == 0.0
    assert envelope(-5.0, v2g(enrolled=False), car(), export_allowed=True) == -5.0  # an accepted export offer
    assert envelope(-5.0, v2g(enrolled=True), car()) == -5.0
    assert envelope(-9.0, v2g(), car()) == -5.0  # the approved export limit


def test_the_drivers_own_reserve_bounds_discharge() -> None:
    assert envelope(-5.0, v2g(), car(reserve_soc_pct=45.0)) == pytest.approx(-3.0)  # 5 % of 60 kWh in 1 h
    assert envelope(-5.0, v2g(), car(reserve_soc_pct=55.0)) == 0.0  # below the driver's reserve already
    assert envelope(-5.0, v2g(), car(soc=32.0)) == pytest.approx(-1.2)  # the default 30 %: 2 % of 60 kWh


def test_no_discharge_without_a_known_capacity() -> None:
    assert envelope(-5.0, v2g(), car(cap=None)) == 0.0


def test_the_cars_reported_rating_bounds_charging() -> None:
    assert envelope(7.0, v2g(), car(max_charge_kw=3.7)) == pytest.approx(3.7)
    assert envelope(7.0, v2g(), car(max_charge_kw=0.0)) == 0.0  # a car that takes no power now
