"""The perfect-foresight reference: one LP over the whole period (the dispatch planner's ``solve_lp``, HiGHS).

Every session is known in advance, and the optimum plays by the rules the dispatcher plays by: a charger's
discharge needs V2G enrolment, a bidirectional car with a known SoC and capacity, and is bounded per charger by
its rating and export limit under its site's strictest rules (:func:`streams.dispatch.site_rules.site_rules`);
each site's net export is bounded by its approved limit (0 for a non-exporting site, whose discharge can only
cover the site's own metered load) and its net import by its import limit; the car keeps the SoC reserve; the
feeder's export limit holds. What it minimises is the planner's objective (peak net import first). Stationary
batteries (``asset_type=stationary_battery`` rows) are left out: the optimum is the cars' alone.

With ``physics`` (a closed-loop run: the charger twins' :class:`~streams.simulate.twin.TwinConfig`) the optimum
also obeys the cars' physics the twins score by: charging tapers above the taper SoC, and the battery moves by the
charge and discharge efficiencies, for every session whose SoC and capacity are known. Without it (open-loop runs,
whose charger model has neither) a car charges at its rating up to its request, and a discharging car's SoC moves
by the grid-side energy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from streams.backtest.metrics import Grid, base_load_kw
from streams.contracts.models import ChargerRegistration, MeterReading, SiteRegistration
from streams.contracts.sessions import AcnSession
from streams.dispatch.planner import PlanRequest, PlanSession, PlanSite, SolverLimits, solve_lp
from streams.dispatch.safety import discharge_limit_kw
from streams.dispatch.site_rules import site_rules
from streams.dispatch.state import ChargerInfo, charger_from_registration
from streams.simulate.twin import TwinConfig

__all__ = ["OPTIMUM_ITERATION_LIMIT", "optimal_load"]

OPTIMUM_ITERATION_LIMIT = 10_000_000
"""Simplex iterations of the one whole-period LP: the deterministic bound (the time limit is a hang guard)."""


def _chargers(registrations: Mapping[str, ChargerRegistration], sites: Mapping[str, SiteRegistration]
              ) -> dict[str, ChargerInfo]:
    """Each registered charger under its site's strictest rules (as the dispatcher holds them)."""
    infos = {cid: charger_from_registration(r) for cid, r in registrations.items()}
    out = {}
    for cid, info in infos.items():
        rules = site_rules(info.site_id, sites.get(info.site_id), infos.values())
        out[cid] = replace(info, interconnection_class=rules.interconnection_class,
                           export_limit_kw=rules.export_limit_kw, site_import_limit_kw=rules.import_limit_kw)
    return out


def optimal_load(sessions: Sequence[AcnSession], grid: Grid, base_kw: np.ndarray | None = None, *,
                 registrations: Mapping[str, ChargerRegistration] | None = None, reserve_soc_pct: float = 30.0,
                 export_limit_kw: np.ndarray | None = None, sites: Mapping[str, SiteRegistration] | None = None,
                 site_readings: Iterable[MeterReading] = (), time_limit_s: float = 600.0,
                 physics: TwinConfig | None = None) -> tuple[np.ndarray, float]:
    """(EV load kW per step, energy delivered kWh) of the perfect-foresight plan of ``sessions`` on ``grid``.

    ``base_kw`` is the feeder's other load per step, ``export_limit_kw`` its export limit per step (None: none);
    ``registrations`` and ``sites`` give the rules (a session of an unregistered charger only charges);
    ``site_readings`` (site meters, ``site_id`` set) give each non-exporting site's own load, the most its
    chargers may discharge behind the meter. Raises ``RuntimeError`` if HiGHS fails.
    """
    chargers = _chargers(registrations or {}, sites or {})
    by_site: dict[str, list[MeterReading]] = {}
    for r in site_readings:
        if r.site_id is not None:
            by_site.setdefault(r.site_id, []).append(r)
    own_by_site = {sid: sum(base_load_kw(rs, grid).values(), np.zeros(grid.n)) for sid, rs in by_site.items()}
    base = np.zeros(grid.n) if base_kw is None else np.asarray(base_kw, dtype=float)
    n = grid.n
    ps = []
    used: dict[str, list[ChargerInfo]] = {}
    sessions = [s for s in sessions if not s.is_battery]
    for s in sessions:
        ch = chargers.get(s.station_id)
        dis = 0.0
        soc = cap = None
        reserve = 0.0
        if ch is not None and s.bidirectional and s.capacity_kwh and s.initial_soc_pct is not None:
            btm = ch.behind_the_meter and ch.site_id in own_by_site  # own load known: V2B up to it
            dis = discharge_limit_kw(ch, None, site_headroom_kw=ch.max_discharge_kw if btm else None)
            cap = s.capacity_kwh
            soc = s.initial_soc_pct / 100.0 * cap
            reserve = reserve_soc_pct / 100.0 * cap
        if ch is not None:
            used.setdefault(ch.site_id, []).append(ch)
        p = PlanSession(key=s.session_id, arrival_ms=s.arrival, departure_ms=s.departure,
                        energy_kwh=s.requested_energy_kwh, max_charge_kw=s.max_power_kw,
                        max_discharge_kw=dis if soc is not None else 0.0, soc_kwh=soc, capacity_kwh=cap,
                        reserve_kwh=reserve, site_id=ch.site_id if ch is not None else None)
        if physics is not None and s.capacity_kwh and s.initial_soc_pct is not None:  # every car of known SoC
            p = replace(p, soc_kwh=s.initial_soc_pct / 100.0 * s.capacity_kwh, capacity_kwh=s.capacity_kwh,
                        charge_efficiency=physics.charge_efficiency,
                        discharge_efficiency=physics.discharge_efficiency,
                        taper_soc_kwh=physics.taper_soc_pct / 100.0 * s.capacity_kwh, taper_floor=physics.taper_floor)
        ps.append(p)
    plan_sites = []
    for sid, chs in sorted(used.items()):
        rules = site_rules(sid, (sites or {}).get(sid), chs)
        imp = math.inf if rules.import_limit_kw is None else rules.import_limit_kw
        own_kw = own_by_site.get(sid, np.zeros(n))
        plan_sites.append(PlanSite(sid, tuple(own_kw.tolist()), (imp,) * n, (rules.export_limit_kw,) * n))
    exp = tuple(export_limit_kw.tolist()) if export_limit_kw is not None else (math.inf,) * n
    req = PlanRequest("optimum", tuple(int(e) for e in grid.edges), tuple(base.tolist()), (math.inf,) * n, exp,
                      (0.0,) * n, tuple(ps), sites=tuple(plan_sites))
    plan = solve_lp(req, SolverLimits(iteration_limit=OPTIMUM_ITERATION_LIMIT, time_limit_s=time_limit_s))
    if plan is None:
        raise RuntimeError("perfect-foresight LP failed")
    load = np.zeros(n)
    for sched in plan.schedules.values():
        load += np.asarray(sched, dtype=float)
    delivered = float(sum(s.requested_energy_kwh for s in sessions) - sum(plan.shortfall_kwh.values()))
    return load, delivered
