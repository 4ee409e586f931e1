"""The station side of a profile: what a station runs from the SetChargingProfile it received, and the twin
following it exactly (the closed loop through the gateway relies on both)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contracts.models import ChargerSetpoint, SchedulePoint
from streams.ocpp.profiles import StationTarget, setpoint_request
from streams.ocpp.readback import profile_as_setpoint, profile_payload, station_command_kw
from streams.simulate.twin import command_at

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MIN = 60_000
WEEK = 7 * 24 * 60 * MIN

kws = st.floats(min_value=-7.0, max_value=11.0, allow_nan=False).map(lambda x: round(x, 3))


@st.composite
def setpoints(draw: st.DrawFn) -> ChargerSetpoint:
    valid_min = draw(st.integers(1, 60))
    minutes = sorted(draw(st.sets(st.integers(0, 240), max_size=6)))
    return ChargerSetpoint(charger_id="c1", feeder_id="f1", session_id="tx", sequence=1, setpoint_kw=draw(kws),
                           valid_from=T0, valid_until=T0 + valid_min * MIN, fallback_kw=draw(st.floats(0, 11)),
                           schedule=[SchedulePoint(start=T0 + m * MIN, kw=draw(kws)) for m in minutes],
                           reason="optimal", plan_id="p", issued_at=T0)


targets = st.sampled_from([StationTarget("2.1", 1, "tx", v2x=True, max_charge_kw=11, max_discharge_kw=7),
                           StationTarget("2.1", 2, "tx"), StationTarget("2.0.1", 1, "tx")])


@settings(max_examples=150, deadline=None)
@given(setpoints(), targets, st.lists(st.integers(0, 300), min_size=1, max_size=8))
def test_the_twin_runs_what_the_station_received(sp: ChargerSetpoint, target: StationTarget,
                                                  minutes: list[int]) -> None:
    payload = profile_payload(setpoint_request(sp, target).request)
    back = profile_as_setpoint(payload, "c1", "f1", sequence=9)
    for m in minutes:
        t = T0 + m * MIN
        station = station_command_kw(payload, t)
        assert station is not None
        assert command_at(back, t, WEEK, default_kw=99.0) == station


@settings(max_examples=150, deadline=None)
@given(setpoints(), targets)
def test_the_station_runs_the_setpoint_while_it_is_valid_and_its_fallback_after(sp: ChargerSetpoint,
                                                                                  target: StationTarget) -> None:
    payload = profile_payload(setpoint_request(sp, target).request)
    expect = sp.setpoint_kw if target.v2x else max(0.0, sp.setpoint_kw)
    assert abs(station_command_kw(payload, T0) - expect) < 1e-3  # type: ignore[operator]
    assert abs(station_command_kw(payload, sp.valid_until) - sp.fallback_kw) < 1e-3  # type: ignore[operator]
    assert station_command_kw(payload, T0 - 1) is None
