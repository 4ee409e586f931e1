"""Registrations: shares of bidirectional chargers, interconnection classes, export limits, V2G enrolment."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from streams.contracts.models import ChargerRegistration, ChargerTelemetry
from streams.simulate import SimConfig, build_fleet, iter_records
from streams.simulate.config import DEFAULT_CLASS_SHARES


def _within(observed: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(observed - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


def test_class_shares_match_the_config() -> None:
    cfg = SimConfig(feeders=10, homes=100, chargers=100, seed=11)
    regs = [c.registration for c in build_fleet(cfg).chargers]
    assert len(regs) == 1000 and len({r.charger_id for r in regs}) == 1000
    bidi = [r for r in regs if r.bidirectional]
    assert _within(len(bidi), len(regs), cfg.bidirectional_share)
    classes = Counter(r.interconnection_class for r in bidi)
    for cls, share in DEFAULT_CLASS_SHARES:
        assert _within(classes[cls], len(bidi), share), (cls, classes)
    assert _within(sum(r.v2g_enrolled for r in bidi), len(bidi), cfg.v2g_enrolment)
    for r in regs:
        if not r.bidirectional:
            assert r.interconnection_class == "non_parallel" and r.max_discharge_kw == 0.0
            assert not r.v2g_enrolled and r.export_limit_kw == 0.0
        elif r.interconnection_class == "parallel_exporting":
            assert 0.0 < r.export_limit_kw <= r.max_discharge_kw
        else:
            assert r.export_limit_kw == 0.0
        assert r.max_charge_kw > 0 and r.registered_at == cfg.start_ms
    assert {r.inverter_location for r in bidi} == {"onboard", "offboard"}


def test_custom_shares_are_respected() -> None:
    cfg = SimConfig(feeders=2, homes=10, chargers=50, seed=1, bidirectional_share=1.0,
                    class_shares=(("non_parallel", 0.0), ("parallel_non_exporting", 0.0),
                                  ("parallel_exporting", 1.0)))
    regs = [c.registration for c in build_fleet(cfg).chargers]
    assert all(r.bidirectional and r.interconnection_class == "parallel_exporting" for r in regs)
    with pytest.raises(ValueError):
        SimConfig(class_shares=(("non_parallel", 0.5),))


def test_registrations_come_first_and_cover_every_reporting_charger() -> None:
    cfg = SimConfig(feeders=2, homes=5, chargers=7, hours=3, seed=2)
    records = list(iter_records(cfg))
    regs = [r for _, _, _, r in records if isinstance(r, ChargerRegistration)]
    assert [r for _, _, _, r in records[: len(regs)]] == regs and len(regs) == 14
    registered = {r.charger_id: r for r in regs}
    for _ts, topic, key, r in records:
        if isinstance(r, ChargerTelemetry):
            reg = registered[r.charger_id]
            assert key == r.feeder_id == reg.feeder_id and topic == "evgrid.charger.telemetry"
            assert r.max_charge_kw == reg.max_charge_kw and r.max_discharge_kw == reg.max_discharge_kw
    sites = {r.site_id for r in regs}
    assert len(sites) == 10  # more chargers than homes: every home has one, some two


def test_keys_are_feeders_and_stations() -> None:
    cfg = SimConfig(feeders=3, homes=2, chargers=1, hours=2, seed=2)
    keys = Counter((topic, key) for _, topic, key, _ in iter_records(cfg))
    assert {k for t, k in keys if t == "evgrid.weather"} == {"WX-F001", "WX-F002", "WX-F003"}
    assert {k for t, k in keys if t != "evgrid.weather"} == {"F001", "F002", "F003"}
