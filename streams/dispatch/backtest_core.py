"""Event-ordered offline backtest of one feeder's sessions through :class:`FeederDispatcher`.

The simulator turns sessions into registrations and telemetry in event order; at every step the
dispatcher sees only sessions that have arrived (their requested energy and departure) and its own
forecast of arrivals, emits setpoints, and each car applies its latest valid setpoint (capped by its
rating and what it still needs). References on the same input: uncontrolled charging (full power from
arrival) and the perfect-foresight optimum (one LP over the whole period).
"""

from __future__ import annotations

import csv
import datetime as dt
import time
from dataclasses import dataclass, field

import numpy as np

from streams.contracts.models import ChargerRegistration, ChargerSetpoint, ChargerTelemetry
from streams.dispatch.dispatcher import DispatchConfig, FeederDispatcher
from streams.dispatch.planner import HOUR_MS, PlanRequest, PlanSession, solve_lp

__all__ = [
    "BacktestResult",
    "SimSession",
    "deliverable_kwh",
    "load_sessions_csv",
    "perfect_foresight_peak",
    "run_backtest",
    "uncontrolled_peak",
]


@dataclass(frozen=True, slots=True)
class SimSession:
    """One historical session (ACN-Data form)."""

    session_id: str
    charger_id: str
    arrival_ms: int
    departure_ms: int
    energy_kwh: float
    max_kw: float


def _ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def load_sessions_csv(path: str) -> list[SimSession]:
    """Sessions from a CSV with the columns of ``caltech_2019-03_sessions.csv``, ordered by arrival."""
    with open(path, newline="") as f:
        rows = [SimSession(r["session_id"], r["station_id"], _ms(r["arrival_utc"]),
                           _ms(r.get("estimated_departure_utc") or r["departure_utc"]),
                           float(r["requested_energy_kwh"]), float(r["max_power_kw"])) for r in csv.DictReader(f)]
    return sorted(rows, key=lambda s: (s.arrival_ms, s.session_id))


def deliverable_kwh(sessions: list[SimSession]) -> float:
    """Most energy physically deliverable: min(request, rating × dwell) per session."""
    return float(sum(min(s.energy_kwh, s.max_kw * (s.departure_ms - s.arrival_ms) / HOUR_MS) for s in sessions))


def uncontrolled_peak(sessions: list[SimSession], step_ms: int) -> tuple[float, float]:
    """(peak kW, delivered kWh) when every car charges at full power from arrival."""
    t0 = min(s.arrival_ms for s in sessions) // step_ms * step_ms
    n = (max(s.departure_ms for s in sessions) - t0) // step_ms + 1
    load = np.zeros(n)
    dt_h = step_ms / HOUR_MS
    delivered = 0.0
    for s in sessions:
        e = s.energy_kwh
        k = (s.arrival_ms - t0) // step_ms
        while e > 1e-9 and k < n and t0 + k * step_ms < s.departure_ms:
            p = min(s.max_kw, e / dt_h)
            load[k] += p
            e -= p * dt_h
            k += 1
        delivered += s.energy_kwh - e
    return float(load.max()), delivered


