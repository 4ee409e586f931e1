"""The charger and vehicle twin: setpoint rule, physics, telemetry."""

from __future__ import annotations

import math

import pytest

from streams.contracts.models import ChargerSetpoint, SchedulePoint
from streams.simulate.twin import (
    ChargerTwin,
    TwinConfig,
    TwinFleet,
    TwinSession,
    command_at,
    next_command_change,
)

T0 = 1_551_398_400_000  # 2019-03-01T00:00:00Z
MIN = 60_000
H = 3_600_000


def sp(seq: int, kw: float, frm: int, until: int, schedule: tuple[tuple[int, float], ...] = (),
       fallback: float = 0.0, cid: str = "c1") -> ChargerSetpoint:
    return ChargerSetpoint(charger_id=cid, feeder_id="f1", sequence=seq, setpoint_kw=kw, valid_from=frm,
                           valid_until=until, fallback_kw=fallback,
                           schedule=[SchedulePoint(start=a, kw=b) for a, b in schedule], reason="optimal",
                           plan_id="p", issued_at=frm)


def session(req: float = 10.0, hours: float = 4.0, rating: float = 10.0, dis: float = 0.0,
            cap: float | None = None, soc: float | None = None, arrive: int = T0, sid: str = "s1",
            cid: str = "c1") -> TwinSession:
    dep = arrive + int(hours * H)
    return TwinSession(sid, cid, arrive, dep, dep, req, rating, dis, cap, soc)


def run(tw: ChargerTwin, feed: dict[int, list[ChargerSetpoint]] | None = None) -> list:
    """Step one twin to the end, delivering ``feed[t]`` when it acts at ``t``; every report."""
    fleet = TwinFleet({tw.charger_id: tw})
    reports = []
    pending = sorted((feed or {}).items())
    t = fleet.next_time()
    while t is not None or pending:
        if pending and (t is None or pending[0][0] <= t):
            at, sps = pending.pop(0)
            reports += fleet.step(at)
            reports += fleet.deliver(sps, at)
        else:
            assert t is not None
            reports += fleet.step(t)
        t = fleet.next_time()
    fleet.finish()
    return reports


def test_command_rule_validity_then_schedule_then_fallback() -> None:
    s = sp(1, 5.0, T0, T0 + 30 * MIN, schedule=((T0, 5.0), (T0 + 40 * MIN, 2.0), (T0 + 60 * MIN, -1.0)),
           fallback=1.5)
    assert command_at(None, T0, 4 * H, 0.7) == 0.7
    assert command_at(s, T0 + 29 * MIN, 4 * H, 0.0) == 5.0
    assert command_at(s, T0 + 35 * MIN, 4 * H, 0.0) == 5.0  # schedule point at T0 still holds
    assert command_at(s, T0 + 45 * MIN, 4 * H, 0.0) == 2.0
    assert command_at(s, T0 + 90 * MIN, 4 * H, 0.0) == -1.0
    assert command_at(s, T0 + 90 * MIN, H, 0.0) == 1.5  # schedule over: fallback
    assert next_command_change(s, T0, 4 * H) == T0 + 30 * MIN
    assert next_command_change(s, T0 + 45 * MIN, 4 * H) == T0 + 60 * MIN
    assert next_command_change(s, T0 + 5 * H, 4 * H) is None


def test_uncontrolled_charges_at_rating_and_stops_at_request() -> None:
    tw = ChargerTwin("c1", "f1", [session(req=10.0, rating=8.0)], TwinConfig(default_fallback_kw=math.inf),
                     start_ms=T0)
    reps = run(tw)
    (r,) = tw.results
    assert r.delivered_kwh == pytest.approx(10.0, abs=1e-6)
    assert tw.segments[0][2] == pytest.approx(8.0)
    stop = T0 + math.ceil(10.0 / 8.0 * H)
    assert any(x.timestamp == stop and x.power_kw == 0.0 and x.connected for x in reps)  # reported on change
    assert reps[0].connected and reps[0].power_kw == 8.0 and reps[0].energy_delivered_kwh == 0.0
    assert not reps[-1].connected and reps[-1].energy_delivered_kwh == pytest.approx(10.0, abs=1e-4)


