"""The VPP view: how much a feeder's fleet could raise or lower its load in each interval (issue 8).

From a plan and its request, per real (non-forecast) session and plan step ``k`` with planned average
power ``p_k``:

- ``up_k`` = min(charge cap − ``p_k``, energy room left after the baseline step / ``dt_k``), the energy
  room being what a car still needs (and, with a known SoC, its free capacity) or a battery's room below
  its top SoC;
- ``down_k`` = charging that can be deferred (a car only as much as it could make up later before it
  leaves; a battery all of it) + discharge headroom (rating less planned discharge, SoC above reserve);
- per site, the sum is clipped to the site's import / export headroom of the plan, then the feeder sum
  to the feeder's import / export headroom.

``energy_up_kwh`` / ``energy_down_kwh`` of an interval are cumulative from the issue time to the end of
that interval: the most extra energy the fleet could absorb / withhold, bounded by the powers above and
by each asset's energy room. Plan steps are resampled to a uniform ``step_ms``.
"""

from __future__ import annotations

import math

import numpy as np

from streams.contracts.models import Flexibility, FlexibilityPoint
from streams.dispatch.plan import HOUR_MS, Plan, PlanRequest, PlanSession, overlap_fraction, window_mask

__all__ = ["FlexProfile", "compute_flexibility", "flexibility_profile"]


class FlexProfile:
    """Per plan step: real fleet baseline, up/down power (kW) and cumulative up/down energy (kWh)."""

    def __init__(self, edges: np.ndarray, baseline: np.ndarray, up: np.ndarray, down: np.ndarray,
                 e_up: np.ndarray, e_down: np.ndarray) -> None:
        self.edges, self.baseline, self.up, self.down, self.e_up, self.e_down = edges, baseline, up, down, e_up, e_down


def _fin(x: float | None, default: float = 0.0) -> float:
    return float(x) if x is not None and math.isfinite(x) else default


