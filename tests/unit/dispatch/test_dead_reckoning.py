"""Dead reckoning inside dispatch: telemetry without session energy gets the setpoints sent since the last report."""

from __future__ import annotations

import pytest

from streams.dispatch.dispatcher import FeederDispatcher
from streams.dispatch.planner import HOUR_MS
from tests.unit.dispatch.test_dispatcher import T0, Q, cfg, reg, tel


def test_energy_is_the_sent_power_integrated_since_the_last_report():
    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("c1"))
    assert d.on_reported_telemetry(tel("c1", T0, delivered=None))  # plug-in: a re-plan is due
    (sp,) = d.on_interval(T0).setpoints
    assert sp.setpoint_kw > 0
    assert not d.on_reported_telemetry(tel("c1", T0 + Q, delivered=None))
    s = d.session("c1")
    assert s is not None and s.energy_delivered_kwh == pytest.approx(sp.setpoint_kw * Q / HOUR_MS)
    assert not d.on_reported_telemetry(tel("c1", T0 + 2 * Q, delivered=3.0))  # a reported figure wins
    assert d.session("c1").energy_delivered_kwh == pytest.approx(3.0)
    assert d.on_reported_telemetry(tel("c1", T0 + 3 * Q, connected=False, delivered=None))  # plug-out


def test_plain_on_telemetry_does_not_reckon():
    d = FeederDispatcher("f1", cfg())
    d.on_registration(reg("c1"))
    d.on_telemetry(tel("c1", T0, delivered=None))
    d.on_interval(T0)
    d.on_telemetry(tel("c1", T0 + Q, delivered=None))
    assert not d.session("c1").energy_delivered_kwh
