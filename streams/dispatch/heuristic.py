"""Least-laxity-first fallback planner: no solver, charging only, never exports.

Used when HiGHS fails or runs over its time budget. Step by step it first gives every session the
power it must take now to stay feasible, then fills up to a feeder level (the running peak floor or the
lowest level that could serve all energy, never above the import limit unless forced) in order of least
laxity.
"""

from __future__ import annotations

import math
import time

import numpy as np

from streams.dispatch.plan import HOUR_MS, Plan, PlanRequest, overlap_fraction, plan_id_of, window_mask

__all__ = ["plan_llf"]


def _clean(x: float) -> float:
    return max(0.0, float(x)) if math.isfinite(x) else 0.0


def plan_llf(req: PlanRequest) -> Plan:
    """A feasible charging-only plan by least-laxity-first; ``reason`` is ``fallback_heuristic``."""
    t0 = time.perf_counter()
    edges = np.asarray(req.edges_ms, dtype=np.int64)
    n = len(edges) - 1
    dt = np.diff(edges) / HOUR_MS
    base = np.nan_to_num(np.asarray(req.base_kw, dtype=float))
    imp = np.nan_to_num(np.asarray(req.import_limit_kw, dtype=float), nan=np.inf, posinf=np.inf)
    m = len(req.sessions)
    caps = np.zeros((m, n))
    rem = np.zeros(m)
    for i, s in enumerate(req.sessions):
        frac = overlap_fraction(edges, s.arrival_ms, s.departure_ms)
        caps[i] = _clean(s.max_charge_kw) * frac
        if s.blocked_windows:
            caps[i][window_mask(edges, s.blocked_windows)] = 0.0
        rem[i] = _clean(s.energy_kwh)
    # energy each session can still absorb after step k (suffix sums)
    future = np.cumsum((caps * dt)[:, ::-1], axis=1)[:, ::-1]
    after = np.concatenate([future[:, 1:], np.zeros((m, 1))], axis=1)
    total_cap = float(np.sum(dt))
    level = max(req.peak_floor_kw, float(np.max(base)) if n else 0.0,
                float(np.sum(base * dt) + rem.sum()) / total_cap if total_cap > 0 else 0.0)
    alloc = np.zeros((m, n))
    for k in range(n):
        if dt[k] <= 0:
            continue
        must = np.clip((rem - after[:, k]) / dt[k], 0.0, caps[:, k])
        p = must.copy()
        head = min(level, imp[k]) - base[k] - p.sum()
        if head > 0:
            laxity = np.where(rem > 0, (after[:, k] - rem) / np.maximum(caps[:, k], 1e-9), np.inf)
            for i in np.argsort(laxity, kind="stable"):
                if head <= 1e-12 or rem[i] <= 1e-12 or not math.isfinite(laxity[i]):
                    break
                extra = min(caps[i, k] - p[i], rem[i] / dt[k] - p[i], head)
                if extra > 0:
                    p[i] += extra
                    head -= extra
        level = max(level, base[k] + p.sum())
        alloc[:, k] = p
        rem = np.maximum(rem - p * dt[k], 0.0)
    schedules: dict[str, np.ndarray] = {}
    status: dict[str, str] = {}
    shortfall: dict[str, float] = {}
    for i, s in enumerate(req.sessions):
        frac = overlap_fraction(edges, s.arrival_ms, s.departure_ms)
        schedules[s.key] = np.where(frac > 1e-9, alloc[i] / np.where(frac > 1e-9, frac, 1.0), 0.0)
        shortfall[s.key] = float(rem[i]) if rem[i] > 1e-6 else 0.0
        status[s.key] = "infeasible_request" if rem[i] > 1e-3 else "fallback_heuristic"
    fleet = alloc.sum(axis=0)
    net = base + fleet
    exp = np.nan_to_num(np.asarray(req.export_limit_kw, dtype=float), nan=np.inf, posinf=np.inf)
    viol = float(np.sum(np.maximum(net - imp, 0.0) * dt) + np.sum(np.maximum(-net - exp, 0.0) * dt))
    return Plan(
        plan_id=plan_id_of(req), feeder_id=req.feeder_id, edges_ms=tuple(int(e) for e in edges),
        schedules=schedules, status=status, shortfall_kwh=shortfall, peak_kw=float(np.max(net)) if n else 0.0,
        objective=float("nan"), solver="llf", reason="fallback_heuristic", limit_violation_kwh=viol,
        fleet_kw=fleet, solve_seconds=time.perf_counter() - t0,
    )
