"""Rules of the safety envelope that the planner never tests (it plans within them): planned values that break
them are clipped. Each case was a mutant of streams/dispatch/safety.py that survived the suite."""

from __future__ import annotations

from dataclasses import replace

import pytest

from streams.dispatch.safety import SafeSetpoint, SafetyRules, safe_setpoint
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


def battery(**extra):  # type: ignore[no-untyped-def]
    return reg("b", "A", cls="parallel_exporting", bidir=True, export=25.0, kw=25.0, asset="stationary_battery",
               battery_capacity_kwh=100.0, min_soc_pct=20.0, max_soc_pct=90.0, **extra)


def test_a_battery_stays_within_its_registered_soc_band() -> None:
    at = lambda soc: tel("b", T0, soc=soc, bidir=True, kw=25.0, battery=True)  # noqa: E731 (capacity registered)
    assert envelope(25.0, battery(), at(89.5)) == pytest.approx(0.5)  # 0.5 kWh of room below 90 % in 1 h
    assert envelope(25.0, battery(), at(90.0)) == 0.0
    assert envelope(-25.0, battery(), at(21.0)) == pytest.approx(-1.0)  # 1 kWh above its 20 % floor
    assert envelope(-25.0, battery(), at(60.0).model_copy(update={"reserve_soc_pct": 59.0})) == pytest.approx(-1.0)
    assert envelope(25.0, battery(), tel("b", T0, bidir=True, kw=25.0, battery=True)) == 0.0  # SoC unknown


def test_what_is_not_dispatched_says_why() -> None:
    charger, session = charger_from_registration(v2g()), session_from_telemetry(None, car())
    out = lambda c, s, now=T0: safe_setpoint(7.0, c, s, now, 3600.0, RULES)  # noqa: E731
    assert out(None, session) == SafeSetpoint(send=False, reason="unknown_charger")
    backup = session_from_telemetry(None, car(grid_state="islanded"))
    assert out(charger, backup) == SafeSetpoint(send=False, reason="backup_mode")
    unplugged = session_from_telemetry(None, car(connected=False))
    assert out(charger, unplugged) == SafeSetpoint(send=True, kw=0.0, reason="unplugged", flexible=False)
    stale = out(charger, session, now=T0 + 901_000)
    assert stale == SafeSetpoint(send=True, kw=0.0, reason="stale_telemetry", flexible=False)
    assert out(charger, session) == SafeSetpoint(send=True, kw=7.0, reason="optimal", flexible=True)


def test_half_hour_validity_and_what_the_car_reports_bound_the_value() -> None:
    charger = charger_from_registration(battery())
    s = session_from_telemetry(None, tel("b", T0, soc=89.5, bidir=True, kw=25.0, battery=True))
    assert safe_setpoint(25.0, charger, s, T0, 1800.0, RULES).kw == pytest.approx(1.0)  # 0.5 kWh in 30 min
    assert envelope(-5.0, v2g(), car(max_discharge_kw=2.0)) == pytest.approx(-2.0)
    ev, stale_now = charger_from_registration(v2g()), T0 + 901_000
    fallback = SafetyRules(fallback_kw=11.0)  # a stale car gets the fallback, within what it reported
    got = safe_setpoint(7.0, ev, session_from_telemetry(None, car(max_charge_kw=3.7)), stale_now, 3600.0, fallback)
    assert got.kw == pytest.approx(3.7) and got.reason == "stale_telemetry"


@pytest.mark.parametrize(("planned", "kw", "reason"), [(None, 0.0, "optimal"), (float("nan"), 0.0, "clipped_by_safety"),
                                                       (float("inf"), 0.0, "clipped_by_safety")])
def test_no_plan_or_a_non_finite_plan_is_zero(planned: float | None, kw: float, reason: str) -> None:
    out = safe_setpoint(planned, charger_from_registration(v2g()), session_from_telemetry(None, car()), T0, 3600.0,
                        RULES)
    assert (out.kw, out.reason) == (kw, reason)


def test_without_an_accepted_offer_an_unenrolled_driver_never_discharges() -> None:
    """Consent is V2G enrolment or an accepted export offer; a caller that says nothing about offers has none."""
    from streams.dispatch.safety import discharge_limit_kw

    info = charger_from_registration(v2g(enrolled=False))
    session = session_from_telemetry(None, car())
    assert discharge_limit_kw(info, session) == 0.0
    out = safe_setpoint(-5.0, info, session, T0, 3600.0, RULES)
    assert out.send and out.kw == 0.0 and out.reason == "clipped_by_safety"


