"""From a plan and the safety envelope to ``ChargerSetpoint`` records; emit on change or refresh."""

from __future__ import annotations

import math
from collections.abc import Callable

from streams.contracts.models import ChargerSetpoint, SchedulePoint
from streams.dispatch.planner import Plan

__all__ = ["build_setpoint", "round_kw", "schedule_points", "should_emit"]


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
