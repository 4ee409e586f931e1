"""The issue-14 cases, one by one: site export at the point of interconnection, limits first, signals."""

from __future__ import annotations

from dataclasses import replace
from unittest import mock

import numpy as np
import pytest

from streams.contracts.models import SiteRegistration
from streams.dispatch import dispatcher as dispatcher_module
from streams.dispatch.dispatcher import FeederDispatcher
from tests.unit.dispatch.fleet import HOUR_MS, T0, Q, cfg, reg, signal, tel


def _hostile(kw: float):
    real = dispatcher_module.plan_feeder

    def plan(req, limit):
        p = real(req, limit)
        return replace(p, schedules={k: np.full(len(p.edges_ms) - 1, kw) for k in p.schedules})

    return mock.patch.object(dispatcher_module, "plan_feeder", plan)


def test_two_exporting_chargers_share_the_site_limit() -> None:
    d = FeederDispatcher("f1", cfg())
    for cid in ("a", "b"):
        d.on_registration(reg(cid, "H", cls="parallel_exporting", enrolled=True, bidir=True, export=5.0))
        d.on_telemetry(tel(cid, T0, soc=90.0, cap=60.0, bidir=True))
    with _hostile(-7.0):
        sps = d.on_interval(T0).setpoints
    assert len(sps) == 2 and sum(sp.setpoint_kw for sp in sps) == pytest.approx(-5.0, abs=1e-3)
    for k in range(len(sps[0].schedule)):  # the schedules hold the site limit too, point by point
        assert sps[0].schedule[k].kw + sps[1].schedule[k].kw >= -5.0 - 1e-3


def test_a_site_registration_lowers_the_approved_limit_of_its_chargers() -> None:
    d = FeederDispatcher("f1", cfg())
    d.on_site_registration(SiteRegistration(site_id="H", feeder_id="f1", interconnection_class="parallel_exporting",
                                            export_limit_kw=3.0, import_limit_kw=4.0, registered_at=T0))
    d.on_registration(reg("a", "H", cls="parallel_exporting", enrolled=True, bidir=True, export=7.0))
    d.on_telemetry(tel("a", T0, soc=90.0, cap=60.0, bidir=True))
    with _hostile(-7.0):
        assert d.on_interval(T0).setpoints[0].setpoint_kw == pytest.approx(-3.0)
    d2 = FeederDispatcher("f1", cfg())
    d2.on_site_registration(SiteRegistration(site_id="H", feeder_id="f1", interconnection_class="parallel_exporting",
                                             export_limit_kw=3.0, import_limit_kw=4.0, registered_at=T0))
    d2.on_registration(reg("a", "H", cls="parallel_exporting", enrolled=True, bidir=True, export=7.0))
    d2.on_telemetry(tel("a", T0, soc=20.0, cap=60.0, bidir=True))
    with _hostile(7.0):
        assert d2.on_interval(T0).setpoints[0].setpoint_kw == pytest.approx(4.0)  # the panel limit


def test_limits_first_charging_is_cut_to_the_feeder_limit_less_the_base_load() -> None:
    d = FeederDispatcher("f1", cfg())
    for cid in ("a", "b", "c"):
        d.on_registration(reg(cid, "site-" + cid, cls="non_parallel"))
        d.on_telemetry(tel(cid, T0))
    d.on_signal(signal("cap", T0, T0 + HOUR_MS, imp=20.0))
    with _hostile(7.0):
        sps = d.on_interval(T0, [8.0] * 40).setpoints
    assert sum(sp.setpoint_kw for sp in sps) == pytest.approx(12.0, abs=1e-2)  # 20 kW less 8 kW of base load
    assert all("feeder import limit" in (sp.message or "") for sp in sps)


def test_a_grid_signal_may_raise_the_feeder_export_limit_but_a_site_keeps_its_approved_one() -> None:
    d = FeederDispatcher("f1", cfg())
    d.on_signal(signal("x", T0, T0 + Q, exp=40.0))
    _, exp, _ = d.limits.profile(np.array([T0, T0 + Q, T0 + 2 * Q]))
    assert list(exp) == [40.0, 0.0]
    d.on_registration(reg("a", "H", cls="parallel_exporting", enrolled=True, bidir=True, export=4.0))
    d.on_telemetry(tel("a", T0, soc=90.0, cap=60.0, bidir=True))
    d.on_signal(signal("s", T0, T0 + Q, site="H", exp=40.0))
    with _hostile(-7.0):
        assert d.on_interval(T0).setpoints[0].setpoint_kw == pytest.approx(-4.0)


def test_without_a_site_meter_export_is_paid_up_to_the_sites_commanded_net_export() -> None:
    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("a", "H", cls="parallel_exporting", enrolled=True, bidir=True, export=5.0))
    d.on_telemetry(tel("a", T0, soc=90.0, cap=60.0, bidir=True))
    with _hostile(-7.0):
        assert d.on_interval(T0).setpoints[0].setpoint_kw == pytest.approx(-5.0)
    d.on_telemetry(tel("a", T0 + 1, soc=90.0, cap=60.0, bidir=True, power=-7.0))  # it discharges 7 kW anyway
    d.on_telemetry(tel("a", T0 + 2 * Q + 1, connected=False))
    st = d.on_interval(T0 + 2 * Q + 1).settlements
    assert len(st) == 1 and st[0].export_basis == "commanded"
    assert st[0].exported_kwh == pytest.approx(5.0 * 0.5, abs=1e-3)  # 5 kW commanded for 30 min, not 7 kW


def test_a_dispatcher_pickled_before_sites_loads_with_their_defaults() -> None:
    import pickle

    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("a", "H"))
    state = dict(d.__dict__)
    for name in ("registered", "sites", "sent_log", "site_energy", "site_mark", "projection_memo"):
        state.pop(name)
    old = FeederDispatcher.__new__(FeederDispatcher)
    old.__dict__.update(state)
    back = pickle.loads(pickle.dumps(old))
    assert back.sites == {} and back.sent_log == {} and back.chargers["a"].site_id == "H"