def test_heartbeats_while_connected_and_idle() -> None:
    cfg = TwinConfig(heartbeat_ms=5 * MIN, idle_heartbeat_ms=30 * MIN, heartbeat_phase_ms=0)
    tw = ChargerTwin("c1", "f1", [session(hours=1.0, arrive=T0 + H)], cfg, start_ms=T0, end_ms=T0 + 3 * H)
    reps = run(tw)
    idle_before = [x.timestamp for x in reps if not x.connected and x.timestamp < T0 + H]
    assert idle_before == [T0, T0 + 30 * MIN]
    conn = [x.timestamp for x in reps if x.connected]
    assert conn == [T0 + H + k * 5 * MIN for k in range(12)]
    after = [x.timestamp for x in reps if not x.connected and x.timestamp >= T0 + 2 * H]
    assert after == [T0 + 2 * H, T0 + 2 * H + 30 * MIN]


def test_connected_heartbeats_run_a_phase_after_the_plug_in() -> None:
    # a car plugging in on the hour reports then, and its heartbeats come a second after each whole period: the
    # first report after an interval's start is not one a whole heartbeat later
    cfg = TwinConfig(heartbeat_ms=5 * MIN, idle_heartbeat_ms=30 * MIN, heartbeat_phase_ms=1_000)
    tw = ChargerTwin("c1", "f1", [session(hours=1.0, arrive=T0 + H)], cfg, start_ms=T0, end_ms=T0 + 3 * H)
    conn = [x.timestamp for x in run(tw) if x.connected]
    assert conn == [T0 + H] + [T0 + H + k * 5 * MIN + 1_000 for k in range(1, 12)]


def test_applies_latest_sequence_from_receipt_and_reports_change() -> None:
    tw = ChargerTwin("c1", "f1", [session(req=100.0, hours=2.0)], TwinConfig(heartbeat_ms=H), start_ms=T0)
    feed = {T0 + 30 * MIN: [sp(2, 6.0, T0, T0 + 4 * H), sp(1, 2.0, T0, T0 + 4 * H)],
            T0 + 60 * MIN: [sp(1, 9.0, T0 + 60 * MIN, T0 + 4 * H)]}  # an older sequence: ignored
    reps = run(tw, feed)
    (r,) = tw.results
    assert r.delivered_kwh == pytest.approx(6.0 * 1.5)  # 0 kW before receipt (fallback), 6 kW after
    change = [x for x in reps if x.timestamp == T0 + 30 * MIN]
    assert change and change[-1].power_kw == 6.0


def test_discharge_efficiency_soc_floor_and_export() -> None:
    cfg = TwinConfig(heartbeat_ms=H, discharge_efficiency=0.9, min_soc_pct=20.0)
    s = session(req=0.0, hours=3.0, rating=10.0, dis=10.0, cap=50.0, soc=40.0)
    tw = ChargerTwin("c1", "f1", [s], cfg, start_ms=T0)
    run(tw, {T0: [sp(1, -15.0, T0, T0 + 4 * H)]})
    (r,) = tw.results
    # 10 kWh of battery above the floor gives 9 kWh at the grid, at 10 kW (clipped from 15)
    assert r.exported_kwh == pytest.approx(9.0, abs=1e-3)
    assert r.delivered_kwh == pytest.approx(-9.0, abs=1e-3)
    assert r.min_soc_pct == pytest.approx(20.0, abs=1e-3)
    assert max(abs(kw) for _, _, kw in tw.segments) == pytest.approx(10.0)


def test_unidirectional_car_never_discharges() -> None:
    tw = ChargerTwin("c1", "f1", [session(dis=0.0, cap=50.0, soc=50.0)], TwinConfig(), start_ms=T0)
    run(tw, {T0: [sp(1, -7.0, T0, T0 + 4 * H)]})
    assert tw.results[0].exported_kwh == 0.0 and not tw.segments


def test_charge_efficiency_taper_and_full_stop() -> None:
    cfg = TwinConfig(heartbeat_ms=MIN, charge_efficiency=0.9, taper_soc_pct=80.0, taper_floor=0.1)
    s = session(req=100.0, hours=10.0, rating=10.0, cap=40.0, soc=70.0)
    tw = ChargerTwin("c1", "f1", [s], cfg, start_ms=T0)
    reps = run(tw, {T0: [sp(1, 10.0, T0, T0 + 12 * H)]})
    (r,) = tw.results
    assert r.soc_pct == pytest.approx(100.0, abs=1e-6)  # stops when full
    assert r.charged_kwh == pytest.approx(12.0 / 0.9, rel=1e-6)  # 12 kWh into the battery at 90 %
    assert reps[0].power_kw == 0.0 and reps[1].power_kw == 10.0  # plug-in (no setpoint yet), then its answer
    powers = [x.power_kw for x in reps[1:] if x.connected]
    socs = [x.soc_pct for x in reps[1:] if x.connected]
    assert all(p == 10.0 for p, q in zip(powers, socs, strict=True) if q <= 80.0)
    tapered = [(p, q) for p, q in zip(powers, socs, strict=True) if 80.0 < q < 100.0]
    assert len(tapered) > 10  # linear from the rating at 80 % to 10 % of it at 100 %
    assert all(p == pytest.approx(10.0 * (1.0 - 0.9 * (q - 80.0) / 20.0), abs=0.01) for p, q in tapered)
    assert reps[-2].power_kw == 0.0  # last connected report: full, stopped


