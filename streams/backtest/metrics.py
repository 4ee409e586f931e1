"""What the chargers did given the emitted setpoints, the references, the safety audit and the figures (pure).

Charger model (the rule anyone can re-apply from ``--setpoints``): while its car is plugged in (per the
sessions file, ``arrival <= t < departure``) a charger applies its *latest* setpoint, the one with the
highest ``sequence`` among those with ``valid_from <= t``: its ``setpoint_kw`` while ``t < valid_until``,
then its planned ``schedule`` (the last point with ``start <= t``) while ``t < valid_from + schedule_ms``,
then its ``fallback_kw`` (the default fallback before any setpoint). The power is clipped to the car's
rating (discharge only for bidirectional cars, never below an empty battery) and charging stops when the
car has its requested energy (net of what it exported). Time is exact (piecewise constant between
setpoint, schedule, session and step boundaries); loads are step averages on the grid of ``step_ms``.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from streams.contracts.models import (
    ChargerRegistration,
    ChargerSetpoint,
    DemandForecast,
    GridSignal,
    IncentiveEvent,
    MeterReading,
    Settlement,
    SiteRegistration,
)
from streams.contracts.sessions import AcnSession
from streams.dispatch.planner import HOUR_MS
from streams.dispatch.state import FeederLimits
from streams.replay.importers import median_spacing
from streams.simulate.twin import command_at

__all__ = [
    "Grid",
    "SafetyViolation",
    "SessionOutcome",
    "SimResult",
    "audit_setpoints",
    "audit_sites",
    "base_load_kw",
    "feeder_figures",
    "forecast_errors",
    "incentive_figures",
    "limit_profile",
    "settlement_figures",
    "simulate_setpoints",
    "simulate_uncontrolled",
]

_EPS = 1e-9
CommandFn = Callable[[int], float]


@dataclass(frozen=True, slots=True)
class Grid:
    """Step grid ``[t0, t0 + n*step_ms)``."""

    t0: int
    step_ms: int
    n: int

    @classmethod
    def covering(cls, start_ms: int, end_ms: int, step_ms: int) -> Grid:
        """The epoch-aligned grid covering ``[start_ms, end_ms)``."""
        t0 = start_ms // step_ms * step_ms
        return cls(t0, step_ms, max(1, -(-(end_ms - t0) // step_ms)))

    @property
    def edges(self) -> np.ndarray:
        return self.t0 + self.step_ms * np.arange(self.n + 1, dtype=np.int64)

    @property
    def end(self) -> int:
        return self.t0 + self.n * self.step_ms


@dataclass(frozen=True, slots=True)
class SessionOutcome:
    """What one session got: net energy charged (kWh), energy exported (kWh), and its request."""

    session_id: str
    charger_id: str
    feeder_id: str
    requested_kwh: float
    delivered_kwh: float
    exported_kwh: float
    deliverable_kwh: float
    """min(request, rating × dwell): what full power from arrival would give."""
    open_at_end: bool = False
    """The car is still plugged in when the scored period ends (its request cannot be judged)."""
    storage: bool = False
    """A stationary battery: its power counts in the loads, but it is no driver's session (not scored for
    energy, its discharge not counted as V2G)."""
    charged_kwh: float = 0.0
    """Energy charged (grid side), kWh (kept for stationary batteries)."""


@dataclass
class SimResult:
    """Per-feeder EV load (kW, step averages, + import) and per-session outcomes."""

    grid: Grid
    ev_kw: dict[str, np.ndarray]
    sessions: list[SessionOutcome]
    min_soc_pct: dict[str, float] = field(default_factory=dict)
    """Lowest simulated SoC while discharging, per session (only sessions with SoC and capacity)."""


# --- the charger model ------------------------------------------------------------------------------

def _feeder(s: AcnSession, default: str) -> str:
    return s.feeder_id or default


def _run_session(s: AcnSession, grid: Grid, cut_points: Iterable[int], command: CommandFn, max_discharge_kw: float,
                 load: np.ndarray) -> tuple[float, float, float | None]:
    """Integrate one session; add its average kW per step to ``load``; (net kWh, exported kWh, min SoC %)."""
    a0, a1 = max(s.arrival, grid.t0), min(s.departure, grid.end)
    step = grid.step_ms
    first = (a0 - grid.t0) // step + 1
    last = (a1 - grid.t0 - 1) // step
    pts = {a0, a1, *(grid.t0 + k * step for k in range(first, last + 1))}
    pts.update(t for t in cut_points if a0 < t < a1)
    bounds = sorted(pts)
    net = exported = 0.0
    cap = s.capacity_kwh if s.capacity_kwh and s.capacity_kwh > 0 else None
    soc_kwh = (s.initial_soc_pct or 0.0) / 100.0 * cap if cap is not None and s.initial_soc_pct is not None else None
    min_soc: float | None = None
    step_h = step / HOUR_MS
    for a, b in itertools.pairwise(bounds):
        dt_h = (b - a) / HOUR_MS
        kw = command(a)
        if not math.isfinite(kw):
            kw = 0.0
        kw = min(kw, s.max_power_kw)
        if kw > 0:
            e = kw * dt_h if s.is_battery else min(kw * dt_h, max(0.0, s.requested_energy_kwh - net))
            if cap is not None and soc_kwh is not None:
                e = min(e, max(0.0, cap - soc_kwh))
        elif kw < 0:
            kw = max(kw, -max_discharge_kw)
            e = kw * dt_h
            if soc_kwh is not None:
                e = max(e, -max(0.0, soc_kwh))
            exported -= e
        else:
            e = 0.0
        if e == 0.0:
            continue
        net += e
        if soc_kwh is not None and cap is not None:
            soc_kwh += e
            if e < 0:
                pct = 100.0 * soc_kwh / cap
                min_soc = pct if min_soc is None else min(min_soc, pct)
        load[(a - grid.t0) // step] += e / step_h
    return net, exported, min_soc


def _outcome(s: AcnSession, feeder: str, net: float, exported: float, grid: Grid) -> SessionOutcome:
    dwell_h = (s.departure - s.arrival) / HOUR_MS
    open_end = s.departure > grid.end or (s.estimated_departure > s.departure and s.departure >= grid.end)
    return SessionOutcome(s.session_id, s.station_id, feeder, s.requested_energy_kwh, net, exported,
                          min(s.requested_energy_kwh, s.max_power_kw * dwell_h), open_end, storage=s.is_battery,
                          charged_kwh=net + exported)


def _discharge_kw(s: AcnSession, regs: Mapping[str, ChargerRegistration]) -> float:
    """Physical discharge capability of the car on its charger (0 for unidirectional ones)."""
    if not (s.bidirectional or s.is_battery):
        return 0.0
    reg = regs.get(s.station_id)
    return min(s.max_power_kw, reg.max_discharge_kw) if reg is not None else s.max_power_kw


class _Follower:
    """The command of one charger at increasing times, from its setpoints (see the module doc)."""

    def __init__(self, setpoints: Sequence[ChargerSetpoint], schedule_ms: int, default_fallback_kw: float) -> None:
        self.sps = sorted(setpoints, key=lambda sp: (sp.valid_from, sp.sequence))
        self.schedule_ms = schedule_ms
        self.default = default_fallback_kw
        self.i = 0
        self.best: ChargerSetpoint | None = None

    def cut_points(self) -> list[int]:
        out: list[int] = []
        for sp in self.sps:
            out += [sp.valid_from, sp.valid_until, sp.valid_from + self.schedule_ms]
            out += [p.start for p in sp.schedule]
        return out

    def __call__(self, t: int) -> float:
        if self.best is not None and self.i > 0 and self.sps[self.i - 1].valid_from > t:
            self.i, self.best = 0, None  # time went back (a new session): rescan
        while self.i < len(self.sps) and self.sps[self.i].valid_from <= t:
            sp = self.sps[self.i]
            if self.best is None or sp.sequence >= self.best.sequence:
                self.best = sp
            self.i += 1
        return command_at(self.best, t, self.schedule_ms, self.default)


def simulate_setpoints(sessions: Sequence[AcnSession], setpoints: Iterable[ChargerSetpoint], grid: Grid, *,
                       registrations: Mapping[str, ChargerRegistration] | None = None, schedule_ms: int = 4 * HOUR_MS,
                       default_fallback_kw: float = 0.0, default_feeder: str = "feeder-1") -> SimResult:
    """Simulate every session following its charger's setpoints (see the module doc).

    Parameters
    ----------
    sessions
        The sessions file (plug-in/out times, request, rating, V2G columns).
    setpoints
        Every setpoint the pipeline emitted (any order).
    grid
        Step grid of the load curves.
    registrations
        By charger id: discharge capability of bidirectional cars (default: their rating).
    schedule_ms
        How long after ``valid_from`` a setpoint's schedule may be followed (EVGRID_SETPOINT_SCHEDULE_HOURS).
    default_fallback_kw
        Power before a charger has any setpoint (EVGRID_FALLBACK_KW).
    """
    regs = registrations or {}
    by_charger: dict[str, list[ChargerSetpoint]] = defaultdict(list)
    for sp in setpoints:
        by_charger[sp.charger_id].append(sp)
    ev: dict[str, np.ndarray] = {}
    outcomes: list[SessionOutcome] = []
    min_soc: dict[str, float] = {}
    for s in sorted(sessions, key=lambda s: (s.station_id, s.arrival)):
        feeder = _feeder(s, default_feeder)
        load = ev.setdefault(feeder, np.zeros(grid.n))
        follower = _Follower(by_charger.get(s.station_id, []), schedule_ms, default_fallback_kw)
        net, exported, low = _run_session(s, grid, follower.cut_points(), follower, _discharge_kw(s, regs), load)
        outcomes.append(_outcome(s, feeder, net, exported, grid))
        if low is not None:
            min_soc[s.session_id] = low
    return SimResult(grid, ev, outcomes, min_soc)


def simulate_uncontrolled(sessions: Sequence[AcnSession], grid: Grid, default_feeder: str = "feeder-1") -> SimResult:
    """Every car at full power from arrival until it has its requested energy (or leaves); a stationary battery
    idles."""
    ev: dict[str, np.ndarray] = {}
    outcomes = []
    for s in sessions:
        feeder = _feeder(s, default_feeder)
        load = ev.setdefault(feeder, np.zeros(grid.n))
        full = 0.0 if s.is_battery else s.max_power_kw

        def command(_t: int, kw: float = full) -> float:
            return kw

        net, exported, _ = _run_session(s, grid, (), command, 0.0, load)
        outcomes.append(_outcome(s, feeder, net, exported, grid))
    return SimResult(grid, ev, outcomes)


# --- feeder inputs on the grid -------------------------------------------------------------------------

def base_load_kw(readings: Iterable[MeterReading], grid: Grid, default_feeder: str = "feeder-1", *,
                 by: Callable[[MeterReading], str | None] = lambda r: r.feeder_id) -> dict[str, np.ndarray]:
    """Per feeder (or per ``by(reading)``, e.g. its site), the sum over its meters of each meter's load, averaged
    per step.

    A reading stamped ``t`` is the meter's mean over its period *ending* at ``t`` (the ``MeterReading`` contract):
    from its previous reading, or for the first one its median spacing before ``t``. Before that a meter counts
    0 kW; after its last reading, that reading's value.
    """
    per_meter: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for r in readings:
        per_meter[(by(r) or default_feeder, r.meter_id)].append((r.timestamp, r.active_power_kw))
    out: dict[str, np.ndarray] = {}
    fine = 12  # sub-samples per step for the average
    t = grid.t0 + (np.arange(grid.n * fine) + 0.5) * (grid.step_ms / fine)
    for (feeder, _), pts in per_meter.items():
        pts.sort()
        ts = np.array([p[0] for p in pts], dtype=float)
        kw = np.array([p[1] for p in pts], dtype=float)
        first = ts[0] - median_spacing(p[0] for p in pts)
        idx = np.minimum(np.searchsorted(ts, t, side="left"), len(ts) - 1)  # the first reading at or after t
        vals = np.where(t > first, kw[idx], 0.0)
        out.setdefault(feeder, np.zeros(grid.n))
        out[feeder] += vals.reshape(grid.n, fine).mean(axis=1)
    return out


def limit_profile(grid: Grid, import_limit_kw: float | None, export_limit_kw: float | None,
                  signals: Iterable[GridSignal], feeder_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Import and export limit (kW) per step: defaults (None = unlimited) under the feeder's grid signals."""
    lim = FeederLimits(math.inf if import_limit_kw is None else import_limit_kw,
                       math.inf if export_limit_kw is None else export_limit_kw, 0.0)
    lim = lim.with_signals([sig for sig in signals if sig.feeder_id == feeder_id])
    imp, exp, _ = lim.profile(grid.edges)
    return imp, exp


