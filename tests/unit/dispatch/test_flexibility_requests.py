"""The VPP view: flexibility consistent with the fleet's limits (its signs are the model's, FlexibilityPoint); a
feeder-level request honoured and reported."""

from __future__ import annotations

import pytest

from streams.contracts.codec import default_codec
from streams.contracts.models import decode_record, encode_record
from streams.dispatch.dispatcher import FeederDispatcher
from streams.dispatch.planner import HOUR_MS

from .fleet import T0, Q, cfg, reg, signal, tel


def _fleet(d):
    d.on_registration(reg("rigid", "A"))
    d.on_telemetry(tel("rigid", T0, energy=14.0, dep_h=2.0))  # 7 kW for all of its 2 h: no slack
    d.on_registration(reg("loose", "B"))
    d.on_telemetry(tel("loose", T0, energy=7.0, dep_h=8.0))  # 7 kWh over 8 h
    d.on_registration(reg("v2g", "C", cls="parallel_exporting", bidir=True, enrolled=True, export=5.0))
    d.on_telemetry(tel("v2g", T0, energy=0.0, dep_h=8.0, soc=60.0, cap=50.0, bidir=True))


def test_flexibility_stays_within_the_fleets_and_the_feeders_limits():
    d = FeederDispatcher("f1", cfg())
    _fleet(d)
    d.on_signal(signal("cap", T0, T0 + 8 * HOUR_MS, imp=60.0))
    res = d.on_interval(T0, base_load_kw=[40.0])
    (flex,) = res.flexibility
    assert flex.feeder_id == "f1" and flex.step_ms == Q and flex.issued_at == T0
    assert len(flex.points) == 16 and [p.start for p in flex.points] == [T0 + k * Q for k in range(16)]
    charge_cap, discharge_cap = 3 * 7.0, 5.0
    cum_up = cum_down = 0.0
    for p in flex.points:
        assert p.baseline_kw + p.up_kw <= charge_cap + 1e-6
        assert p.baseline_kw - p.down_kw >= -discharge_cap - 1e-6
        assert 40.0 + p.baseline_kw + p.up_kw <= 60.0 + 1e-3  # never above the feeder's limit
        cum_up += p.up_kw * 0.25
        cum_down += p.down_kw * 0.25
        assert p.energy_up_kwh <= cum_up + 1e-3 and p.energy_down_kwh <= cum_down + 1e-3
    first = flex.points[0]
    # lowest: rigid 7 kW (cannot defer) + loose 0 + V2G -5 (its export limit); highest: rigid 7 + loose 7 +
    # V2G 0 (it needs no energy, so it can at most stop discharging)
    assert first.baseline_kw - first.down_kw == pytest.approx(2.0, abs=1e-3)
    assert first.baseline_kw + first.up_kw == pytest.approx(14.0, abs=1e-3)
    # energy limits: the loose car cannot absorb more than it still needs, the V2G car only what its
    # baseline discharges until then (it needs nothing), the rigid car nothing
    v2g_out = -sum(min(v, 0.0) for v in res.plan.schedules["v2g"][:16]) * 0.25
    assert 0 < flex.points[-1].energy_up_kwh <= 7.0 + v2g_out + 1e-6
    # the record is a valid contract
    assert decode_record(default_codec(), encode_record(default_codec(), flex)) == flex


def test_a_car_without_slack_offers_no_flexibility():
    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("rigid", "A"))
    d.on_telemetry(tel("rigid", T0, energy=14.0, dep_h=2.0))  # 7 kW for all of its 2 h
    (flex,) = d.on_interval(T0, base_load_kw=[40.0]).flexibility
    for p in flex.points[:8]:
        assert p.baseline_kw == pytest.approx(7.0) and p.up_kw == pytest.approx(0.0, abs=1e-6)
        assert p.down_kw == pytest.approx(0.0, abs=1e-6)  # deferring would miss the departure
    assert all(p.baseline_kw == p.up_kw == 0.0 for p in flex.points[8:])


def test_flexibility_is_empty_of_power_without_cars():
    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("c1", "A"))
    d.on_telemetry(tel("c1", T0, connected=False))
    (flex,) = d.on_interval(T0, base_load_kw=[10.0]).flexibility
    assert all(p.up_kw == p.down_kw == p.baseline_kw == 0.0 for p in flex.points)


def _evening(d, limit, n=6):
    for i in range(n):
        d.on_registration(reg(f"c{i}", f"s{i}"))
        d.on_telemetry(tel(f"c{i}", T0, energy=10.0, dep_h=8.0))
    d.on_signal(signal("dr-1", T0 + HOUR_MS, T0 + 3 * HOUR_MS, imp=limit))


def test_a_feeder_request_is_honoured_and_the_delivered_reduction_reported():
    d = FeederDispatcher("f1", cfg())
    _evening(d, limit=45.0)
    res = d.on_interval(T0, base_load_kw=[40.0])
    net = 40.0 + res.plan.fleet_kw
    assert net[4:12].max() <= 45.0 + 1e-6  # inside the window
    rep = d.request_report("dr-1")
    assert [r.start_ms for r in rep] == [T0 + HOUR_MS + k * Q for k in range(8)]
    for r in rep:
        assert r.baseline_kw == pytest.approx(47.5, abs=1e-3)  # 60 kWh flat over 8 h without the request
        assert r.planned_kw <= 45.0 + 1e-6
        assert r.requested_reduction_kw == pytest.approx(2.5, abs=1e-3)
        assert r.delivered_reduction_kw >= r.requested_reduction_kw - 1e-6
    # a measurement replaces the plan in what was delivered
    d.observe_load(T0 + HOUR_MS + Q, 46.0)
    r0 = d.request_report("dr-1")[0]
    assert r0.measured_kw == 46.0 and r0.delivered_reduction_kw == pytest.approx(1.5, abs=1e-3)


def test_a_request_beyond_what_the_fleet_can_do_delivers_all_it_can():
    d = FeederDispatcher("f1", cfg())
    _evening(d, limit=30.0)  # below the other load (40 kW): only the cars' 7.5 kW can go
    d.on_interval(T0, base_load_kw=[40.0])
    for r in d.request_report():
        assert r.requested_reduction_kw == pytest.approx(17.5, abs=1e-3)
        assert r.delivered_reduction_kw == pytest.approx(7.5, abs=1e-3)
        assert r.planned_kw == pytest.approx(40.0, abs=1e-6)
    assert d.plan.shortfall_kwh == {f"c{i}": 0.0 for i in range(6)}  # the cars still get their energy
