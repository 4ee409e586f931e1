"""A charger and the car plugged into it, answering setpoints as a real charger would (pure).

The car plugs in at arrival and leaves at departure. While it is plugged in the charger applies its latest
setpoint (the highest ``sequence`` received): ``setpoint_kw`` while ``t < valid_until``, then the planned
``schedule`` (last point with ``start <= t``) while ``t < valid_from + schedule_ms``, then ``fallback_kw``
(``TwinConfig.default_fallback_kw`` before any setpoint). A setpoint applies from when it is received: the
twin never rewrites its past. Physics: power clipped to the car's charge and discharge ratings, charge power
tapered linearly above ``taper_soc_pct`` (to ``taper_floor`` of the rating at 100 %), SoC moved by charge and
discharge efficiency and kept within ``[min_soc_pct, max_soc_pct]``; charging stops when the battery is full or
when the requested energy (grid side, net of export) is in. Without a known capacity and SoC there is no taper
and no SoC bound. A ``stationary`` session is a stationary battery on its station from arrival to departure: no
energy request (charging is bounded only by its ratings, SoC bounds and efficiency), no default command (idle
until it gets a setpoint: a battery left alone does nothing), and its telemetry carries no departure or request.
Telemetry (power, energy delivered, SoC, connected) goes out at plug-in, every ``heartbeat_ms`` while connected
(from plug-in, offset by ``heartbeat_phase_ms``), every ``idle_heartbeat_ms`` while idle, on every change of power,
and at plug-out (with what the session got).

>>> t0 = 1_551_398_400_000  # 2019-03-01T00:00:00Z
>>> tw = ChargerTwin("c1", "f1", [TwinSession("s1", "c1", t0, t0 + 3_600_000, t0 + 3_600_000, 5.0, 10.0)],
...                  TwinConfig(default_fallback_kw=7.0), start_ms=t0)
>>> [(r.connected, r.power_kw) for r in tw.step(tw.next_event())]
[(True, 7.0)]
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from streams.contracts.models import ChargerSetpoint, ChargerTelemetry

__all__ = ["ChargerTwin", "SessionResult", "TwinConfig", "TwinFleet", "TwinSession", "command_at",
           "next_command_change"]

HOUR_MS = 3_600_000
_EPS_KWH = 1e-6
_EPS_KW = 1e-6


@dataclass(frozen=True, slots=True)
class TwinConfig:
    """How the chargers and cars behave."""

    heartbeat_ms: int = 60_000
    """Report period while a car is connected (from its plug-in)."""
    heartbeat_phase_ms: int = 1_000
    """A connected charger's periodic reports come this long after whole ``heartbeat_ms`` from its plug-in. A real
    charger's clock is not in step with the dispatcher's intervals: with plug-ins on the minute and every report on
    an interval's start, the plan of that interval would wait for the next heartbeat (a plan takes what is stamped at
    its start first) and its setpoints would reach the chargers a whole heartbeat late."""
    idle_heartbeat_ms: int = 900_000
    """Report period while no car is connected."""
    schedule_ms: int = 4 * HOUR_MS
    """How long after ``valid_from`` a setpoint's schedule may be followed (EVGRID_SETPOINT_SCHEDULE_HOURS)."""
    default_fallback_kw: float = 0.0
    """Command before the charger has any setpoint (EVGRID_FALLBACK_KW); ``math.inf`` = uncontrolled."""
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    taper_soc_pct: float = 80.0
    taper_floor: float = 0.1
    min_soc_pct: float = 0.0
    max_soc_pct: float = 100.0


@dataclass(frozen=True, slots=True)
class TwinSession:
    """One plug-in: times (UTC epoch ms), request (kWh, grid side), ratings (kW) and the battery if known."""

    session_id: str
    charger_id: str
    arrival_ms: int
    departure_ms: int
    estimated_departure_ms: int
    requested_kwh: float
    max_charge_kw: float
    max_discharge_kw: float = 0.0
    capacity_kwh: float | None = None
    initial_soc_pct: float | None = None
    reserve_soc_pct: float | None = None
    stationary: bool = False
    """A stationary battery, not a car (see the module doc)."""


@dataclass(slots=True)
class SessionResult:
    """What a session got: net energy (grid side, kWh), energy charged and exported, SoC."""

    session: TwinSession
    feeder_id: str
    delivered_kwh: float = 0.0
    charged_kwh: float = 0.0
    exported_kwh: float = 0.0
    soc_kwh: float | None = None
    min_soc_pct: float | None = None
    """Lowest SoC reached while discharging (None if it never discharged or the SoC is unknown)."""
    ended_ms: int | None = None

    @property
    def soc_pct(self) -> float | None:
        cap = self.session.capacity_kwh
        return None if self.soc_kwh is None or not cap else 100.0 * self.soc_kwh / cap


