"""Receding-horizon LP planner of one feeder, solved with HiGHS.

Objective (lexicographic by weights): the feeder's peak net import (base load + EV charging − V2G,
never counted below ``peak_floor_kw``), then energy cost at the signalled prices, a cycling penalty on
discharged energy, a convex cost of the net load per step under the peak (``flatten_per_kwh``: EV load fills the
base load's valleys instead of anywhere under the peak, where a missed ramp of the base load breaks it), and a tiny
preference for charging early. Constraints: each session's requested
energy by departure (soft, heavily penalised slack → ``infeasible_request``; the last step counts
``setpoint_lag_ms`` shorter, as its setpoint applies that late), per-charger power limits,
discharge only where the request allows it, SoC within [reserve, capacity] for discharging sessions,
and the feeder's import/export limits (soft with a penalty; violations are reported). An import limit that the
base load alone breaks somewhere in the horizon is *lost*: at every step with that limit its penalty is below the
shortfall's, the same in every step, so drivers are not starved for a limit that cannot be held and EV load is not
piled onto the steps where it is broken anyway (the peak term places it; V2G still lowers the energy above it).
``Plan.limit_lost`` marks those steps.

Sites (:class:`PlanSite`, issue 8): each site's own load plus its sessions stays under the site's import
limit and above minus its export limit (0 for a non-exporting site: behind-the-meter discharge covers at most
the site's own load), both soft with the limit-violation penalty; a site with a demand charge pays it on its
peak import over the horizon (never below its running monthly peak). Stationary batteries are sessions with
``storage=True``: the SoC is tracked with charge/discharge efficiencies, no energy is requested and the SoC at
the horizon end is at least ``final_soc_kwh``.

Scenarios (``PlanRequest.scenario_base_kw``, weighted by ``PlannerWeights.scenario_share``): the LP is built once
per base load and solved as one, each scenario with its own schedules and peak, every real session's first step (the
setpoint sent now) shared. The plan returned is the point forecast's; its first step is the one best over all.

Time runs on a grid of step edges (``edges_ms``): fine steps first, optionally a coarse tail
(:func:`time_grid`). A session's power in a step is the step average; a partial overlap with its
window scales its cap.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Literal

import highspy
import numpy as np
import scipy.sparse as sp

from streams.dispatch.plan import (
    HOUR_MS,
    Plan,
    PlannerWeights,
    PlanRequest,
    PlanSession,
    PlanSite,
    overlap_fraction,
    plan_id_of,
    time_grid,
    window_mask,
)

__all__ = [  # the plan's data lives in streams.dispatch.plan; re-exported here for the planner's callers
    "HOUR_MS",
    "Plan",
    "PlanRequest",
    "PlanSession",
    "PlanSite",
    "PlannerWeights",
    "SolveFailure",
    "SolverLimits",
    "plan_feeder",
    "plan_id_of",
    "solve_lp",
    "time_grid",
]

log = logging.getLogger(__name__)

SolveFailure = Literal["iteration_limit", "time_limit", "error"]
"""Why HiGHS gave no plan: its iteration bound (deterministic), its wall-clock hang guard (not), or an error."""


@dataclass(frozen=True, slots=True)
class SolverLimits:
    """What bounds one HiGHS solve. The iteration limit is the budget (same inputs → same outcome at any CPU load);
    the time limit only guards against a hang, and its firing makes the run depend on the machine."""

    iteration_limit: int = 50_000
    """Simplex iterations per solve (EVGRID_SOLVER_ITERATION_LIMIT); over it the least-laxity-first heuristic plans."""
    time_limit_s: float = 60.0
    """Wall-clock hang guard per solve, seconds (EVGRID_SOLVER_TIME_LIMIT_S)."""


@dataclass
class _Cols:
    lo: list[np.ndarray] = field(default_factory=list)
    hi: list[np.ndarray] = field(default_factory=list)
    cost: list[np.ndarray] = field(default_factory=list)
    n: int = 0

    def add(self, lo: np.ndarray, hi: np.ndarray, cost: np.ndarray) -> np.ndarray:
        idx = np.arange(self.n, self.n + len(lo))
        self.lo.append(lo)
        self.hi.append(hi)
        self.cost.append(cost)
        self.n += len(lo)
        return idx


def _highs(c: np.ndarray, lo: np.ndarray, hi: np.ndarray, a_ub: sp.csr_matrix, b_ub: np.ndarray,
           a_eq: sp.csr_matrix | None, b_eq: np.ndarray | None, limits: SolverLimits) -> np.ndarray | SolveFailure:
    """min c·x with a_ub·x <= b_ub, a_eq·x = b_eq, lo <= x <= hi, straight to HiGHS (scipy's ``linprog`` wrapper
    costs several times the solve on these small LPs); the optimal x, or why there is none (:data:`SolveFailure`).

    Deterministic: one thread, serial dual simplex, a fixed random seed, bounded by iterations; the
    wall-clock limit is only a hang guard (its firing depends on the machine's load, so it is logged)."""
    a = a_ub if a_eq is None else sp.vstack([a_ub, a_eq], format="csr")
    rows_lo = np.full(a_ub.shape[0], -highspy.kHighsInf)
    rows_hi = b_ub
    if a_eq is not None and b_eq is not None:
        rows_lo = np.concatenate([rows_lo, b_eq])
        rows_hi = np.concatenate([rows_hi, b_eq])
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(c), a.shape[0]
    lp.col_cost_ = c
    lp.col_lower_ = np.where(np.isfinite(lo), lo, -highspy.kHighsInf)
    lp.col_upper_ = np.where(np.isfinite(hi), hi, highspy.kHighsInf)
    lp.row_lower_, lp.row_upper_ = rows_lo, rows_hi
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = len(c), a.shape[0]
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = a.indptr, a.indices, a.data
    h = highspy.Highs()
    for name, value in (("output_flag", False), ("threads", 1), ("parallel", "off"), ("random_seed", 0),
                        ("simplex_strategy", 1), ("simplex_iteration_limit", int(limits.iteration_limit)),
                        ("ipm_iteration_limit", int(limits.iteration_limit)),
                        ("time_limit", float(limits.time_limit_s))):
        h.setOptionValue(name, value)
    try:
        if h.passModel(lp) == highspy.HighsStatus.kError or h.run() == highspy.HighsStatus.kError:
            return "error"
    except (ValueError, MemoryError, RuntimeError):
        return "error"
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kOptimal:
        return np.asarray(h.getSolution().col_value, dtype=float)
    if status == highspy.HighsModelStatus.kIterationLimit:
        return "iteration_limit"
    if status == highspy.HighsModelStatus.kTimeLimit:
        log.warning("HiGHS hit its wall-clock hang guard (%.1f s) after %d simplex iterations: this plan is not "
                    "reproducible (raise EVGRID_SOLVER_TIME_LIMIT_S)", limits.time_limit_s,
                    h.getInfo().simplex_iteration_count)
        return "time_limit"
    return "error"


@dataclass
class _Model:
    """One LP of a plan: min c·x, a_ub·x <= b_ub, a_eq·x = b_eq, lo <= x <= hi, and where each session's columns are."""

    c: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    a_ub: sp.csr_matrix
    b_ub: np.ndarray
    a_eq: sp.csr_matrix | None
    b_eq: np.ndarray | None
    index: list[tuple[PlanSession, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, int]]
    limit_lost: np.ndarray


def _model(req: PlanRequest, base: np.ndarray) -> _Model:
    """The feeder LP of ``req`` on the base load ``base`` (kW per step); its import limits are lost (see
    :func:`_lost_limits`) as judged on the request's own base load, in every scenario."""
    w = req.weights
    edges = np.asarray(req.edges_ms, dtype=np.int64)
    n = len(edges) - 1
    dt = np.diff(edges) / HOUR_MS
    mid_h = ((edges[:-1] + edges[1:]) / 2 - edges[0]) / HOUR_MS
    price = np.asarray(req.price_per_kwh, dtype=float)
    imp_lim = np.asarray(req.import_limit_kw, dtype=float)
    exp_lim = np.asarray(req.export_limit_kw, dtype=float)

    cols = _Cols()
    ub_r: list[np.ndarray] = []
    ub_c: list[np.ndarray] = []
    ub_v: list[np.ndarray] = []
    b_ub: list[np.ndarray] = []
    eq_r: list[np.ndarray] = []
    eq_c: list[np.ndarray] = []
    eq_v: list[np.ndarray] = []
    b_eq: list[float] = []
    n_ub = 0
    n_eq = 0
    net_r: list[np.ndarray] = []  # (step, col, sign) of the fleet power
    net_c: list[np.ndarray] = []
    net_v: list[np.ndarray] = []
    real_mask: list[np.ndarray] = []
    # per site, the most a session there may draw while plugged in: the import limit plus the site's own export
    site_imp = {st.site_id: np.asarray(st.import_limit_kw, dtype=float)
                - np.minimum(np.nan_to_num(np.asarray(st.base_kw, dtype=float)), 0.0) for st in req.sites}
    site_of: list[str | None] = []
    index: list[tuple[PlanSession, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, int]] = []

    for s in req.sessions:
        frac = overlap_fraction(edges, s.arrival_ms, s.departure_ms)
        steps = np.flatnonzero(frac > 1e-9)
        pmax = max(0.0, float(s.max_charge_kw)) if math.isfinite(s.max_charge_kw) else 0.0
        energy = max(0.0, float(s.energy_kwh)) if math.isfinite(s.energy_kwh) else 0.0
        # a car above its target SoC (energy < 0) may give the surplus: net energy in [energy, 0], free
        surplus = -float(s.energy_kwh) if math.isfinite(s.energy_kwh) and s.energy_kwh < 0 else 0.0
        soc_known = s.soc_kwh is not None and s.capacity_kwh is not None and math.isfinite(s.soc_kwh) \
            and math.isfinite(s.capacity_kwh)
        if s.storage:
            energy = 0.0
            if not soc_known:
                pmax = 0.0
        if len(steps) == 0:
            index.append((s, steps, np.empty(0, int), None, frac, -1))
            continue
        cap = pmax * frac[steps]
        if s.site_id in site_imp:
            # while plugged in, never above the site's import limit: the site rows see step averages, and a car that
            # leaves (or comes) within a step would take a whole step's worth of them in its fraction of it
            lim = site_imp[s.site_id][steps]
            cap = np.where(np.isfinite(lim), np.minimum(cap, np.maximum(lim, 0.0) * frac[steps]), cap)
        if s.blocked_windows:
            cap = np.where(window_mask(edges, s.blocked_windows)[steps], 0.0, cap)
        # real sessions prefer charging early, virtual (forecast) ones late: they yield capacity to real cars
        # and the earlier a real session departs, the stronger its hurry (earliest-deadline-first)
        window_h = max((s.departure_ms - edges[0]) / HOUR_MS, 0.25)
        tilt = (-1.0 if s.virtual else 24.0 / window_h) * w.early_per_kwh_hour * mid_h[steps]
        x = cols.add(np.zeros(len(steps)), cap, dt[steps] * (price[steps] + tilt))
        net_r.append(steps)
        net_c.append(x)
        net_v.append(np.ones(len(steps)))
        real_mask.append(np.full(len(steps), not s.virtual))
        site_of.append(s.site_id)
        dmax = max(0.0, float(s.max_discharge_kw)) if math.isfinite(s.max_discharge_kw) else 0.0
        d = None
        soc_ok = soc_known and s.soc_kwh is not None and s.soc_kwh > s.reserve_kwh
        if dmax > 0 and soc_ok:
            dcap = dmax * frac[steps]
            if s.discharge_windows is not None:
                dcap = np.where(window_mask(edges, s.discharge_windows)[steps], dcap, 0.0)
            if dcap.any():
                d = cols.add(np.zeros(len(steps)), dcap,
                             dt[steps] * (w.cycling_per_kwh - price[steps] - w.early_per_kwh_hour * mid_h[steps]))
                net_r.append(steps)
                net_c.append(d)
                net_v.append(-np.ones(len(steps)))
                real_mask.append(np.full(len(steps), not s.virtual))
                site_of.append(s.site_id)
        taper = (s.taper_soc_kwh is not None and soc_known and not s.storage and s.capacity_kwh is not None
                 and float(s.capacity_kwh) > float(s.taper_soc_kwh) and pmax > 0)
        if (d is not None or s.storage or taper) and soc_known:
            # SoC state e_k after step k: reserve <= e_k <= capacity; e_k - e_{k-1} - (eta_c x - d/eta_d) dt = 0
            assert s.soc_kwh is not None and s.capacity_kwh is not None
            m = len(steps)
            soc0 = float(s.soc_kwh)
            e_lo = np.full(m, min(s.reserve_kwh, soc0))
            e_hi = np.full(m, max(float(s.capacity_kwh), soc0))
            if s.final_soc_kwh is not None:
                e_lo[-1] = max(e_lo[-1], min(float(s.final_soc_kwh), e_hi[-1]))
            e = cols.add(e_lo, e_hi, np.zeros(m))
            eta_c = min(max(s.charge_efficiency, 1e-3), 1.0)
            eta_d = min(max(s.discharge_efficiency, 1e-3), 1.0)
            rows = n_eq + np.arange(m)
            eq_r += [rows, rows, rows[1:]]
            eq_c += [e, x, e[:-1]]
            eq_v += [np.ones(m), -eta_c * dt[steps], -np.ones(m - 1)]
            if d is not None:
                eq_r.append(rows)
                eq_c.append(d)
                eq_v.append(dt[steps] / eta_d)
            b_eq += [soc0] + [0.0] * (m - 1)
            n_eq += m
            if d is not None and s.discharge_hold_h > 0:
                # the envelope's reserve rule: a discharge setpoint may run for its validity, so at most
                # (SoC at the step's start - reserve) / validity, per instant: d_k <= frac (e_{k-1} - reserve) / T
                f = frac[steps]
                hold = float(s.discharge_hold_h)
                rows = n_ub + np.arange(m)
                ub_r += [rows, rows[1:]]
                ub_c += [d, e[:-1]]
                ub_v += [np.full(m, hold), -f[1:]]
                b_h = -f * float(s.reserve_kwh)
                b_h[0] += f[0] * soc0
                b_ub.append(b_h)
                n_ub += m
            if taper:
                # at most the taper's power at the step's starting SoC: x_k <= frac (pmax - slope (e_{k-1} - tau))
                assert s.taper_soc_kwh is not None
                tau = float(s.taper_soc_kwh)
                slope = pmax * (1.0 - min(max(s.taper_floor, 0.0), 1.0)) / (float(s.capacity_kwh) - tau)
                f = frac[steps]
                rows = n_ub + np.arange(m)
                ub_r += [rows, rows[1:]]
                ub_c += [x, e[:-1]]
                ub_v += [np.ones(m), f[1:] * slope]
                b_t = f * (pmax + slope * tau)
                b_t[0] = max(0.0, b_t[0] - f[0] * slope * soc0)
                b_ub.append(b_t)
                n_ub += m
        if s.storage:
            index.append((s, steps, x, d, frac, -1))
            continue
        if surplus > 0:
            slack = cols.add(np.zeros(1), np.array([surplus]), np.zeros(1))
        else:
            slack = cols.add(np.zeros(1), np.array([energy]), np.array([w.shortfall_per_kwh]))
        # energy: sum (x - d) dt + slack = energy; each step's power applies setpoint_lag_ms late, the step
        # before's running on until then: over the window that cancels but for the last step, which loses it
        edt = dt[steps].copy()
        if s.setpoint_lag_ms > 0:
            edt[-1] = max(0.0, edt[-1] - s.setpoint_lag_ms / HOUR_MS / frac[steps[-1]])
        eq_r += [np.full(len(steps), n_eq), np.array([n_eq])]
        eq_c += [x, slack]
        eq_v += [edt, np.ones(1)]
        if d is not None:
            eq_r.append(np.full(len(steps), n_eq))
            eq_c.append(d)
            eq_v.append(-edt)
        b_eq.append(energy)
        n_eq += 1
        if d is not None and surplus == 0:
            # a charger stops charging once the request (grid side, net of export) is in: the net energy so far
            # never above it, so a plan cannot top a car up beyond its request to discharge it later
            m = len(steps)
            g = cols.add(np.full(m, -np.inf), np.full(m, energy), np.zeros(m))
            rows = n_eq + np.arange(m)
            eq_r += [rows, rows[1:], rows, rows]
            eq_c += [g, g[:-1], x, d]
            eq_v += [np.ones(m), -np.ones(m - 1), -edt, edt]
            b_eq += [0.0] * m
            n_eq += m
        index.append((s, steps, x, d, frac, int(slack[0])))

    nr = np.concatenate(net_r) if net_r else np.empty(0, int)
    nc = np.concatenate(net_c) if net_c else np.empty(0, int)
    nv = np.concatenate(net_v) if net_v else np.empty(0)

    def peak_rows(weight: float, entries: np.ndarray, steps: np.ndarray, under: np.ndarray = base) -> None:
        """A peak X >= floor costing ``weight`` per kW: under + net (of ``entries``) - X <= 0 at ``steps`` (a mask),
        ``under`` the base load."""
        nonlocal n_ub
        col = cols.add(np.array([max(0.0, req.peak_floor_kw)]), np.array([np.inf]), np.array([weight]))
        row = np.cumsum(steps) - 1  # the row of each step taken
        entries = entries & steps[nr]
        m = int(np.count_nonzero(steps))
        ub_r.extend([n_ub + row[nr[entries]], n_ub + np.arange(m)])
        ub_c.extend([nc[entries], np.full(m, col[0])])
        ub_v.extend([nv[entries], -np.ones(m)])
        b_ub.append(-under[steps])
        n_ub += m

    every, all_entries = np.ones(n, bool), np.ones(len(nr), bool)
    peak_rows(w.peak_per_kw, all_entries, every)  # the horizon's peak, after the sessions' own rows
    if w.flatten_per_kwh > 0 and w.flatten_levels > 0 and len(nr):
        # below the peak, a convex cost of the net load per step (K bands, the k-th costs k/K of the weight per kWh):
        # EV load goes to the valleys of the base load, not anywhere under the peak where a missed ramp breaks it
        k_lv = int(w.flatten_levels)
        low = float(max(0.0, np.min(base)))
        band = max(max(req.peak_floor_kw, float(np.max(base))) - low, 1.0) / k_lv
        hi_f = np.full(n * k_lv, band)
        hi_f[(k_lv - 1) * n:] = np.inf  # the top band takes whatever is above
        cost_f = np.repeat(np.arange(1, k_lv + 1) / k_lv, n) * np.tile(dt, k_lv) * w.flatten_per_kwh
        f_cols = cols.add(np.zeros(n * k_lv), hi_f, cost_f)
        ub_r += [n_ub + nr, n_ub + np.tile(np.arange(n), k_lv)]
        ub_c += [nc, f_cols]
        ub_v += [nv, -np.ones(n * k_lv)]
        b_ub.append(low - base)
        n_ub += n
    rm = np.concatenate(real_mask) if real_mask else np.empty(0, bool)
    if any(s.virtual for s in req.sessions) and w.actual_peak_per_kw > 0:
        peak_rows(w.actual_peak_per_kw, rm, every)  # the peak of the real sessions alone
    if w.near_peak_per_kw > 0 and len(nr):
        # the near-term peak, at the steps whose base load alone is above the running peak: a higher peak forecast
        # later does not make load there free now; where the base is below it, charging now costs no more than
        # later (a cost there would push charging out of the window at every plan, to the departures)
        near = np.nan_to_num(np.asarray(req.near_base_kw, dtype=float)) if len(req.near_base_kw) == n else base
        hot = (np.asarray(req.edges_ms[:-1]) < req.edges_ms[0] + w.near_peak_ms) & (near > req.peak_floor_kw)
        if hot.any():
            peak_rows(w.near_peak_per_kw, all_entries, hot, near)
    upper_w = w.upper_peak_per_kw
    if upper_w > 0 and len(req.upper_base_kw) == n and len(nr):
        # the peak against the upper bound: V2G energy is kept for, and charging kept from, where the load may peak
        peak_rows(upper_w, all_entries, every, np.nan_to_num(np.asarray(req.upper_base_kw, dtype=float)))
    # import limit (soft): base + net - v <= limit
    lim_steps = np.flatnonzero(np.isfinite(imp_lim))
    judge = np.nan_to_num(np.asarray(req.base_kw, dtype=float))
    lost = _lost_limits(judge[lim_steps], imp_lim[lim_steps])
    limit_lost = np.zeros(n, dtype=bool)
    limit_lost[lim_steps] = lost
    v_cost = np.where(lost, w.lost_limit_per_kwh, w.limit_violation_per_kwh) * dt[lim_steps]
    v = cols.add(np.zeros(len(lim_steps)), np.full(len(lim_steps), np.inf), v_cost)
    pos = np.full(n, -1)
    pos[lim_steps] = np.arange(len(lim_steps))
    keep = pos[nr] >= 0
    ub_r += [n_ub + pos[nr[keep]], n_ub + np.arange(len(lim_steps))]
    ub_c += [nc[keep], v]
    ub_v += [nv[keep], -np.ones(len(lim_steps))]
    b_ub.append(imp_lim[lim_steps] - base[lim_steps])
    n_ub += len(lim_steps)
    # export limit (soft): -(base + net) - u <= export_limit
    exp_steps = np.flatnonzero(np.isfinite(exp_lim))
    u = cols.add(np.zeros(len(exp_steps)), np.full(len(exp_steps), np.inf), w.limit_violation_per_kwh * dt[exp_steps])
    pos = np.full(n, -1)
    pos[exp_steps] = np.arange(len(exp_steps))
    keep = pos[nr] >= 0
    ub_r += [n_ub + pos[nr[keep]], n_ub + np.arange(len(exp_steps))]
    ub_c += [nc[keep], u]
    ub_v += [-nv[keep], -np.ones(len(exp_steps))]
    b_ub.append(np.maximum(exp_lim[exp_steps], 0.0) + base[exp_steps])
    n_ub += len(exp_steps)
    # sites: import / export limits (soft) and demand-charge peak
    site_cols: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for site in req.sites:
        pick = [i for i, sid in enumerate(site_of) if sid == site.site_id]
        sr = np.concatenate([net_r[i] for i in pick]) if pick else np.empty(0, int)
        sc = np.concatenate([net_c[i] for i in pick]) if pick else np.empty(0, int)
        sv = np.concatenate([net_v[i] for i in pick]) if pick else np.empty(0)
        site_cols[site.site_id] = (sr, sc, sv)
        sbase = np.nan_to_num(np.asarray(site.base_kw, dtype=float))
        for lim, sign in ((np.asarray(site.import_limit_kw, dtype=float), 1.0),
                          (np.asarray(site.export_limit_kw, dtype=float), -1.0)):
            steps = np.flatnonzero(np.isfinite(lim))
            if not len(steps):
                continue
            viol_c = cols.add(np.zeros(len(steps)), np.full(len(steps), np.inf),
                              w.limit_violation_per_kwh * dt[steps])
            pos = np.full(n, -1)
            pos[steps] = np.arange(len(steps))
            keep = pos[sr] >= 0
            ub_r += [n_ub + pos[sr[keep]], n_ub + np.arange(len(steps))]
            ub_c += [sc[keep], viol_c]
            ub_v += [sign * sv[keep], -np.ones(len(steps))]
            b_ub.append(np.maximum(lim[steps], 0.0) - sign * sbase[steps])
            n_ub += len(steps)
        if site.demand_charge_per_kw > 0 and len(sr):
            s_col = cols.add(np.array([max(0.0, site.peak_floor_kw)]), np.array([np.inf]),
                             np.array([site.demand_charge_per_kw]))
            ub_r += [n_ub + sr, n_ub + np.arange(n)]
            ub_c += [sc, np.full(n, s_col[0])]
            ub_v += [sv, -np.ones(n)]
            b_ub.append(-(sbase + max(0.0, site.peak_margin_kw)))
            n_ub += n

    c = np.concatenate(cols.cost)
    lo = np.concatenate(cols.lo)
    hi = np.concatenate(cols.hi)
    a_ub = sp.csr_matrix((np.concatenate(ub_v), (np.concatenate(ub_r), np.concatenate(ub_c))), shape=(n_ub, cols.n))
    a_eq = None
    beq = None
    if n_eq:
        a_eq = sp.csr_matrix((np.concatenate(eq_v), (np.concatenate(eq_r), np.concatenate(eq_c))),
                             shape=(n_eq, cols.n))
        beq = np.asarray(b_eq)
    return _Model(c, lo, hi, a_ub, np.concatenate(b_ub), a_eq, beq, index, limit_lost)


def _solve_scenarios(req: PlanRequest, m: _Model, limits: SolverLimits) -> np.ndarray | SolveFailure:
    """Solve ``m``; with other base-load scenarios (``req.scenario_base_kw``), one LP over all of them: each has its
    own schedules and peak, weighted by its share (``PlannerWeights.scenario_share``, split evenly), and every real
    session's first step (the setpoint sent now) is the same in all. The columns of ``m`` come first."""
    share = min(max(req.weights.scenario_share, 0.0), 1.0)
    n = req.n_steps
    alts = [np.nan_to_num(np.asarray(b, dtype=float)) for b in req.scenario_base_kw if len(b) == n]
    if not alts or share <= 0:
        return _highs(m.c, m.lo, m.hi, m.a_ub, m.b_ub, m.a_eq, m.b_eq, limits)
    models = [m] + [_model(req, b) for b in alts]
    probs = [1.0 - share] + [share / len(alts)] * len(alts)
    offsets = np.cumsum([0] + [mm.c.size for mm in models])
    eq_blocks = [mm.a_eq if mm.a_eq is not None else sp.csr_matrix((0, mm.c.size)) for mm in models]
    ties: list[tuple[int, int]] = []  # (column in m, column in a scenario)
    for k, mm in enumerate(models[1:], start=1):
        for (s, steps, x, d, _, _), (_, _, x_k, d_k, _, _) in zip(m.index, mm.index, strict=True):
            if s.virtual or not len(steps) or steps[0] != 0:
                continue
            ties.append((int(x[0]), int(offsets[k] + x_k[0])))
            if d is not None and d_k is not None:
                ties.append((int(d[0]), int(offsets[k] + d_k[0])))
    total = int(offsets[-1])
    rows = np.repeat(np.arange(len(ties)), 2)
    cols = np.asarray(ties, dtype=np.int64).reshape(-1)
    vals = np.tile([1.0, -1.0], len(ties))
    tie = sp.csr_matrix((vals, (rows, cols)), shape=(len(ties), total))
    a_eq = sp.vstack([sp.block_diag(eq_blocks, format="csr"), tie], format="csr")
    b_eq = np.concatenate([mm.b_eq if mm.b_eq is not None else np.zeros(0) for mm in models] + [np.zeros(len(ties))])
    return _highs(np.concatenate([p * mm.c for p, mm in zip(probs, models, strict=True)]),
                  np.concatenate([mm.lo for mm in models]), np.concatenate([mm.hi for mm in models]),
                  sp.block_diag([mm.a_ub for mm in models], format="csr"),
                  np.concatenate([mm.b_ub for mm in models]), a_eq, b_eq, limits)


def solve_lp(req: PlanRequest, limits: SolverLimits = SolverLimits()) -> Plan | None:
    """Solve the feeder LP; ``None`` if HiGHS fails or runs over ``limits``."""
    plan = solve_lp_or_failure(req, limits)
    return None if isinstance(plan, str) else plan


def solve_lp_or_failure(req: PlanRequest, limits: SolverLimits = SolverLimits()) -> Plan | SolveFailure:
    """Solve the feeder LP; the plan, or why HiGHS gave none."""
    import time

    t0 = time.perf_counter()
    edges = np.asarray(req.edges_ms, dtype=np.int64)
    n = len(edges) - 1
    dt = np.diff(edges) / HOUR_MS
    base = np.nan_to_num(np.asarray(req.base_kw, dtype=float))
    imp_lim = np.asarray(req.import_limit_kw, dtype=float)
    exp_lim = np.asarray(req.export_limit_kw, dtype=float)
    m = _model(req, base)
    sol = _solve_scenarios(req, m, limits)
    if isinstance(sol, str):
        return sol
    sol = sol[:m.c.size]
    c, index, limit_lost = m.c, m.index, m.limit_lost
    schedules: dict[str, np.ndarray] = {}
    status: dict[str, str] = {}
    shortfall: dict[str, float] = {}
    fleet = np.zeros(n)
    for s, steps, x, d, frac, slack_col in index:
        avg = np.zeros(n)
        if len(steps):
            avg[steps] = sol[x]
            if d is not None:
                avg[steps] -= sol[d]
        fleet += avg
        with np.errstate(divide="ignore", invalid="ignore"):
            inst = np.where(frac > 1e-9, avg / np.where(frac > 1e-9, frac, 1.0), 0.0)
        schedules[s.key] = inst
        short = float(sol[slack_col]) if slack_col >= 0 else max(0.0, float(s.energy_kwh))
        if s.energy_kwh < 0:
            short = 0.0
        shortfall[s.key] = short if short > 1e-6 else 0.0
        status[s.key] = "infeasible_request" if short > 1e-3 else "optimal"
    net = base + fleet
    viol = float(np.sum(np.maximum(net - imp_lim, 0.0) * dt) + np.sum(np.maximum(-net - exp_lim, 0.0) * dt))
    site_net, site_viol = _site_nets(req, schedules, edges)
    return Plan(
        plan_id=plan_id_of(req), feeder_id=req.feeder_id, edges_ms=tuple(int(e) for e in edges),
        schedules=schedules, status=status, shortfall_kwh=shortfall, peak_kw=float(np.max(net)) if n else 0.0,
        objective=float(c @ sol), solver="highs", reason="optimal", limit_violation_kwh=viol, fleet_kw=fleet,
        solve_seconds=time.perf_counter() - t0, site_net_kw=site_net, site_violation_kwh=site_viol,
        limit_lost=limit_lost,
    )


def _lost_limits(base: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Per step: its import limit is one the base load alone breaks at some step of the horizon.

    A limit level is judged as a whole (a demand-response event's lower limit apart from the everyday one):
    penalising only the steps where base load breaks it would make those steps the cheapest place for EV load.

    >>> _lost_limits(np.array([150.0, 190.0, 100.0, 80.0]), np.array([160.0, 160.0, 90.0, 90.0])).tolist()
    [True, True, True, True]
    >>> _lost_limits(np.array([150.0, 150.0, 80.0]), np.array([160.0, 160.0, 90.0])).tolist()
    [False, False, False]
    """
    level = np.round(limit, 6)
    return np.isin(level, level[base > limit + 1e-9])


def _site_nets(req: PlanRequest, schedules: dict[str, np.ndarray],
               edges: np.ndarray) -> tuple[dict[str, np.ndarray], float]:
    """Net import per step of each site (base + its sessions' step-average power) and its limit violations, kWh."""
    dt = np.diff(edges) / HOUR_MS
    out: dict[str, np.ndarray] = {}
    viol = 0.0
    for site in req.sites:
        net = np.nan_to_num(np.asarray(site.base_kw, dtype=float)).copy()
        for s in req.sessions:
            if s.site_id == site.site_id and s.key in schedules:
                net += schedules[s.key] * overlap_fraction(edges, s.arrival_ms, s.departure_ms)
        out[site.site_id] = net
        imp = np.asarray(site.import_limit_kw, dtype=float)
        exp = np.asarray(site.export_limit_kw, dtype=float)
        viol += float(np.sum(np.maximum(net - imp, 0.0) * dt) + np.sum(np.maximum(-net - exp, 0.0) * dt))
    return out, viol


def plan_feeder(req: PlanRequest, limits: SolverLimits = SolverLimits()) -> Plan:
    """Plan with the LP; fall back to least-laxity-first when HiGHS fails or runs over ``limits``
    (``Plan.solver_failure`` says why)."""
    plan = solve_lp_or_failure(req, limits)
    if not isinstance(plan, str):
        return plan
    from streams.dispatch.heuristic import plan_llf

    return replace(plan_llf(req), solver_failure=plan)