def test_overlapping_sessions_are_cut_at_the_next_arrival_and_fleet_orders_events() -> None:
    a = session(sid="a", hours=3.0)
    b = session(sid="b", hours=2.0, arrive=T0 + 2 * H)
    other = session(sid="o", cid="c2", arrive=T0 + 30 * MIN, hours=1.0)
    cfg = TwinConfig(default_fallback_kw=math.inf, heartbeat_ms=15 * MIN)
    fleet = TwinFleet({"c1": ChargerTwin("c1", "f1", [a, b], cfg, start_ms=T0),
                       "c2": ChargerTwin("c2", "f1", [other], cfg, start_ms=T0)})
    times = []
    t = fleet.next_time()
    while t is not None:
        times += [x.timestamp for x in fleet.step(t)]
        t = fleet.next_time()
    res = {r.session.session_id: r for r in fleet.finish()}
    assert times == sorted(times)
    assert res["a"].ended_ms == T0 + 2 * H and res["b"].ended_ms == T0 + 4 * H
    assert res["a"].delivered_kwh == pytest.approx(10.0) and res["o"].delivered_kwh == pytest.approx(10.0)


def battery(soc: float = 50.0, cap: float = 10.0, rating: float = 5.0, hours: float = 10.0) -> TwinSession:
    dep = T0 + int(hours * H)
    return TwinSession("bat", "c1", T0, dep, dep, 0.0, rating, rating, cap, soc, stationary=True)


def test_stationary_battery_charges_past_a_zero_request_up_to_its_soc_bound() -> None:
    cfg = TwinConfig(heartbeat_ms=H, charge_efficiency=0.9, max_soc_pct=90.0, taper_soc_pct=100.0)
    tw = ChargerTwin("c1", "f1", [battery(soc=50.0)], cfg, start_ms=T0)
    run(tw, {T0: [sp(1, 8.0, T0, T0 + 10 * H)]})
    (r,) = tw.results
    # no request stops it: 4 kWh into the battery (50 % -> 90 % of 10 kWh) at 90 %, at 5 kW (clipped from 8)
    assert r.soc_pct == pytest.approx(90.0, abs=1e-6)
    assert r.charged_kwh == pytest.approx(4.0 / 0.9, rel=1e-6)
    assert max(kw for _, _, kw in tw.segments) == pytest.approx(5.0)
    # a car with the same zero request never charges
    car = ChargerTwin("c1", "f1", [session(req=0.0, rating=5.0, cap=10.0, soc=50.0)], cfg, start_ms=T0)
    run(car, {T0: [sp(1, 8.0, T0, T0 + 10 * H)]})
    assert car.results[0].charged_kwh == 0.0


def test_stationary_battery_discharges_to_its_floor_and_idles_without_a_setpoint() -> None:
    cfg = TwinConfig(heartbeat_ms=H, discharge_efficiency=0.9, min_soc_pct=10.0, default_fallback_kw=math.inf)
    tw = ChargerTwin("c1", "f1", [battery(soc=60.0)], cfg, start_ms=T0)
    reps = run(tw)  # uncontrolled: a car would charge at full power; a battery left alone does nothing
    assert not tw.segments and tw.results[0].delivered_kwh == 0.0
    assert all(x.departure_time is None and x.requested_energy_kwh is None for x in reps if x.connected)
    assert any(x.soc_pct == 60.0 and x.battery_capacity_kwh == 10.0 for x in reps if x.connected)
    tw = ChargerTwin("c1", "f1", [battery(soc=60.0)], cfg, start_ms=T0)
    run(tw, {T0: [sp(1, -5.0, T0, T0 + 10 * H)]})
    (r,) = tw.results
    assert r.exported_kwh == pytest.approx(5.0 * 0.9, abs=1e-3)  # 5 kWh above the 10 % floor, at 90 %
    assert r.min_soc_pct == pytest.approx(10.0, abs=1e-3)