# --- references ------------------------------------------------------------------------------------------

# --- safety audit ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SafetyViolation:
    """One emitted setpoint (or schedule point of it) that breaks a rule."""

    charger_id: str
    sequence: int
    at_ms: int
    rule: str
    detail: str


def _plugged(sessions: Sequence[AcnSession], t: int) -> AcnSession | None:
    for s in sessions:
        if s.arrival <= t < s.departure:
            return s
    return None


def _export_rating_kw(reg: ChargerRegistration, consent: bool) -> float:
    """The rule as written (docs/dispatch.md), not the envelope's code: a charger may discharge into the grid only
    if it is bidirectional on a ``parallel_exporting`` site with a positive approved export limit and its driver
    consented (V2G enrolment or ``consent``: an accepted export offer; a stationary battery always), and then
    no more than the smaller of its discharge rating and that limit, kW."""
    if not (reg.bidirectional and reg.interconnection_class == "parallel_exporting"):
        return 0.0
    if not (consent or reg.v2g_enrolled or reg.asset_type == "stationary_battery"):
        return 0.0
    return max(0.0, min(reg.max_discharge_kw, reg.export_limit_kw))


def audit_setpoints(setpoints: Iterable[ChargerSetpoint], registrations: Mapping[str, ChargerRegistration],
                    sessions: Sequence[AcnSession], *, min_soc_pct: Mapping[str, float] | None = None,
                    reserve_soc_pct: float = 30.0, export_offers: Iterable[IncentiveEvent] = (),
                    accepted_offer_ids: Iterable[str] = (), tol_kw: float = 1e-3,
                    battery_min_soc_pct: float = 10.0) -> list[SafetyViolation]:
    """Check every setpoint and schedule point against the dispatch rules as written (docs/dispatch.md), sharing
    no code with the envelope (:mod:`streams.dispatch.safety`, :mod:`streams.dispatch.site_rules`).

    Rules: the charger is registered; ``valid_until > valid_from``; ``0 <= fallback_kw <=`` charge limit;
    power ``<=`` the charge limit (registration, and the plugged-in car's rating); discharge only where the
    site is ``parallel_exporting``, the charger bidirectional and the driver enrolled (or holding an accepted
    export offer covering the time), and never beyond the approved export limit; a discharged session's
    simulated SoC never below its reserve (``min_soc_pct`` from :func:`simulate_setpoints`); a stationary
    battery's floor is its registered ``min_soc_pct``, else ``battery_min_soc_pct``.
    """
    by_charger: dict[str, list[AcnSession]] = defaultdict(list)
    for s in sessions:
        by_charger[s.station_id].append(s)
    accepted = set(accepted_offer_ids)
    windows: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for o in export_offers:
        if o.action == "export" and o.offer_id in accepted:
            windows[o.charger_id].append((o.window_start, o.window_end))
    out: list[SafetyViolation] = []
    discharged: set[str] = set()
    for sp in setpoints:
        def bad(rule: str, detail: str, at: int, sp: ChargerSetpoint = sp) -> None:
            out.append(SafetyViolation(sp.charger_id, sp.sequence, at, rule, detail))

        reg = registrations.get(sp.charger_id)
        if reg is None:
            bad("unknown_charger", "setpoint for a charger that is not registered", sp.valid_from)
            continue
        if sp.valid_until <= sp.valid_from:
            bad("validity", f"valid_until {sp.valid_until} <= valid_from {sp.valid_from}", sp.valid_from)
        hi_reg = max(0.0, reg.max_charge_kw)
        if not 0.0 <= sp.fallback_kw <= hi_reg + tol_kw:
            bad("fallback", f"fallback {sp.fallback_kw} kW outside [0, {hi_reg}]", sp.valid_from)
        points = [(sp.valid_from, sp.setpoint_kw)] + [(max(p.start, sp.valid_from), p.kw) for p in sp.schedule]
        for t, kw in points:
            car = _plugged(by_charger.get(sp.charger_id, []), t)
            hi = min(hi_reg, car.max_power_kw) if car is not None else hi_reg
            if not math.isfinite(kw):
                bad("not_finite", f"{kw}", t)
                continue
            if kw > hi + tol_kw:
                bad("above_charge_limit", f"{kw} kW > {hi} kW", t)
            if kw < -tol_kw:
                offer_ok = any(a <= t < b for a, b in windows.get(sp.charger_id, []))
                lo = _export_rating_kw(reg, consent=offer_ok)
                behind = reg.bidirectional and reg.interconnection_class == "parallel_non_exporting"
                exporting = reg.bidirectional and reg.interconnection_class == "parallel_exporting" \
                    and reg.export_limit_kw > 0 and reg.max_discharge_kw > 0
                if behind:
                    pass  # V2H / V2B: the site-level audit (audit_sites) checks the site never exports
                elif not exporting:
                    bad("export_not_allowed", f"{kw} kW on a {reg.interconnection_class} site "
                        f"(bidirectional={reg.bidirectional})", t)
                elif not (reg.v2g_enrolled or reg.asset_type == "stationary_battery" or offer_ok):
                    bad("not_enrolled", f"{kw} kW without V2G enrolment or an accepted export offer", t)
                elif -kw > lo + tol_kw:
                    bad("above_export_limit", f"{-kw} kW > approved {lo} kW", t)
                if car is not None:
                    discharged.add(car.session_id)
    for sid in sorted(discharged):
        low = (min_soc_pct or {}).get(sid)
        s = next(x for x in sessions if x.session_id == sid)
        floor = reserve_soc_pct
        if s.is_battery:
            reg = registrations.get(s.station_id)
            floor = reg.min_soc_pct if reg is not None and reg.min_soc_pct is not None else battery_min_soc_pct
        if low is not None and low < floor - 1e-6:
            out.append(SafetyViolation(s.station_id, -1, s.arrival, "below_reserve",
                                       f"session {sid} discharged to {low:.1f} % < reserve {floor} %"))
    return out