def command_at(sp: ChargerSetpoint | None, t: int, schedule_ms: int, default_kw: float) -> float:
    """The command (kW, + charge) of setpoint ``sp`` at ``t`` (see the module doc)."""
    if sp is None:
        return default_kw
    if t < sp.valid_until:
        return sp.setpoint_kw
    if sp.schedule and t < sp.valid_from + schedule_ms and sp.schedule[0].start <= t:
        kw = sp.schedule[0].kw
        for p in sp.schedule:
            if p.start > t:
                break
            kw = p.kw
        return kw
    return sp.fallback_kw


def next_command_change(sp: ChargerSetpoint | None, t: int, schedule_ms: int) -> int | None:
    """The first time after ``t`` at which :func:`command_at` may change (None: never)."""
    if sp is None:
        return None
    cuts = [sp.valid_until, sp.valid_from + schedule_ms, *(p.start for p in sp.schedule)]
    later = [c for c in cuts if c > t]
    return min(later) if later else None


class ChargerTwin:
    """One charger and the cars of its sessions (non-overlapping: a car leaves when the next one arrives)."""

    def __init__(self, charger_id: str, feeder_id: str, sessions: Iterable[TwinSession], config: TwinConfig,
                 start_ms: int, end_ms: int | None = None, rating_kw: float | None = None,
                 discharge_rating_kw: float | None = None) -> None:
        self.charger_id, self.feeder_id, self.cfg = charger_id, feeder_id, config
        ss = sorted(sessions, key=lambda s: (s.arrival_ms, s.session_id))
        self.sessions: list[TwinSession] = []
        for i, s in enumerate(ss):
            dep = min(s.departure_ms, ss[i + 1].arrival_ms) if i + 1 < len(ss) else s.departure_ms
            if dep > s.arrival_ms:
                self.sessions.append(s if dep == s.departure_ms else _with_departure(s, dep))
        self.rating_kw = rating_kw if rating_kw is not None else max((s.max_charge_kw for s in ss), default=0.0)
        self.discharge_rating_kw = discharge_rating_kw if discharge_rating_kw is not None else max(
            (s.max_discharge_kw for s in ss), default=0.0)
        self.end_ms = end_ms if end_ms is not None else max((s.departure_ms for s in self.sessions), default=start_ms)
        self.t = min([start_ms] + [s.arrival_ms for s in self.sessions])
        self.k = 0  # next session to plug in
        self.car: SessionResult | None = None
        self.setpoint: ChargerSetpoint | None = None
        self.power = 0.0
        self.next_report = self.t
        self.results: list[SessionResult] = []
        self.segments: list[tuple[int, int, float]] = []
        """(from, to, kW) of every stretch with non-zero power (the load curve)."""

    # --- time ----------------------------------------------------------------------------------------
    def next_event(self) -> int | None:
        """When this twin next acts (report, plug-in/out, command change, stop); None when done."""
        cands = [self.next_report]
        car = self.car
        if car is None:
            if self.k < len(self.sessions):
                cands.append(self.sessions[self.k].arrival_ms)
        else:
            cands.append(car.session.departure_ms)
            nxt = next_command_change(self.setpoint, self.t, self.cfg.schedule_ms)
            if nxt is not None:
                cands.append(nxt)
            stop = self._stop_time()
            if stop is not None:
                cands.append(stop)
        t = min((c for c in cands if c >= self.t), default=None)
        if t is None:
            return None
        return t if t < self.end_ms or (car is not None and t <= car.session.departure_ms) else None

    def step(self, t: int) -> list[ChargerTelemetry]:
        """Act at ``t`` (its :meth:`next_event`, or later): plug in/out, re-apply the command, report."""
        self._advance(t)
        out: list[ChargerTelemetry] = []
        car = self.car
        if car is not None and t >= car.session.departure_ms:
            car.ended_ms = car.session.departure_ms
            self.results.append(car)
            self.car, self.power = None, 0.0
            out.append(self._report(t, car))
            self.next_report = t + self.cfg.idle_heartbeat_ms
        if self.car is None and self.k < len(self.sessions) and self.sessions[self.k].arrival_ms <= t:
            s = self.sessions[self.k]
            self.k += 1
            soc = s.initial_soc_pct / 100.0 * s.capacity_kwh if s.capacity_kwh and s.initial_soc_pct is not None \
                else None
            self.car = SessionResult(s, self.feeder_id, soc_kwh=soc)
            self.power = self._power(t)
            out.append(self._report(t))
            self.next_report = t + self.cfg.heartbeat_ms + self.cfg.heartbeat_phase_ms
            return out
        changed = self._reapply(t)
        if t >= self.next_report:
            period = self.cfg.heartbeat_ms if self.car is not None else self.cfg.idle_heartbeat_ms
            self.next_report += (t - self.next_report) // period * period + period
            changed = True
        if changed and not out:
            out.append(self._report(t))
        return out

    def receive(self, sp: ChargerSetpoint, t: int) -> list[ChargerTelemetry]:
        """A setpoint received at ``t`` (applies from ``t`` if its sequence is the highest yet); a report if
        the power changed."""
        if sp.charger_id != self.charger_id or (self.setpoint is not None and sp.sequence <= self.setpoint.sequence):
            return []
        self._advance(t)
        self.setpoint = sp
        return [self._report(t)] if self._reapply(t) else []

    def finish(self) -> None:
        """Unplug a car still connected at the end (its result is kept, ``ended_ms`` None)."""
        if self.car is not None:
            self._advance(max(self.t, min(self.end_ms, self.car.session.departure_ms)))
            self.results.append(self.car)
            self.car, self.power = None, 0.0

    # --- physics -------------------------------------------------------------------------------------
    def _reapply(self, t: int) -> bool:
        new = self._power(t)
        if abs(new - self.power) <= _EPS_KW:
            return False
        self.power = new
        return True

    def _bounds(self) -> tuple[float, float] | None:
        car = self.car
        cap = car.session.capacity_kwh if car is not None else None
        if car is None or car.soc_kwh is None or not cap:
            return None
        return self.cfg.min_soc_pct / 100.0 * cap, self.cfg.max_soc_pct / 100.0 * cap

    def _power(self, t: int) -> float:
        car = self.car
        if car is None:
            return 0.0
        s, cfg = car.session, self.cfg
        cmd = command_at(self.setpoint, t, cfg.schedule_ms, 0.0 if s.stationary else cfg.default_fallback_kw)
        if math.isnan(cmd) or cmd == -math.inf:
            return 0.0
        bounds = self._bounds()
        if cmd > 0:
            if not s.stationary and car.delivered_kwh >= s.requested_kwh - _EPS_KWH:
                return 0.0
            hi = s.max_charge_kw
            if bounds is not None and car.soc_kwh is not None:
                if car.soc_kwh >= bounds[1] - _EPS_KWH:
                    return 0.0
                pct = car.soc_pct or 0.0
                if pct > cfg.taper_soc_pct:
                    frac = 1.0 - (1.0 - cfg.taper_floor) * (pct - cfg.taper_soc_pct) / (100.0 - cfg.taper_soc_pct)
                    hi *= max(cfg.taper_floor, frac)
            return min(cmd, hi)
        if cmd < 0:
            if bounds is not None and car.soc_kwh is not None and car.soc_kwh <= bounds[0] + _EPS_KWH:
                return 0.0
            return max(cmd, -s.max_discharge_kw)
        return 0.0

    def _stop_time(self) -> int | None:
        """When the current power would hit the request, a full battery or the SoC floor."""
        car, p = self.car, self.power
        if car is None or abs(p) <= _EPS_KW:
            return None
        hours: list[float] = []
        bounds = self._bounds()
        if p > 0:
            if not car.session.stationary:
                hours.append((car.session.requested_kwh - car.delivered_kwh) / p)
            if bounds is not None and car.soc_kwh is not None:
                hours.append((bounds[1] - car.soc_kwh) / (p * self.cfg.charge_efficiency))
        elif bounds is not None and car.soc_kwh is not None:
            hours.append((car.soc_kwh - bounds[0]) * self.cfg.discharge_efficiency / -p)
        if not hours:
            return None
        return self.t + max(1, math.ceil(max(0.0, min(hours)) * HOUR_MS))

    def _advance(self, t: int) -> None:
        """Integrate the current power from ``self.t`` to ``t``."""
        car, p = self.car, self.power
        if t <= self.t:
            return
        a, self.t = self.t, t
        if car is None or p == 0.0:
            return
        e = p * (t - a) / HOUR_MS  # grid side
        bounds = self._bounds()
        eta_c, eta_d = self.cfg.charge_efficiency, self.cfg.discharge_efficiency
        if e > 0:
            if not car.session.stationary:
                e = min(e, max(0.0, car.session.requested_kwh - car.delivered_kwh))
            if bounds is not None and car.soc_kwh is not None:
                e = min(e, max(0.0, bounds[1] - car.soc_kwh) / eta_c)
                car.soc_kwh += e * eta_c
            car.charged_kwh += e
        else:
            if bounds is not None and car.soc_kwh is not None:
                e = max(e, -max(0.0, car.soc_kwh - bounds[0]) * eta_d)
                car.soc_kwh += e / eta_d
                pct = car.soc_pct
                if pct is not None:
                    car.min_soc_pct = pct if car.min_soc_pct is None else min(car.min_soc_pct, pct)
            car.exported_kwh -= e
        car.delivered_kwh += e
        if e != 0.0:
            self.segments.append((a, t, e * HOUR_MS / (t - a)))

    # --- telemetry -----------------------------------------------------------------------------------
    def _report(self, t: int, ended: SessionResult | None = None) -> ChargerTelemetry:
        car = self.car
        if car is None:
            return ChargerTelemetry(
                charger_id=self.charger_id, feeder_id=self.feeder_id, timestamp=t, connected=False, power_kw=0.0,
                session_id=ended.session.session_id if ended else None, max_charge_kw=self.rating_kw,
                max_discharge_kw=self.discharge_rating_kw,
                energy_delivered_kwh=round(ended.delivered_kwh, 4) if ended else None)
        s = car.session
        pct = car.soc_pct
        return ChargerTelemetry(
            charger_id=self.charger_id, feeder_id=self.feeder_id, timestamp=t, connected=True,
            session_id=s.session_id, power_kw=round(self.power, 3),
            soc_pct=None if pct is None else round(min(max(pct, 0.0), 100.0), 2),
            battery_capacity_kwh=s.capacity_kwh if pct is not None else None, max_charge_kw=s.max_charge_kw,
            max_discharge_kw=s.max_discharge_kw, departure_time=None if s.stationary else s.estimated_departure_ms,
            requested_energy_kwh=None if s.stationary else s.requested_kwh,
            energy_delivered_kwh=round(car.delivered_kwh, 4),
            reserve_soc_pct=s.reserve_soc_pct)


