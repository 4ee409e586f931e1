"""From a plan and the safety envelope to ``ChargerSetpoint`` records; emit on change or refresh."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

from streams.contracts.models import ChargerSetpoint, SchedulePoint
from streams.dispatch.planner import Plan

__all__ = ["build_setpoint", "commanded_kw", "discharged_kwh", "round_kw", "schedule_points", "should_emit"]


def should_emit(last: ChargerSetpoint | None, kw: float, reason: str, now_ms: int, threshold_kw: float,
                refresh_ms: int) -> bool:
    """Emit when nothing was sent yet, the power moved by at least ``threshold_kw``, the reason or the
    sign changed, the last setpoint is older than ``refresh_ms``, or it has expired (keep the validity
    longer than the refresh period)."""
    if last is None:
        return True
    if reason != last.reason or (kw > 0) != (last.setpoint_kw > 0) or (kw < 0) != (last.setpoint_kw < 0):
        return True
    if abs(kw - last.setpoint_kw) >= threshold_kw:
        return True
    return now_ms - last.valid_from >= refresh_ms or last.valid_until <= now_ms


def round_kw(kw: float) -> float:
    """``kw`` to 1 W; a discharge never rounds up: a non-exporting site's cap must hold to the watt."""
    r = round(kw, 3)
    if r < kw and kw < 0:
        r = round(r + 0.001, 3)
    return r + 0.0  # no -0.0


def schedule_points(plan: Plan | None, key: str, now_ms: int, until_ms: int,
                    clip: Callable[[float], float]) -> list[SchedulePoint]:
    """The plan of ``key`` from ``now_ms`` to ``until_ms`` as schedule points, each passed through ``clip``
    (the safety envelope); consecutive equal values are merged."""
    if plan is None or key not in plan.schedules:
        return []
    out: list[SchedulePoint] = []
    sched = plan.schedules[key]
    for k in range(len(plan.edges_ms) - 1):
        a, b = plan.edges_ms[k], plan.edges_ms[k + 1]
        if b <= now_ms or a >= until_ms:
            continue
        v = float(sched[k])
        kw = round_kw(clip(v if math.isfinite(v) else 0.0))
        if out and out[-1].kw == kw:
            continue
        out.append(SchedulePoint(start=max(a, now_ms), kw=kw))
    return out


def build_setpoint(*, charger_id: str, feeder_id: str, session_id: str | None, sequence: int, kw: float,
                   now_ms: int, valid_ms: int, fallback_kw: float, schedule: list[SchedulePoint], reason: str,
                   plan_id: str, message: str | None = None) -> ChargerSetpoint:
    """A validated ``ChargerSetpoint`` valid from ``now_ms`` for ``valid_ms``."""
    return ChargerSetpoint(
        charger_id=charger_id, feeder_id=feeder_id, session_id=session_id, sequence=sequence,
        setpoint_kw=round_kw(float(kw)), valid_from=now_ms, valid_until=now_ms + valid_ms,
        fallback_kw=max(0.0, float(fallback_kw)), schedule=schedule, reason=reason,  # type: ignore[arg-type]
        plan_id=plan_id, issued_at=now_ms, message=message,
    )


def commanded_kw(sp: ChargerSetpoint, t_ms: int, schedule_ms: int) -> float | None:
    """What a charger holding ``sp`` applies at ``t_ms``: the setpoint while valid, then its schedule (for
    ``schedule_ms`` from ``valid_from``); ``None`` before ``valid_from`` or after the schedule."""
    if t_ms < sp.valid_from or t_ms >= sp.valid_from + max(schedule_ms, sp.valid_until - sp.valid_from):
        return None
    if t_ms < sp.valid_until:
        return sp.setpoint_kw
    kw = None
    for p in sp.schedule:
        if p.start <= t_ms:
            kw = p.kw
    return kw


def discharged_kwh(setpoints: list[ChargerSetpoint], start_ms: int, end_ms: int, schedule_ms: int) -> float:
    """Energy the setpoints (in sequence order, each replacing the previous) discharge in ``[start_ms, end_ms)``,
    kWh (charging not counted: a lower bound of the SoC)."""
    out = 0.0
    sps = sorted(setpoints, key=lambda sp: sp.sequence)
    for i, sp in enumerate(sps):
        a = max(sp.valid_from, start_ms)
        b = min(sps[i + 1].valid_from if i + 1 < len(sps) else end_ms, end_ms)
        if b <= a:
            continue
        cuts = sorted({a, b, *(t for t in (sp.valid_until, *(p.start for p in sp.schedule)) if a < t < b)})
        for t0, t1 in itertools.pairwise(cuts):
            kw = commanded_kw(sp, t0, schedule_ms)
            if kw is not None and kw < 0:
                out += -kw * (t1 - t0) / 3_600_000
    return out