def test_behind_the_meter_discharge_only_on_a_non_exporting_site_and_only_up_to_its_own_load() -> None:
    """``parallel_non_exporting`` (V2H / V2B): discharge up to the site's uncovered own load (unknown: none);
    ``non_parallel``: no discharge whatever the load."""
    session = session_from_telemetry(None, car(soc=80.0))

    def out(cls: str, headroom: float | None) -> float:
        info = charger_from_registration(reg("c", "H", cls=cls, enrolled=True, bidir=True))
        return safe_setpoint(-7.0, info, session, T0, 900.0, RULES, site_headroom_kw=headroom).kw

    assert out("parallel_non_exporting", 3.0) == pytest.approx(-3.0)
    assert out("parallel_non_exporting", None) == 0.0
    assert out("non_parallel", 3.0) == 0.0


def test_the_capacity_is_the_reported_one_else_the_registered_one_and_never_zero() -> None:
    """Battery capacity: what telemetry reports (even a small one), else what the registration says; a capacity
    of 0 or not a number is unknown."""
    from streams.dispatch.safety import capacity_kwh

    battery = charger_from_registration(reg("b", "H", bidir=True, asset="stationary_battery",
                                            battery_capacity_kwh=10.0))
    plain = charger_from_registration(reg("c", "H", bidir=True))

    def session(cap: float | None):  # type: ignore[no-untyped-def]
        return replace(session_from_telemetry(None, car()), capacity_kwh=cap)

    assert capacity_kwh(battery, session(60.0)) == 60.0  # reported wins
    assert capacity_kwh(battery, session(float("nan"))) == 10.0
    assert capacity_kwh(battery, session(None)) == 10.0
    assert capacity_kwh(plain, session(0.5)) == 0.5  # a small battery is still one
    assert capacity_kwh(plain, session(0.0)) is None
    assert capacity_kwh(plain, session(None)) is None


def test_an_unplugged_car_gets_nothing_even_when_its_telemetry_is_stale() -> None:
    """Stale telemetry → the safe fallback, except that a car known to be unplugged gets 0 kW."""
    stale = session_from_telemetry(None, car().model_copy(update={"connected": False, "session_id": None}))
    rules = SafetyRules(fallback_kw=3.0)
    out = safe_setpoint(5.0, charger_from_registration(v2g()), stale, T0 + 10 * 3_600_000, 900.0, rules)
    assert out.send and out.kw == 0.0 and out.reason == "stale_telemetry"


def test_a_full_battery_never_charges_whatever_its_rating() -> None:
    """A stationary battery never charges above its max SoC (default 100 %), however small its charger."""
    for kw, max_soc, soc in ((0.5, 90.0, 90.0), (7.0, None, 100.0)):
        battery = reg("b", "H", bidir=True, asset="stationary_battery", battery_capacity_kwh=10.0, kw=kw,
                      max_soc_pct=max_soc)
        assert envelope(kw, battery, tel("b", T0, soc=soc, cap=10.0, bidir=True, kw=kw, battery=True)) == 0.0


def test_the_reserve_bounds_discharge_over_the_setpoints_validity_down_to_one_second() -> None:
    """0.001 % of 60 kWh above the reserve (0.6 Wh) lets 2.16 kW out for one second, and no validity is taken as
    shorter than a second (0 s would allow any power); a mutant of the one-second floor survived the suite."""
    charger, session = charger_from_registration(v2g()), session_from_telemetry(None, car(soc=30.001))
    for seconds, kw in ((1.0, -2.16), (0.5, -2.16), (0.0, -2.16), (2.0, -1.08), (4.0, -0.54)):
        out = safe_setpoint(-5.0, charger, session, T0, seconds, RULES)
        assert out.kw == pytest.approx(kw, rel=1e-6), (seconds, out)


def test_a_clip_says_so_beyond_a_milliwatt_of_float_noise() -> None:
    """The reason names the clip once the value moves more than 1e-6 kW (two mutants of that bound survived)."""
    charger, session = charger_from_registration(v2g()), session_from_telemetry(None, car(max_charge_kw=0.0))
    for planned, reason in ((1e-6, "optimal"), (1.5e-6, "clipped_by_safety"), (3e-6, "clipped_by_safety")):
        out = safe_setpoint(planned, charger, session, T0, 3600.0, RULES)
        assert (out.kw, out.reason) == (0.0, reason), planned
