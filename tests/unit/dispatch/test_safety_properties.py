"""Hypothesis: no setpoint the envelope lets through ever violates a rule, whatever the plan said."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.dispatch.safety import SafetyRules, safe_setpoint
from streams.dispatch.state import ChargerInfo, SessionState

NOW = 1_700_000_000_000
CLASSES = ["non_parallel", "parallel_non_exporting", "parallel_exporting"]
wild = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e12, 1e12), st.none())
rating = st.floats(0.0, 500.0)


@st.composite
def fleet_member(draw):
    bidir = draw(st.booleans())
    battery = draw(st.booleans())
    pct = st.one_of(st.none(), st.floats(0.0, 100.0))
    ch = ChargerInfo(
        charger_id="c", feeder_id="f", site_id="s", customer_id="u", bidirectional=bidir,
        interconnection_class=draw(st.sampled_from(CLASSES)), export_limit_kw=draw(rating),
        v2g_enrolled=draw(st.booleans()), max_charge_kw=draw(rating),
        max_discharge_kw=draw(rating) if bidir else 0.0, active=draw(st.booleans()),
        asset_type="stationary_battery" if battery else "ev_charger",
        battery_capacity_kwh=draw(st.one_of(st.none(), st.floats(1.0, 2000.0))) if battery else None,
        min_soc_pct=draw(pct) if battery else None, max_soc_pct=draw(pct) if battery else None)
    sess = None
    if draw(st.booleans()):
        cap = draw(st.one_of(st.none(), st.floats(1.0, 200.0)))
        sess = SessionState(
            charger_id="c", feeder_id="f", connected=draw(st.booleans()),
            last_heard_ms=NOW - draw(st.integers(0, 3 * 3600_000)), max_charge_kw=draw(rating),
            max_discharge_kw=draw(rating), soc_pct=draw(st.one_of(st.none(), st.floats(0.0, 100.0))),
            capacity_kwh=cap, reserve_soc_pct=draw(st.one_of(st.none(), st.floats(0.0, 100.0))),
            grid_state=draw(st.sampled_from(["grid_connected", "islanded"])))
    return ch, sess


@settings(max_examples=3000, deadline=None)
@given(member=fleet_member(), planned=wild, export_allowed=st.booleans(), step_s=st.floats(60.0, 7200.0),
       rules=st.builds(SafetyRules, reserve_soc_pct=st.floats(0.0, 100.0), stale_seconds=st.floats(60.0, 7200.0),
                       fallback_kw=st.floats(-50.0, 50.0)),
       headroom=st.one_of(st.none(), st.floats(-50.0, 500.0), st.floats(allow_nan=True, allow_infinity=True)))
def test_no_emitted_setpoint_violates_a_rule(member, planned, export_allowed, step_s, rules, headroom):
    ch, sess = member
    out = safe_setpoint(planned, ch, sess, NOW, step_s, rules, export_allowed, site_headroom_kw=headroom)
    if not ch.active:
        assert not out.send  # unknown / inactive: nothing sent
        return
    if sess is not None and sess.grid_state == "islanded":
        assert not out.send and not out.flexible  # backup mode: no grid setpoint
        return
    assert out.send
    kw = out.kw
    assert math.isfinite(kw)
    assert kw <= min(ch.max_charge_kw, sess.max_charge_kw if sess else math.inf) + 1e-9
    stale = sess is None or NOW - sess.last_heard_ms > rules.stale_seconds * 1000
    if stale:
        assert out.reason == "stale_telemetry" and not out.flexible and kw >= 0
        return
    if not sess.connected:
        assert kw == 0.0 and out.reason == "unplugged"
        return
    if kw < 0:
        assert ch.bidirectional and (ch.v2g_enrolled or export_allowed or ch.asset_type == "stationary_battery")
        assert -kw <= min(ch.max_discharge_kw, sess.max_discharge_kw) + 1e-9
        if ch.interconnection_class == "parallel_exporting":  # export rules
            assert -kw <= ch.export_limit_kw + 1e-9
        else:  # behind the meter: never more than the site's uncovered own load, so the site never exports
            assert ch.interconnection_class == "parallel_non_exporting"
            assert headroom is not None and math.isfinite(headroom) and -kw <= headroom + 1e-9
        # SoC reserve: known SoC above reserve, and not below reserve within the step
        reserve = sess.reserve_soc_pct if sess.reserve_soc_pct is not None else rules.reserve_soc_pct
        if ch.asset_type == "stationary_battery" and ch.min_soc_pct is not None:
            reserve = max(reserve, ch.min_soc_pct) if sess.reserve_soc_pct is not None else ch.min_soc_pct
        cap = sess.capacity_kwh if sess.capacity_kwh is not None else ch.battery_capacity_kwh
        assert sess.soc_pct is not None and cap is not None
        assert sess.soc_pct > reserve
        soc_after = sess.soc_pct + kw * step_s / 3600 / cap * 100
        assert soc_after >= reserve - 1e-6
    if kw > 0 and ch.asset_type == "stationary_battery":  # a battery never charges past its top SoC
        cap = sess.capacity_kwh if sess.capacity_kwh is not None else ch.battery_capacity_kwh
        assert sess.soc_pct is not None and cap is not None
        top = ch.max_soc_pct if ch.max_soc_pct is not None else 100.0
        assert sess.soc_pct + kw * step_s / 3600 / cap * 100 <= top + 1e-6


@given(planned=st.floats(-100.0, 100.0))
def test_a_value_inside_every_limit_passes_unchanged(planned):
    ch = ChargerInfo("c", "f", "s", "u", True, "parallel_exporting", 100.0, True, 100.0, 100.0)
    sess = SessionState("c", "f", True, NOW, max_charge_kw=100.0, max_discharge_kw=100.0, soc_pct=100.0,
                        capacity_kwh=10_000.0)
    out = safe_setpoint(planned, ch, sess, NOW, 900.0, SafetyRules())
    assert out.kw == planned or (planned == 0 and out.kw == 0)
    assert out.reason == "optimal" and out.flexible


def test_non_exporting_site_is_never_negative():
    ch = ChargerInfo("c", "f", "s", "u", True, "parallel_non_exporting", 10.0, True, 11.0, 11.0)
    sess = SessionState("c", "f", True, NOW, max_charge_kw=11.0, max_discharge_kw=11.0, soc_pct=90.0,
                        capacity_kwh=60.0)
    out = safe_setpoint(-8.0, ch, sess, NOW, 900.0, SafetyRules())
    assert out.kw == 0.0 and out.reason == "clipped_by_safety"


def test_stale_telemetry_gets_the_fallback_and_is_not_flexible():
    ch = ChargerInfo("c", "f", "s", "u", False, "non_parallel", 0.0, False, 11.0, 0.0)
    sess = SessionState("c", "f", True, NOW - 3600_000, max_charge_kw=11.0)
    out = safe_setpoint(7.0, ch, sess, NOW, 900.0, SafetyRules(stale_seconds=900, fallback_kw=1.4))
    assert out.kw == 1.4 and out.reason == "stale_telemetry" and not out.flexible


def test_discharge_is_limited_to_reach_the_reserve_within_the_step():
    ch = ChargerInfo("c", "f", "s", "u", True, "parallel_exporting", 50.0, True, 50.0, 50.0)
    sess = SessionState("c", "f", True, NOW, max_charge_kw=50.0, max_discharge_kw=50.0, soc_pct=32.0,
                        capacity_kwh=50.0)
    out = safe_setpoint(-50.0, ch, sess, NOW, 1800.0, SafetyRules(reserve_soc_pct=30.0))
    assert out.kw == -2.0  # 1 kWh above reserve over half an hour