def _with_departure(s: TwinSession, dep: int) -> TwinSession:
    return TwinSession(s.session_id, s.charger_id, s.arrival_ms, dep, min(s.estimated_departure_ms, dep),
                       s.requested_kwh, s.max_charge_kw, s.max_discharge_kw, s.capacity_kwh, s.initial_soc_pct,
                       s.reserve_soc_pct, s.stationary)


@dataclass
class TwinFleet:
    """Every twin of a run, stepped in event-time order (ties: charger id)."""

    twins: dict[str, ChargerTwin]
    _heap: list[tuple[int, str, int]] = field(default_factory=list)
    _version: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for cid in sorted(self.twins):
            self._push(cid)

    def _push(self, cid: str) -> None:
        v = self._version[cid] = self._version.get(cid, 0) + 1
        t = self.twins[cid].next_event()
        if t is not None:
            heapq.heappush(self._heap, (t, cid, v))

    def _clean(self) -> None:
        while self._heap and self._heap[0][2] != self._version[self._heap[0][1]]:
            heapq.heappop(self._heap)

    def next_time(self) -> int | None:
        """Event time of the next twin to act (None: all done)."""
        self._clean()
        return self._heap[0][0] if self._heap else None

    def step(self, t: int) -> list[ChargerTelemetry]:
        """Every twin due at ``t`` acts; their reports, by charger id."""
        out: list[ChargerTelemetry] = []
        while True:
            self._clean()
            if not self._heap or self._heap[0][0] > t:
                return out
            _, cid, _ = heapq.heappop(self._heap)
            out += self.twins[cid].step(t)
            self._push(cid)

    def deliver(self, setpoints: Sequence[ChargerSetpoint], t: int) -> list[ChargerTelemetry]:
        """Setpoints received at ``t`` (unknown chargers ignored); the reports of the twins whose power changed."""
        out: list[ChargerTelemetry] = []
        for sp in setpoints:
            tw = self.twins.get(sp.charger_id)
            if tw is None:
                continue
            out += tw.receive(sp, t)
            self._push(sp.charger_id)
        return out

    def finish(self) -> list[SessionResult]:
        """End the run; every session's result, by arrival."""
        res: list[SessionResult] = []
        for tw in self.twins.values():
            tw.finish()
            res += tw.results
        return sorted(res, key=lambda r: (r.session.arrival_ms, r.session.session_id))

    def run_free(self) -> list[SessionResult]:
        """Run to the end with no setpoints (each charger follows its default command)."""
        t = self.next_time()
        while t is not None:
            self.step(t)
            t = self.next_time()
        return self.finish()