_OPENNESS = {"non_parallel": 0, "parallel_non_exporting": 1, "parallel_exporting": 2}


def audit_sites(setpoints: Iterable[ChargerSetpoint], registrations: Mapping[str, ChargerRegistration],
                sites: Mapping[str, SiteRegistration], sessions: Sequence[AcnSession],
                readings: Sequence[MeterReading] = (), *, schedule_ms: int, meter_stale_ms: int = 30 * 60_000,
                tol_kw: float = 1e-2) -> list[SafetyViolation]:
    """Site-level breaches at the point of interconnection (rules re-derived here, not from the envelope).

    A site's class is the least permissive of its SiteRegistration and its chargers' registrations; its
    export limit the smallest approved one (0 unless ``parallel_exporting``), its import limit the smallest
    given. At every time any setpoint, schedule point or session of the site starts or ends, each plugged-in
    charger applies its newest setpoint (``setpoint_kw`` while valid, then its schedule for ``schedule_ms``
    from ``valid_from``, then its fallback); the site's net power is their sum plus the site meter reading
    in force (not older than ``meter_stale_ms``; none: 0). Net export above the limit is ``site_export``,
    net import above the import limit (while the fleet charges) ``site_import``: one violation per episode.
    """
    site_of = {cid: r.site_id for cid, r in registrations.items() if r.active}
    by_site: dict[str, list[str]] = defaultdict(list)
    for cid, sid in sorted(site_of.items()):
        by_site[sid].append(cid)
    sps: dict[str, list[ChargerSetpoint]] = defaultdict(list)
    for sp in setpoints:
        if sp.charger_id in site_of:
            sps[sp.charger_id].append(sp)
    cars: dict[str, list[AcnSession]] = defaultdict(list)
    for s in sessions:
        cars[s.station_id].append(s)
    meters: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for m in readings:
        if m.site_id is not None:
            meters[m.site_id].append((m.timestamp, m.active_power_kw))
    out: list[SafetyViolation] = []
    for sid, cids in sorted(by_site.items()):
        regs = [registrations[c] for c in cids]
        site = sites.get(sid)
        classes = [r.interconnection_class for r in regs] + ([site.interconnection_class] if site else [])
        cls = min(classes, key=_OPENNESS.__getitem__)
        approved = [r.export_limit_kw for r in regs if r.interconnection_class == "parallel_exporting"]
        if site is not None:
            approved.append(site.export_limit_kw)
        export_limit = min(approved) if cls == "parallel_exporting" and approved else 0.0
        imports = [r.site_import_limit_kw for r in regs if r.site_import_limit_kw is not None]
        if site is not None and site.import_limit_kw is not None:
            imports.append(site.import_limit_kw)
        import_limit = min(imports) if imports else math.inf
        for c in cids:
            sps[c].sort(key=lambda sp: sp.sequence)
        times: set[int] = set()
        for c in cids:
            for sp in sps[c]:
                times.update((sp.valid_from, sp.valid_until, sp.valid_from + schedule_ms,
                              *(p.start for p in sp.schedule)))
            for car in cars[c]:
                times.update((car.arrival, car.departure))
        mtr = sorted(meters.get(sid, []))
        times.update(t for t, _ in mtr)
        times.update(t + meter_stale_ms + 1 for t, _ in mtr)  # when a reading goes stale
        open_export = open_import = False
        for t in sorted(times):
            fleet = 0.0
            for c in cids:
                if any(car.arrival <= t < car.departure for car in cars[c]):
                    fleet += _applied_kw(sps[c], t, schedule_ms)
            own = 0.0
            for mt, kw in mtr:
                if mt <= t:
                    own = kw if t - mt <= meter_stale_ms else 0.0
            net = fleet + own
            bad_export = -net > export_limit + tol_kw and fleet < 0
            bad_import = net > import_limit + tol_kw and fleet > 0
            if bad_export and not open_export:
                out.append(SafetyViolation(sid, -1, t, "site_export", f"site {sid} ({cls}) exports {-net:.3f} kW "
                                                                      f"> {export_limit} kW"))
            if bad_import and not open_import:
                out.append(SafetyViolation(sid, -1, t, "site_import", f"site {sid} imports {net:.3f} kW > "
                                                                      f"{import_limit} kW"))
            open_export, open_import = bad_export, bad_import
    return out