def perfect_foresight_peak(sessions: list[SimSession], step_ms: int,
                           time_limit_s: float = 600.0) -> tuple[float, float]:
    """(peak kW, delivered kWh) of one LP over the whole period knowing every session in advance."""
    t0 = min(s.arrival_ms for s in sessions) // step_ms * step_ms
    t1 = max(s.departure_ms for s in sessions)
    edges = t0 + step_ms * np.arange((t1 - t0) // step_ms + 2)
    n = len(edges) - 1
    req = PlanRequest(
        "pf", tuple(int(e) for e in edges), (0.0,) * n, (float("inf"),) * n, (float("inf"),) * n, (0.2,) * n,
        tuple(PlanSession(key=s.session_id, arrival_ms=s.arrival_ms, departure_ms=s.departure_ms,
                          energy_kwh=s.energy_kwh, max_charge_kw=s.max_kw) for s in sessions))
    plan = solve_lp(req, time_limit_s)
    if plan is None:
        raise RuntimeError("perfect-foresight LP failed")
    return plan.peak_kw, float(sum(s.energy_kwh for s in sessions) - sum(plan.shortfall_kwh.values()))


@dataclass
class BacktestResult:
    """Figures of one backtest run."""

    peak_kw: float
    energy_requested_kwh: float
    energy_delivered_kwh: float
    n_plans: int
    n_fallbacks: int
    n_setpoints: int
    plan_seconds: float
    wall_seconds: float
    load_kw: list[float] = field(default_factory=list)
    setpoints: list[ChargerSetpoint] = field(default_factory=list)

    @property
    def energy_delivered_pct(self) -> float:
        return 100.0 * self.energy_delivered_kwh / self.energy_requested_kwh if self.energy_requested_kwh else 100.0


def _registration(s: SimSession, feeder_id: str, t_ms: int) -> ChargerRegistration:
    return ChargerRegistration(
        charger_id=s.charger_id, feeder_id=feeder_id, site_id=feeder_id, customer_id=s.charger_id,
        bidirectional=False, inverter_location="offboard", interconnection_class="parallel_non_exporting",
        max_charge_kw=s.max_kw, registered_at=t_ms)


def run_backtest(sessions: list[SimSession], step_ms: int, config: DispatchConfig,
                 feeder_id: str = "acn", keep_setpoints: bool = False) -> BacktestResult:
    """Replay ``sessions`` in event order through a :class:`FeederDispatcher` at ``step_ms`` steps."""
    wall0 = time.perf_counter()
    disp = FeederDispatcher(feeder_id, config)
    t0 = min(s.arrival_ms for s in sessions) // step_ms * step_ms
    t_end = max(s.departure_ms for s in sessions)
    dt_h = step_ms / HOUR_MS
    arrivals = sorted(sessions, key=lambda s: (s.arrival_ms, s.session_id))
    nxt = 0
    active: dict[str, tuple[SimSession, float]] = {}  # charger -> (session, delivered kWh)
    registered: set[str] = set()
    latest: dict[str, ChargerSetpoint] = {}
    delivered_total = 0.0
    loads: list[float] = []
    kept: list[ChargerSetpoint] = []
    n_sp = 0
    plan_s = 0.0
    now = t0
    while now < t_end:
        # departures, then arrivals, then telemetry of every plugged-in car
        for cid, (s, got) in list(active.items()):
            if s.departure_ms <= now:
                delivered_total += got
                del active[cid]
                disp.on_telemetry(ChargerTelemetry(charger_id=cid, feeder_id=feeder_id, timestamp=now,
                                                   connected=False, power_kw=0.0, max_charge_kw=s.max_kw))
        while nxt < len(arrivals) and arrivals[nxt].arrival_ms <= now:
            s = arrivals[nxt]
            nxt += 1
            if s.departure_ms <= now:
                continue
            if s.charger_id in active:  # same station re-used before the previous car left: close it
                _, got = active.pop(s.charger_id)
                delivered_total += got
            if s.charger_id not in registered:
                disp.on_registration(_registration(s, feeder_id, now))
                registered.add(s.charger_id)
            active[s.charger_id] = (s, 0.0)
        for cid, (s, got) in sorted(active.items()):
            disp.on_telemetry(ChargerTelemetry(
                charger_id=cid, feeder_id=feeder_id, timestamp=now, connected=True, session_id=s.session_id,
                power_kw=0.0, max_charge_kw=s.max_kw, departure_time=s.departure_ms,
                requested_energy_kwh=s.energy_kwh, energy_delivered_kwh=got))
        p0 = time.perf_counter()
        res = disp.on_interval(now)
        plan_s += time.perf_counter() - p0
        for sp in res.setpoints:
            latest[sp.charger_id] = sp
        n_sp += len(res.setpoints)
        if keep_setpoints:
            kept.extend(res.setpoints)
        total = 0.0
        for cid, (s, got) in active.items():
            cur = latest.get(cid)
            valid = cur is not None and cur.valid_from <= now < cur.valid_until
            kw = cur.setpoint_kw if cur is not None and valid else config.rules.fallback_kw
            kw = max(0.0, min(kw, s.max_kw, (s.energy_kwh - got) / dt_h))
            active[cid] = (s, got + kw * dt_h)
            total += kw
        loads.append(total)
        now += step_ms
    delivered_total += sum(got for _, got in active.values())
    return BacktestResult(
        peak_kw=max(loads) if loads else 0.0, energy_requested_kwh=float(sum(s.energy_kwh for s in sessions)),
        energy_delivered_kwh=delivered_total, n_plans=disp.n_plans, n_fallbacks=disp.n_fallbacks, n_setpoints=n_sp,
        plan_seconds=plan_s, wall_seconds=time.perf_counter() - wall0, load_kw=loads, setpoints=kept)