def _session_flex(s: PlanSession, sched: np.ndarray, edges: np.ndarray, dt: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(planned avg, up, down, cumulative up energy, cumulative down energy) of one session."""
    frac = overlap_fraction(edges, s.arrival_ms, s.departure_ms)
    p = np.nan_to_num(sched) * frac
    cap_c = max(0.0, _fin(s.max_charge_kw)) * frac
    if s.blocked_windows:
        cap_c = np.where(window_mask(edges, s.blocked_windows), 0.0, cap_c)
    soc_known = s.soc_kwh is not None and s.capacity_kwh is not None
    soc0, top, reserve = _fin(s.soc_kwh), _fin(s.capacity_kwh), _fin(s.reserve_kwh)
    cap_d = max(0.0, _fin(s.max_discharge_kw)) * frac if soc_known else np.zeros_like(frac)
    if s.discharge_windows is not None:
        cap_d = np.where(window_mask(edges, s.discharge_windows), cap_d, 0.0)
    e_step = p * dt
    b_after = np.cumsum(e_step)  # baseline energy by the end of step k
    b_before = b_after - e_step
    if s.storage:
        room_before = np.maximum(top - (soc0 + b_before), 0.0) if soc_known else np.zeros_like(p)
        room_total = np.maximum(top - (soc0 + b_after), 0.0) if soc_known else np.zeros_like(p)
    else:
        need = max(0.0, _fin(s.energy_kwh))
        room_before = np.maximum(need - b_before, 0.0)
        room_total = np.maximum(need - b_after, 0.0)
        if soc_known:
            room_before = np.minimum(room_before, np.maximum(top - (soc0 + b_before), 0.0))
            room_total = np.minimum(room_total, np.maximum(top - (soc0 + b_after), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        up = np.minimum(np.maximum(cap_c - p, 0.0),
                        np.where(dt > 0, np.maximum(room_before - e_step, 0.0) / dt, 0.0))
        charging = np.maximum(p, 0.0)
        if s.storage:
            defer = charging
            defer_total = np.cumsum(charging * dt)
        else:
            spare = np.maximum(cap_c - p, 0.0) * dt
            spare_after = np.cumsum(spare[::-1])[::-1] - spare
            defer = np.minimum(charging, np.where(dt > 0, spare_after / dt, 0.0))
            defer_total = np.minimum(np.cumsum(charging * dt), spare_after)
        soc_before = soc0 + b_before
        dis_room = np.maximum(soc_before + np.minimum(p, 0.0) * dt - reserve, 0.0) if soc_known else np.zeros_like(p)
        extra_dis = np.minimum(np.maximum(cap_d - np.maximum(-p, 0.0), 0.0),
                               np.where(dt > 0, dis_room / dt, 0.0))
    down = defer + extra_dis
    dischargeable = np.maximum(soc0 + b_after - reserve, 0.0) if soc_known and cap_d.any() else np.zeros_like(p)
    e_up = np.minimum(np.cumsum(up * dt), room_total)
    e_down = np.minimum(np.cumsum(down * dt), defer_total + dischargeable)
    return p, up, down, e_up, e_down


def flexibility_profile(plan: Plan, req: PlanRequest) -> FlexProfile:
    """Flexibility on the plan's own grid (see the module docstring)."""
    edges = np.asarray(plan.edges_ms, dtype=np.int64)
    n = len(edges) - 1
    dt = np.diff(edges) / HOUR_MS
    base = np.nan_to_num(np.asarray(req.base_kw, dtype=float))
    groups: dict[str | None, list[tuple[np.ndarray, ...]]] = {}
    for s in req.sessions:
        if s.virtual or s.key not in plan.schedules:
            continue
        groups.setdefault(s.site_id, []).append(_session_flex(s, plan.schedules[s.key], edges, dt))
    sites = {site.site_id: site for site in req.sites}
    baseline, up, down, e_up, e_down = (np.zeros(n) for _ in range(5))
    for sid, parts in groups.items():
        g = [np.sum([part[i] for part in parts], axis=0) for i in range(5)]
        site = sites.get(sid) if sid is not None else None
        if site is not None and sid in plan.site_net_kw:
            net = plan.site_net_kw[sid]
            g[1] = np.minimum(g[1], np.maximum(np.asarray(site.import_limit_kw, dtype=float) - net, 0.0))
            g[2] = np.minimum(g[2], np.maximum(net + np.asarray(site.export_limit_kw, dtype=float), 0.0))
        baseline += g[0]
        up += g[1]
        down += g[2]
        e_up += g[3]
        e_down += g[4]
    net = base + plan.fleet_kw
    up = np.minimum(up, np.maximum(np.asarray(req.import_limit_kw, dtype=float) - net, 0.0))
    down = np.minimum(down, np.maximum(net + np.maximum(np.asarray(req.export_limit_kw, dtype=float), 0.0), 0.0))
    e_up = np.maximum(np.minimum(e_up, np.cumsum(up * dt)), 0.0)
    e_down = np.maximum(np.minimum(e_down, np.cumsum(down * dt)), 0.0)
    return FlexProfile(edges, baseline, up, down, e_up, e_down)


def compute_flexibility(plan: Plan, req: PlanRequest, now_ms: int, step_ms: int, horizon_ms: int) -> Flexibility:
    """The ``Flexibility`` record of a feeder: uniform ``step_ms`` intervals from ``now_ms`` over ``horizon_ms``
    (at most to the plan's end), issued at ``now_ms``."""
    prof = flexibility_profile(plan, req)
    edges = prof.edges
    end = min(int(edges[-1]), now_ms + horizon_ms)
    starts = np.arange(now_ms, end - step_ms + 1, step_ms, dtype=np.int64) if end - now_ms >= step_ms else \
        np.empty(0, dtype=np.int64)
    cum_t = edges.astype(float)
    cum_up = np.concatenate([[0.0], prof.e_up])
    cum_down = np.concatenate([[0.0], prof.e_down])
    points = []
    for a in starts:
        k = int(np.searchsorted(edges, a, side="right")) - 1
        k = min(max(k, 0), len(edges) - 2)
        b = float(a + step_ms)
        points.append(FlexibilityPoint(
            start=int(a), baseline_kw=round(float(prof.baseline[k]), 3), up_kw=round(max(float(prof.up[k]), 0.0), 3),
            down_kw=round(max(float(prof.down[k]), 0.0), 3),
            energy_up_kwh=round(max(float(np.interp(b, cum_t, cum_up)), 0.0), 3),
            energy_down_kwh=round(max(float(np.interp(b, cum_t, cum_down)), 0.0), 3)))
    return Flexibility(feeder_id=plan.feeder_id, issued_at=now_ms, step_ms=step_ms, points=points)