def _applied_kw(sps: Sequence[ChargerSetpoint], t: int, schedule_ms: int) -> float:
    """What a charger applies at ``t`` under the newest setpoint with ``valid_from <= t`` (0 before any)."""
    cur = None
    for sp in sps:
        if sp.valid_from <= t:
            cur = sp
    if cur is None:
        return 0.0
    if t < cur.valid_until:
        return cur.setpoint_kw
    if t < cur.valid_from + schedule_ms:
        kw = None
        for p in cur.schedule:
            if p.start <= t:
                kw = p.kw
        if kw is not None:
            return kw
    return cur.fallback_kw


# --- figures ----------------------------------------------------------------------------------------------

def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


def feeder_figures(*, grid: Grid, controlled: SimResult, uncontrolled: SimResult, optimal_ev_kw: np.ndarray | None,
                   optimal_delivered_kwh: float, base_kw: np.ndarray | None, import_limit_kw: np.ndarray,
                   export_limit_kw: np.ndarray, feeder_id: str | None,
                   safety_violations: int) -> dict[str, float | int | None]:
    """The report figures of one feeder (``feeder_id``) or of all feeders (``None``, loads summed).
    ``optimal_ev_kw=None``: the optimum was not computed, its figures are ``None``."""
    def ev(sim: SimResult) -> np.ndarray:
        if feeder_id is not None:
            return sim.ev_kw.get(feeder_id, np.zeros(grid.n))
        return np.sum(list(sim.ev_kw.values()), axis=0) if sim.ev_kw else np.zeros(grid.n)

    base = np.zeros(grid.n) if base_kw is None else base_kw
    net = base + ev(controlled)
    unc = base + ev(uncontrolled)
    opt = None if optimal_ev_kw is None else base + optimal_ev_kw
    dt_h = grid.step_ms / HOUR_MS
    mine = [o for o in controlled.sessions if feeder_id is None or o.feeder_id == feeder_id]
    outs = [o for o in mine if not o.storage]  # drivers' sessions; batteries count in the loads only
    stores = [o for o in mine if o.storage]
    req = sum(o.requested_kwh for o in outs)
    got = sum(min(o.delivered_kwh, o.requested_kwh) for o in outs)
    closed = [o for o in outs if not o.open_at_end]
    able = sum(o.deliverable_kwh for o in closed)
    got_closed = sum(min(o.delivered_kwh, o.requested_kwh) for o in closed)
    over = np.maximum(0.0, net - import_limit_kw) + np.maximum(0.0, -net - export_limit_kw)
    peak = float(net.max()) if grid.n else 0.0
    short = [o for o in closed if o.delivered_kwh < o.deliverable_kwh - 1e-3]
    return {
        "peak_kw": _r(peak),
        "energy_requested_kwh": _r(req),
        "energy_delivered_kwh": _r(got),
        "energy_delivered_pct": _r(100.0 * got / req if req else 100.0, 4),
        "energy_deliverable_kwh": _r(able),
        "energy_delivered_pct_of_deliverable": _r(100.0 * got_closed / able if able else 100.0, 4),
        "sessions": len(outs),
        "sessions_open_at_end": len(outs) - len(closed),
        "sessions_short": len(short),
        "v2g_exported_kwh": _r(sum(o.exported_kwh for o in outs)),
        "battery_discharged_kwh": _r(sum(o.exported_kwh for o in stores)),
        "battery_charged_kwh": _r(sum(o.charged_kwh for o in stores)),
        "uncontrolled_peak_kw": _r(unc.max() if grid.n else 0.0),
        "optimal_peak_kw": None if opt is None else _r(opt.max() if grid.n else 0.0),
        "optimal_energy_delivered_kwh": None if opt is None else _r(optimal_delivered_kwh),
        "limit_violation_kwh": _r(float(over.sum()) * dt_h),
        "limit_violation_steps": int((over > 1e-6).sum()),
        "safety_violations": int(safety_violations),
        "load_factor": _r(float(np.maximum(net, 0.0).mean()) / peak if peak > 0 else 0.0, 4),
        "ev_energy_kwh": _r(float(ev(controlled).sum()) * dt_h),
    }


