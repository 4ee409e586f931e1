"""A station that refuses its setpoint (telemetry v3 ``setpoint_answer``) is planned as uncontrolled load at its
worst case until it accepts a later one: the other chargers absorb the feeder limit (issue 16)."""

from __future__ import annotations

import pickle

import pytest

from streams.dispatch.dispatcher import FeederDispatcher
from tests.unit.dispatch.fleet import T0, Q, cfg, reg, tel

LIMIT = 25.0  # three 11 kW chargers would take 33 kW


def _fleet() -> FeederDispatcher:
    d = FeederDispatcher("f1", cfg(default_import_limit_kw=LIMIT, replan_ms=Q, setpoint_refresh_ms=Q))
    for cid in ("c1", "c2", "c3"):
        d.on_registration(reg(cid, "s-" + cid, kw=11.0))
        d.on_telemetry(tel(cid, T0, energy=60.0, kw=11.0, dep_h=6.0))
    return d


def _answer(cid: str, t: int, seq: int, answer: str, power: float = 0.0):
    return tel(cid, t, energy=60.0, kw=11.0, dep_h=6.0, power=power).model_copy(
        update={"setpoint_sequence": seq, "setpoint_answer": answer})


def _by(res):
    return {sp.charger_id: sp for sp in res.setpoints}


def test_all_accepting_chargers_share_the_limit():
    d = _fleet()
    sps = _by(d.on_interval(T0))
    assert sum(sp.setpoint_kw for sp in sps.values()) == pytest.approx(LIMIT, abs=0.05)
    assert all("uncontrolled" not in (sp.message or "") for sp in sps.values())


@pytest.mark.parametrize("answer", ["rejected", "error", "timeout"])
def test_a_refused_setpoint_makes_the_charger_uncontrolled_load_and_the_others_absorb_the_limit(answer):
    d = _fleet()
    first = _by(d.on_interval(T0))
    d.on_telemetry(_answer("c1", T0 + 1000, first["c1"].sequence, answer, power=4.0))
    assert d.n_refused_setpoints == 1
    res = d.on_interval(T0 + Q)
    sps = _by(res)
    c1 = sps["c1"]
    assert "c1" not in res.plan.schedules  # not planned as a controllable session
    assert c1.setpoint_kw == 11.0  # its worst case (the rating, above the 4 kW it reports) ...
    assert c1.reason == "clipped_by_safety" and f"uncontrolled: the station answered {answer}" in c1.message
    others = sps["c2"].setpoint_kw + sps["c3"].setpoint_kw
    assert others == pytest.approx(LIMIT - 11.0, abs=0.05)  # ... which the other two make room for
    assert min(sps["c2"].setpoint_kw, sps["c3"].setpoint_kw) > 0
    assert d.plan_request.base_kw[0] == pytest.approx(11.0)  # the plan saw it as load


def test_the_charger_is_controlled_again_once_it_accepts_a_later_setpoint():
    d = _fleet()
    first = _by(d.on_interval(T0))["c1"].sequence
    second = _by(d.on_interval(T0 + Q))["c1"].sequence
    assert second > first
    d.on_telemetry(_answer("c1", T0 + Q + 1000, second, "rejected"))
    held = _by(d.on_interval(T0 + 2 * Q))["c1"]
    assert "uncontrolled" in held.message
    d.on_telemetry(_answer("c1", T0 + 2 * Q + 1000, first, "accepted"))  # late answer to an older setpoint
    assert "c1" not in d.on_interval(T0 + 2 * Q + 60_000).plan.schedules
    d.on_telemetry(_answer("c1", T0 + 2 * Q + 61_000, held.sequence, "accepted"))
    for cid in ("c2", "c3"):
        d.on_telemetry(tel(cid, T0 + 3 * Q, energy=60.0, kw=11.0, dep_h=6.0))  # fresh, not stale
    res = d.on_interval(T0 + 3 * Q)
    sps = _by(res)
    assert "c1" in res.plan.schedules and "uncontrolled" not in (sps["c1"].message or "")
    assert sum(sp.setpoint_kw for sp in d.last_sent.values()) == pytest.approx(LIMIT, abs=0.05)
    assert sps["c1"].setpoint_kw < 11.0 and d.n_refused_setpoints == 1


def test_the_same_answer_twice_counts_once_and_answers_survive_a_pickle():
    d = _fleet()
    seq = _by(d.on_interval(T0))["c1"].sequence
    d.on_telemetry(_answer("c1", T0 + 1000, seq, "timeout"))
    d.on_telemetry(_answer("c1", T0 + 2000, seq, "timeout"))
    assert d.n_refused_setpoints == 1
    back = pickle.loads(pickle.dumps(d))
    assert back.setpoint_answers == {"c1": (seq, "timeout")}
    assert "c1" not in back.on_interval(T0 + Q).plan.schedules
    old = d.__dict__.copy()
    del old["setpoint_answers"], old["n_refused_setpoints"]
    restored = FeederDispatcher.__new__(FeederDispatcher)
    restored.__setstate__(old)  # a checkpoint written before the field existed
    assert restored.setpoint_answers == {} and restored.n_refused_setpoints == 0
