"""What a plan is: the request a feeder's planner solves, the plan it returns, its time grid and its id.

Shared by the LP planner (:mod:`.planner`), the least-laxity fallback (:mod:`.heuristic`) and the flexibility
report (:mod:`.flexibility`); none of them imports another for these.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "HOUR_MS",
    "Plan",
    "PlanRequest",
    "PlanSession",
    "PlanSite",
    "PlannerWeights",
    "overlap_fraction",
    "plan_id_of",
    "time_grid",
    "window_mask",
]

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class PlanSession:
    """One vehicle (or a virtual, forecast cohort) as the planner sees it.

    ``energy_kwh`` is the net energy still to deliver by ``departure_ms`` (negative: the car is above its
target SoC and may give up to that much net, never more); ``max_discharge_kw`` is 0
    unless the safety rules allow export. ``discharge_windows`` (when not ``None``) restricts discharge to
    those [start, end) windows; ``blocked_windows`` forbid charging (accepted delay offers). SoC fields
    (kWh) are needed only when discharging.
    """

    key: str
    arrival_ms: int
    departure_ms: int
    energy_kwh: float
    max_charge_kw: float
    max_discharge_kw: float = 0.0
    session_id: str | None = None
    soc_kwh: float | None = None
    capacity_kwh: float | None = None
    reserve_kwh: float = 0.0
    setpoint_lag_ms: int = 0
    """How late a setpoint applies in its step (the step before's power runs on until then): the energy of the
    session's last step counts only from then to departure."""
    virtual: bool = False
    discharge_windows: tuple[tuple[int, int], ...] | None = None
    blocked_windows: tuple[tuple[int, int], ...] = ()
    site_id: str | None = None
    storage: bool = False
    """A stationary battery: no energy request; SoC tracked in [reserve_kwh, capacity_kwh] (both kWh)."""
    charge_efficiency: float = 1.0
    discharge_efficiency: float = 1.0
    final_soc_kwh: float | None = None
    """Least SoC (kWh) at the end of the session's window (storage); ``None`` = no terminal bound."""
    taper_soc_kwh: float | None = None
    """Charging tapers above this SoC (kWh; needs ``soc_kwh`` and ``capacity_kwh``): linearly from ``max_charge_kw``
    to ``taper_floor`` of it at ``capacity_kwh``, as a car's charge controller does. ``None`` = no taper."""
    taper_floor: float = 0.1
    discharge_hold_h: float = 0.0
    """The safety envelope lets a discharge setpoint run this long (its validity, hours) without taking the SoC below
    ``reserve_kwh``: the plan discharges at most ``(SoC - reserve) / discharge_hold_h`` per step, as the envelope
    will let it (needs ``soc_kwh``). 0 = not modelled."""


@dataclass(frozen=True, slots=True)
class PlanSite:
    """A site (home or building) behind one service point: its own load and limits per step of the grid.

    ``base_kw`` is the site's load without its planned assets (kW, forecast); ``import_limit_kw`` and
    ``export_limit_kw`` (kW, >= 0, ``inf`` = none) bound the site's net import ``base + its sessions``
    from above and from below (``-export``). ``demand_charge_per_kw`` > 0 adds the site's peak import
    (never below ``peak_floor_kw``) to the objective at that price.
    """

    site_id: str
    base_kw: tuple[float, ...]
    import_limit_kw: tuple[float, ...]
    export_limit_kw: tuple[float, ...]
    demand_charge_per_kw: float = 0.0
    peak_floor_kw: float = 0.0
    peak_margin_kw: float = 0.0
    """The demand charge's peak holds against ``base_kw`` plus this (the own-load forecast's typical error), so
    a plan that fills the site up to its monthly peak leaves room for the load it did not foresee."""


@dataclass(frozen=True, slots=True)
class PlannerWeights:
    """Objective weights (currency units). Peak dominates cost; slack dominates peak."""

    peak_per_kw: float = 100.0
    shortfall_per_kwh: float = 10_000.0
    limit_violation_per_kwh: float = 100_000.0
    cycling_per_kwh: float = 0.05
    early_per_kwh_hour: float = 1e-4
    lost_limit_per_kwh: float = 1_000.0
    """Import-limit violation at a limit the base load alone breaks somewhere in the horizon (a lost limit): below
    the shortfall weight, so drivers are not starved for a limit that cannot be held anyway."""
    flatten_per_kwh: float = 0.05
    """Under the peak, the top band of the net load costs this per kWh, the band below less (``flatten_levels``
    bands between the horizon's lowest base load and the peak, a convex cost): EV load fills the valleys."""
    flatten_levels: int = 64
    actual_peak_per_kw: float = 50.0
    """Weight of the peak of real (non-virtual) sessions alone, so forecast demand does not pull today's
    cars above what they need."""
    near_peak_per_kw: float = 0.0
    """Weight of the peak over the steps starting within ``near_peak_ms`` whose base load alone is above the running
    peak (at least the running peak): a higher peak forecast later in the horizon, which may not come, does not make
    load above the running peak free now. Steps below it are left out, or charging would cost more now than later
    and every plan would push it out of the window."""
    near_peak_ms: int = 0
    upper_peak_per_kw: float = 0.0
    """Weight of the peak over the horizon against the base load's upper prediction bound (``upper_base_kw``): a plan
    keeps V2G energy and charging away from the hours where the load may come out high, not only where it is
    forecast highest."""
    scenario_share: float = 0.0
    """Weight (0..1) of the other base-load scenarios (``PlanRequest.scenario_base_kw``) against ``base_kw`` in one
    LP whose scenarios share the first step (0: ``base_kw`` alone)."""


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """Everything one plan depends on (its hash is the plan id)."""

    feeder_id: str
    edges_ms: tuple[int, ...]
    base_kw: tuple[float, ...]
    import_limit_kw: tuple[float, ...]
    export_limit_kw: tuple[float, ...]
    price_per_kwh: tuple[float, ...]
    sessions: tuple[PlanSession, ...]
    peak_floor_kw: float = 0.0
    weights: PlannerWeights = field(default_factory=PlannerWeights)
    sites: tuple[PlanSite, ...] = ()
    near_base_kw: tuple[float, ...] = ()
    """The base load (kW per step) the near-term peak holds against, e.g. the forecast's upper prediction bound
    (empty: ``base_kw``). Only that peak sees it: the horizon's peak, the limits and the flattening take ``base_kw``,
    so a high bound near now does not lift the peak the rest of the horizon may fill up to."""
    upper_base_kw: tuple[float, ...] = ()
    """The forecast's upper prediction bound (kW per step, never below ``base_kw``) the upper peak
    (``PlannerWeights.upper_peak_per_kw``) holds against; empty: no upper peak."""
    scenario_base_kw: tuple[tuple[float, ...], ...] = ()
    """Other base loads (kW per step) the load may follow instead of ``base_kw``: the plan's first step is the one
    best over all of them (weighted by ``PlannerWeights.scenario_share``); empty: ``base_kw`` alone."""

    @property
    def n_steps(self) -> int:
        return len(self.edges_ms) - 1


@dataclass(frozen=True, slots=True)
class Plan:
    """A feeder plan: per-key power per step (kW, + charge / − discharge, power while plugged in)."""

    plan_id: str
    feeder_id: str
    edges_ms: tuple[int, ...]
    schedules: dict[str, np.ndarray]
    status: dict[str, str]
    shortfall_kwh: dict[str, float]
    peak_kw: float
    objective: float
    solver: str
    reason: str
    limit_violation_kwh: float
    fleet_kw: np.ndarray
    solve_seconds: float = 0.0
    solver_failure: str = ""
    """Why the LP gave no plan (``solver`` is then a fallback): ``iteration_limit``, ``time_limit`` (the wall-clock
    hang guard: not reproducible) or ``error``; empty for an LP plan."""
    site_net_kw: dict[str, np.ndarray] = field(default_factory=dict)
    """Planned net import per step of each site of the request (its base load + its sessions)."""
    site_violation_kwh: float = 0.0
    limit_lost: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """Per step: the import limit is lost (the base load alone breaks it somewhere in the horizon); empty = none."""

    def lost_at(self, t_ms: int) -> bool:
        """Whether the import limit at event time ``t_ms`` is lost in this plan."""
        if not len(self.limit_lost) or t_ms < self.edges_ms[0] or t_ms >= self.edges_ms[-1]:
            return False
        k = int(np.searchsorted(np.asarray(self.edges_ms), t_ms, side="right")) - 1
        return bool(self.limit_lost[k])

    def power_at(self, key: str, t_ms: int) -> float | None:
        """Planned power of ``key`` at event time ``t_ms``; ``None`` outside the plan."""
        sched = self.schedules.get(key)
        if sched is None or t_ms < self.edges_ms[0] or t_ms >= self.edges_ms[-1]:
            return None
        k = int(np.searchsorted(np.asarray(self.edges_ms), t_ms, side="right")) - 1
        return float(sched[k])


def time_grid(start_ms: int, step_ms: int, horizon_ms: int, fine_ms: int | None = None,
              coarse_step_ms: int | None = None) -> np.ndarray:
    """Step edges from ``start_ms`` over ``horizon_ms``: ``step_ms`` steps for ``fine_ms`` then coarse ones.

    Coarse edges are aligned to multiples of ``coarse_step_ms`` (epoch), so grids of successive plans
    share edges. Without ``fine_ms``/``coarse_step_ms`` the grid is uniform.
    """
    end = start_ms + horizon_ms
    if fine_ms is None or coarse_step_ms is None or coarse_step_ms <= step_ms or fine_ms >= horizon_ms:
        n = max(1, math.ceil(horizon_ms / step_ms))
        return start_ms + step_ms * np.arange(n + 1, dtype=np.int64)
    fine_end = start_ms + max(step_ms, (fine_ms // step_ms) * step_ms)
    fine = np.arange(start_ms, fine_end + 1, step_ms, dtype=np.int64)
    first_coarse = -(-fine_end // coarse_step_ms) * coarse_step_ms
    # fill the gap to the first aligned coarse edge with fine steps
    gap = np.arange(fine_end + step_ms, first_coarse + 1, step_ms, dtype=np.int64)
    gap = gap[gap < first_coarse]
    coarse = np.arange(first_coarse, end + coarse_step_ms, coarse_step_ms, dtype=np.int64)
    edges = np.unique(np.concatenate([fine, gap, [first_coarse], coarse]))
    return edges[edges <= max(end, first_coarse)]


def _f(x: float) -> bytes:
    return struct.pack("<d", round(float(x), 6) if math.isfinite(x) else float(x))


def plan_id_of(req: PlanRequest) -> str:
    """Deterministic id of a request: a short SHA-256 of its canonical content."""
    h = hashlib.sha256()
    h.update(req.feeder_id.encode())
    h.update(np.asarray(req.edges_ms, dtype=np.int64).tobytes())
    for arr in (req.base_kw, req.import_limit_kw, req.export_limit_kw, req.price_per_kwh):
        h.update(np.round(np.asarray(arr, dtype=float), 6).tobytes())
    h.update(_f(req.peak_floor_kw))
    for s in sorted(req.sessions, key=lambda s: s.key):
        h.update(repr((s.key, s.session_id, s.arrival_ms, s.departure_ms, s.virtual, s.discharge_windows,
                       s.blocked_windows)).encode())
        for x in (s.energy_kwh, s.max_charge_kw, s.max_discharge_kw, s.soc_kwh or -1.0, s.capacity_kwh or -1.0,
                  s.reserve_kwh):
            h.update(_f(x))
        if s.site_id is not None or s.storage:
            h.update(repr((s.site_id, s.storage, s.charge_efficiency, s.discharge_efficiency,
                           s.final_soc_kwh)).encode())
        if s.taper_soc_kwh is not None:
            h.update(repr(("taper", s.taper_soc_kwh, s.taper_floor)).encode())
        if s.discharge_hold_h:
            h.update(b"hold" + _f(s.discharge_hold_h))
    if req.scenario_base_kw and req.weights.scenario_share > 0:
        h.update(b"scenarios" + _f(req.weights.scenario_share))
        for arr in req.scenario_base_kw:
            h.update(np.round(np.asarray(arr, dtype=float), 6).tobytes())
    for site in sorted(req.sites, key=lambda x: x.site_id):
        h.update(site.site_id.encode())
        for arr in (site.base_kw, site.import_limit_kw, site.export_limit_kw):
            h.update(np.round(np.asarray(arr, dtype=float), 6).tobytes())
        h.update(_f(site.demand_charge_per_kw) + _f(site.peak_floor_kw))
        if site.peak_margin_kw:
            h.update(b"margin" + _f(site.peak_margin_kw))
    return "plan-" + h.hexdigest()[:16]


def overlap_fraction(edges: np.ndarray, a: int, b: int) -> np.ndarray:
    """Share of each step ``[edges[i], edges[i+1])`` inside the window ``[a, b)``."""
    lo = np.maximum(edges[:-1], a)
    hi = np.minimum(edges[1:], b)
    return np.clip((hi - lo) / np.diff(edges), 0.0, 1.0)


def window_mask(edges: np.ndarray, windows: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Steps that overlap any of ``windows`` (each ``(start_ms, end_ms)``)."""
    mask = np.zeros(len(edges) - 1, dtype=bool)
    for a, b in windows:
        mask |= (edges[:-1] < b) & (edges[1:] > a)
    return mask