def forecast_errors(forecasts: Iterable[DemandForecast], actual_kw: np.ndarray, grid: Grid,
                    horizons_minutes: Sequence[int] = (15, 60, 240, 1440),
                    season_ms: int = 24 * HOUR_MS) -> dict[str, dict[str, float | int]]:
    """MAE and sMAPE of forecast points by horizon (minutes ahead of issue = step × point number) vs actuals.

    ``actual_kw`` is the feeder's base load on ``grid``; a point is scored when its interval lies inside
    the grid. The seasonal-naive baseline predicts the actual of ``season_ms`` earlier.
    """
    errs: dict[int, list[tuple[float, float, float]]] = defaultdict(list)
    wanted = set(horizons_minutes)
    for fc in forecasts:
        for p in fc.points:
            h = p.step * fc.step_ms // 60_000
            if h not in wanted:
                continue
            a, b = (p.start - grid.t0) // grid.step_ms, (p.start + fc.step_ms - grid.t0) // grid.step_ms
            na, nb = a - season_ms // grid.step_ms, b - season_ms // grid.step_ms
            if a < 0 or b > grid.n or b <= a:
                continue
            act = float(actual_kw[a:b].mean())
            naive = float(actual_kw[na:nb].mean()) if na >= 0 else math.nan
            errs[h].append((p.kw, act, naive))
    out: dict[str, dict[str, float | int]] = {}
    for h in sorted(errs):
        arr = np.array(errs[h])
        fk, ak, nv = arr[:, 0], arr[:, 1], arr[:, 2]
        denom = np.abs(fk) + np.abs(ak)
        smape = np.where(denom > 0, 2 * np.abs(fk - ak) / np.where(denom > 0, denom, 1), 0.0)
        ok = np.isfinite(nv)
        out[str(h)] = {"points": len(arr), "mae_kw": _r(np.abs(fk - ak).mean()),
                       "smape_pct": _r(100 * smape.mean()),
                       "naive_mae_kw": _r(np.abs(nv[ok] - ak[ok]).mean()) if ok.any() else math.nan,
                       "naive_points": int(ok.sum())}
    return out


def incentive_figures(offers: Iterable[IncentiveEvent], accepted_offer_ids: Iterable[str] = ()) -> dict[str, object]:
    """Offers made and accepted (count, expected kWh, compensation) by action."""
    acc = set(accepted_offer_ids)
    offers = list(offers)
    by_action = Counter(o.action for o in offers)
    return {
        "offered": len(offers),
        "offered_by_action": dict(sorted(by_action.items())),
        "offered_kwh": _r(sum(o.expected_kwh for o in offers)),
        "offered_compensation": _r(sum(o.compensation for o in offers), 2),
        "accepted": sum(o.offer_id in acc for o in offers),
        "accepted_cost": _r(sum(o.compensation for o in offers if o.offer_id in acc), 2),
    }


def settlement_figures(settlements: Iterable[Settlement]) -> dict[str, float | int]:
    """Count, exported kWh and amount of the settlements emitted."""
    sts = list(settlements)
    return {"count": len(sts), "exported_kwh": _r(sum(s.exported_kwh for s in sts)),
            "amount": _r(sum(s.amount for s in sts), 2)}
