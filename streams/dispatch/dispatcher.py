"""``FeederDispatcher``: the per-feeder state machine a stream processor drives (pure, picklable).

Feed it contract records (``on_registration``, ``on_telemetry``, ``on_signal``, ``on_incentive_response``)
and call ``on_interval(now_ms, base_load_kw)`` at every interval close (event time); it re-plans when
the set of plugged-in sessions, the signals or the accepted offers changed, or every ``replan_ms``, and
returns the setpoints to emit (on change or refresh), new incentive offers and settlements.

Issue 8: sites (``on_site_meter`` feeds a site's own meter; site import limits from registrations or
site-scoped signals; behind-the-meter V2H/V2B discharge of ``parallel_non_exporting`` sites; demand
charges), stationary batteries (``asset_type=stationary_battery``: a car that never leaves), backup-mode
episodes (``backup_episodes``), the VPP view (``DispatchResult.flexibility``) and feeder-level requests
with the delivered change against the baseline (``request_report``).
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from zoneinfo import ZoneInfo

import numpy as np

from streams.contracts.models import (
    ChargerRegistration,
    ChargerSetpoint,
    ChargerTelemetry,
    Flexibility,
    GridSignal,
    IncentiveEvent,
    IncentiveResponse,
    MeterReading,
    SchedulePoint,
    Settlement,
    SiteRegistration,
)
from streams.dispatch.arrivals import ArrivalForecaster
from streams.dispatch.backup import BackupEpisode
from streams.dispatch.flexibility import compute_flexibility
from streams.dispatch.incentives import IncentiveParams, OfferBook, apply_response, propose_offers, settle_export
from streams.dispatch.planner import (
    HOUR_MS,
    Plan,
    PlannerWeights,
    PlanRequest,
    PlanSession,
    PlanSite,
    plan_feeder,
    solve_lp,
    time_grid,
)
from streams.dispatch.requests import RequestInterval, RequestTracker
from streams.dispatch.safety import (
    SafeSetpoint,
    SafetyRules,
    capacity_kwh,
    charge_limit_kw,
    discharge_limit_kw,
    reserve_pct,
    safe_setpoint,
)
from streams.dispatch.setpoints import build_setpoint, discharged_kwh, round_kw, schedule_points, should_emit
from streams.dispatch.site_rules import SiteRules, outside_rating, site_envelope, site_rules
from streams.dispatch.sites import SiteLoadForecast, SiteState
from streams.dispatch.state import (
    ChargerInfo,
    FeederLimits,
    SessionState,
    charger_from_registration,
    session_from_telemetry,
)
from streams.settings import Settings

__all__ = ["DispatchConfig", "DispatchResult", "FeederDispatcher"]


def _note(message: str | None, note: str) -> str:
    return note if not message else f"{message}; {note}"


def _at(points: list[tuple[int, float]], t: int) -> float:
    kw = 0.0
    for start, v in points:
        if start <= t:
            kw = v
    return kw

MIN_MS = 60_000


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    """Dispatch parameters (build from :class:`Settings` with :meth:`from_settings`)."""

    step_ms: int = 15 * MIN_MS
    horizon_ms: int = 24 * HOUR_MS
    fine_ms: int | None = 2 * HOUR_MS
    coarse_step_ms: int | None = 30 * MIN_MS
    replan_ms: int = 15 * MIN_MS
    solver_time_limit_s: float = 2.0
    rules: SafetyRules = field(default_factory=SafetyRules)
    weights: PlannerWeights = field(default_factory=PlannerWeights)
    incentives: IncentiveParams = field(default_factory=IncentiveParams)
    default_import_limit_kw: float = 1_000_000.0
    default_export_limit_kw: float = 0.0
    default_price_per_kwh: float = 0.20
    setpoint_threshold_kw: float = 0.1
    setpoint_refresh_ms: int = 15 * MIN_MS
    setpoint_validity_ms: int = 30 * MIN_MS
    schedule_ms: int = 4 * HOUR_MS
    forecast_arrivals: bool = True
    timezone: str = "UTC"
    arrival_bin_minutes: int = 60
    default_dwell_ms: int = 8 * HOUR_MS
    default_request_kwh: float = 20.0
    settle_period_ms: int = 24 * HOUR_MS
    site_demand_charge_per_kw: float = 0.0
    """Default demand charge of every site per kW of its monthly peak import (a site signal overrides it)."""
    site_meter_stale_ms: int = 30 * MIN_MS
    """No behind-the-meter discharge at a site whose meter has not reported for this long."""
    site_forecast_alpha: float = 0.3
    battery_round_trip_efficiency: float = 0.9
    battery_min_soc_pct: float = 10.0
    flexibility_horizon_ms: int = 4 * HOUR_MS
    track_requests: bool = True
    """Solve a counterfactual plan without each feeder-level import-limit request (its baseline)."""

    @classmethod
    def from_settings(cls, s: Settings) -> DispatchConfig:
        """Configuration from the process settings."""
        step = s.interval_minutes * MIN_MS
        return cls(
            step_ms=step,
            horizon_ms=s.horizon_hours * HOUR_MS,
            fine_ms=int(s.dispatch_fine_horizon_minutes * MIN_MS) if s.dispatch_coarse_step_minutes > 0 else None,
            coarse_step_ms=int(s.dispatch_coarse_step_minutes * MIN_MS) or None,
            replan_ms=max(step, int(s.dispatch_replan_minutes * MIN_MS)),
            solver_time_limit_s=s.solver_time_limit_s,
            rules=SafetyRules(reserve_soc_pct=s.reserve_soc_pct, stale_seconds=s.stale_telemetry_seconds,
                              fallback_kw=s.fallback_kw),
            weights=PlannerWeights(cycling_per_kwh=s.cycling_cost_per_kwh),
            incentives=IncentiveParams(delay_price_per_kwh=s.incentive_delay_price_per_kwh,
                                       export_price_per_kwh=s.incentive_export_price_per_kwh,
                                       currency=s.currency),
            default_import_limit_kw=s.default_import_limit_kw,
            default_export_limit_kw=s.default_export_limit_kw,
            default_price_per_kwh=s.default_price_per_kwh,
            setpoint_threshold_kw=s.setpoint_change_threshold_kw,
            setpoint_refresh_ms=int(s.setpoint_refresh_seconds * 1000),
            setpoint_validity_ms=int(s.setpoint_validity_seconds * 1000),
            schedule_ms=int(s.setpoint_schedule_hours * HOUR_MS),
            forecast_arrivals=s.dispatch_forecast_arrivals,
            timezone=s.local_timezone,
            site_demand_charge_per_kw=s.dispatch_site_demand_charge_per_kw,
            site_meter_stale_ms=int(s.dispatch_site_meter_stale_seconds * 1000),
            battery_round_trip_efficiency=s.dispatch_battery_round_trip_efficiency,
            battery_min_soc_pct=s.dispatch_battery_min_soc_pct,
            flexibility_horizon_ms=int(s.dispatch_flexibility_hours * HOUR_MS),
            track_requests=s.dispatch_track_requests,
        )


@dataclass(frozen=True, slots=True)
class DispatchResult:
    """What one ``on_interval`` call produced."""

    setpoints: list[ChargerSetpoint]
    incentives: list[IncentiveEvent]
    settlements: list[Settlement]
    plan: Plan | None
    replanned: bool
    flexibility: list[Flexibility] = field(default_factory=list)
    """The feeder's ``Flexibility`` (one record at each re-plan) to produce on ``evgrid.flexibility``."""
    backup_episodes: list[BackupEpisode] = field(default_factory=list)
    """Backup episodes that started or ended since the previous call (an ended one carries ``end_ms``)."""


@dataclass
class _ExportAcc:
    start_ms: int
    kwh: float = 0.0
    """Discharge reported by the charger at an exporting site, kWh (paid only as its site's share)."""
    value: float = 0.0
    btm_kwh: float = 0.0
    """Discharge behind the meter of a non-exporting site, kWh."""
    site0: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    """The site's counters (``FeederDispatcher.site_energy``) when the period started."""


@dataclass
class FeederDispatcher:
    """Per-feeder dispatch state; every method is pure apart from updating this object (picklable)."""

    feeder_id: str
    config: DispatchConfig = field(default_factory=DispatchConfig)
    chargers: dict[str, ChargerInfo] = field(default_factory=dict)
    sessions: dict[str, SessionState] = field(default_factory=dict)
    limits: FeederLimits | None = None
    forecaster: ArrivalForecaster | None = None
    book: OfferBook = field(default_factory=OfferBook)
    plan: Plan | None = None
    plan_made_ms: int = -1
    plan_request: PlanRequest | None = None
    plan_signature: tuple = ()
    dirty: bool = True
    peak_month: str = ""
    peak_kw: float = 0.0
    last_sent: dict[str, ChargerSetpoint] = field(default_factory=dict)
    sequence: dict[str, int] = field(default_factory=dict)
    exports: dict[str, _ExportAcc] = field(default_factory=dict)
    pending_settlements: list[Settlement] = field(default_factory=list)
    n_plans: int = 0
    n_fallbacks: int = 0
    site_states: dict[str, SiteState] = field(default_factory=dict)
    episodes: list[BackupEpisode] = field(default_factory=list)
    episode_updates: list[BackupEpisode] = field(default_factory=list)
    trackers: dict[str, RequestTracker] = field(default_factory=dict)
    flexibility: Flexibility | None = None
    registered: dict[str, ChargerInfo] = field(default_factory=dict)
    """Chargers as registered; ``chargers`` holds them under their site's (strictest) rules."""
    sites: dict[str, SiteRegistration] = field(default_factory=dict)
    sent_log: dict[str, list[ChargerSetpoint]] = field(default_factory=dict)
    """Setpoints sent since each charger's last report (the SoC projection of the reserve rule)."""
    self_consumed_kwh: dict[str, float] = field(default_factory=dict)
    """Behind-the-meter discharge (V2H / V2B) per charger, kWh: self-consumption, never paid as export."""
    n_refused_telemetry: int = 0
    site_energy: dict[str, list[float]] = field(default_factory=dict)
    """Per site: metered export at its meter, its chargers' reported discharge, its commanded net export (kWh),
    and the number of site meter readings."""
    projection_memo: dict[tuple, float] = field(default_factory=dict, repr=False)
    """Discharge since the SoC report, by (charger, time, log state): a cache of :meth:`_projected`."""
    site_mark: dict[str, tuple[float, ...]] = field(default_factory=dict)
    """Per charger: its site's counters at its last report (the start of a settlement period beginning then)."""
    power_log: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    """Per charger at a site with a meter: (time, reported power) at each change, for the site meter's stale
    window, so that a site reading is net of its assets at the reading's time, not at the plan's."""
    site_command: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Per site: the net power commanded at the last interval (time, kW; − = export)."""

    def __setstate__(self, state: dict) -> None:
        """Unpickle a dispatcher saved by an older version: fields it lacks take their defaults."""
        for f in fields(self):
            if f.name not in state and f.default_factory is not MISSING:
                state[f.name] = f.default_factory()
            elif f.name not in state and f.default is not MISSING:
                state[f.name] = f.default
        self.__dict__.update(state)

    def __post_init__(self) -> None:
        c = self.config
        if self.limits is None:
            self.limits = FeederLimits(c.default_import_limit_kw, c.default_export_limit_kw, c.default_price_per_kwh)
        if self.forecaster is None:
            self.forecaster = ArrivalForecaster(timezone=c.timezone, bin_minutes=c.arrival_bin_minutes)

    # --- inputs ---------------------------------------------------------------------------------
    def on_registration(self, reg: ChargerRegistration) -> None:
        """Add, change or (``active=False``) deactivate a charger."""
        if reg.feeder_id != self.feeder_id:
            return
        info = charger_from_registration(reg)
        if info.is_battery:
            c = self.config
            info = replace(info, min_soc_pct=c.battery_min_soc_pct if info.min_soc_pct is None else info.min_soc_pct,
                           round_trip_efficiency=info.round_trip_efficiency or c.battery_round_trip_efficiency)
        old = self.registered.get(reg.charger_id)
        self.registered[reg.charger_id] = info
        self._refresh_site(info.site_id)
        if old is not None and old.site_id != info.site_id:
            self._refresh_site(old.site_id)
        self.dirty = True

    def on_site_registration(self, reg: SiteRegistration) -> None:
        """Add or change a site's interconnection agreement (its chargers take the strictest rules)."""
        if reg.feeder_id != self.feeder_id:
            return
        self.sites[reg.site_id] = reg
        self._refresh_site(reg.site_id)
        self.dirty = True

    def site_rules(self, site_id: str) -> SiteRules:
        """The rules at the site's point of interconnection (site registration and chargers, strictest)."""
        return site_rules(site_id, self.sites.get(site_id), self.registered.values())

    def _refresh_site(self, site_id: str) -> None:
        rules = self.site_rules(site_id)
        for cid, info in self.registered.items():
            if info.site_id != site_id:
                continue
            self.chargers[cid] = replace(
                info, interconnection_class=rules.interconnection_class, export_limit_kw=rules.export_limit_kw,
                site_import_limit_kw=rules.import_limit_kw)

    def on_telemetry(self, tel: ChargerTelemetry) -> None:
        """Update a charger's session; learns arrivals and accumulates V2G export for settlement."""
        if tel.feeder_id != self.feeder_id:
            return
        ch = self.registered.get(tel.charger_id)
        if ch is not None and outside_rating(tel, ch) is not None:
            self.n_refused_telemetry += 1  # impossible power: never settled, never used for headroom
            return
        prev = self.sessions.get(tel.charger_id)
        new = session_from_telemetry(prev, tel)
        if new is prev:
            return
        if ch is not None and ch.site_id in self.site_states:
            self._log_power(tel.charger_id, tel.timestamp, new.power_kw if new.connected
                            and new.grid_state == "grid_connected" else 0.0)
        if tel.soc_pct is not None or not new.connected or new.session_id != (prev.session_id if prev else None):
            log = self.sent_log.get(tel.charger_id, [])
            self.sent_log[tel.charger_id] = [sp for sp in log if sp.valid_until > tel.timestamp][-1:]
        assert self.forecaster is not None
        self.forecaster.start(tel.timestamp)
        if prev is not None and prev.power_kw < 0 and prev.grid_state == "grid_connected" and ch is not None:
            hours = (tel.timestamp - prev.last_heard_ms) / HOUR_MS
            kwh = -prev.power_kw * min(hours, 1.0)
            counters = self.site_energy.setdefault(ch.site_id, [0.0, 0.0, 0.0, 0.0])
            mark = self.site_mark.get(tel.charger_id, tuple(counters))
            acc = self.exports.setdefault(tel.charger_id, _ExportAcc(prev.last_heard_ms, site0=mark))
            if self.chargers[tel.charger_id].interconnection_class != "parallel_exporting":
                acc.btm_kwh += kwh  # behind the meter: self-consumption, never paid
                self.self_consumed_kwh[tel.charger_id] = self.self_consumed_kwh.get(tel.charger_id, 0.0) + kwh
                kwh = 0.0
            counters[1] += kwh
            acc.kwh += kwh
            assert self.limits is not None
            span = np.array([prev.last_heard_ms, max(tel.timestamp, prev.last_heard_ms + 1)])
            _, _, price = self.limits.profile(span)
            acc.value += kwh * float(price[0])
        if ch is not None and tel.charger_id not in self.exports:  # where a period that starts now starts
            self.site_mark[tel.charger_id] = tuple(self.site_energy.setdefault(ch.site_id, [0.0, 0.0, 0.0, 0.0]))
        if new.connected and new.session_id and new.departure_ms and new.plugged_at_ms == tel.timestamp:
            energy = new.remaining_energy_kwh()
            if energy:
                self.forecaster.observe(new.session_id, tel.timestamp, new.departure_ms, energy, new.max_charge_kw)
        if prev is not None and prev.connected and not new.connected:
            self._settle(tel.charger_id, tel.timestamp)
        self._backup_transition(prev, new)
        self.sessions[tel.charger_id] = new

    def _backup_transition(self, prev: SessionState | None, new: SessionState) -> None:
        was = prev is not None and prev.grid_state != "grid_connected"
        now = new.grid_state != "grid_connected"
        if was == now:
            return
        ch = self.chargers.get(new.charger_id)
        if now:
            ep = BackupEpisode(new.charger_id, ch.site_id if ch else None, new.last_heard_ms)
            self.episodes.append(ep)
            del self.episodes[:-1000]
        else:
            i = next((i for i in range(len(self.episodes) - 1, -1, -1)
                      if self.episodes[i].charger_id == new.charger_id and self.episodes[i].open), None)
            if i is None:
                return
            ep = replace(self.episodes[i], end_ms=new.last_heard_ms)
            self.episodes[i] = ep
        self.episode_updates.append(ep)
        self.dirty = True

    def on_site_meter(self, reading: MeterReading) -> None:
        """A site's own meter (``reading.site_id`` set): learns the site's own load (metered import minus its
        grid-connected chargers' and batteries' reported power) and its monthly peak import."""
        if reading.feeder_id != self.feeder_id or reading.site_id is None:
            return
        sid = reading.site_id
        st = self.site_states.get(sid)
        if st is None:
            c = self.config
            st = self.site_states[sid] = SiteState(sid, SiteLoadForecast(c.step_ms, c.site_forecast_alpha, c.timezone))
        assets = sum(self._power_then(cid, s, reading.timestamp) for cid, s in self.sessions.items()
                     if cid in self.chargers and self.chargers[cid].site_id == sid)
        own = reading.active_power_kw - assets
        energy = self.site_energy.setdefault(sid, [0.0, 0.0, 0.0, 0.0])
        if 0 <= st.last_meter_ms < reading.timestamp:  # export at the point of interconnection, held until now
            held = min(reading.timestamp - st.last_meter_ms, HOUR_MS) / HOUR_MS
            energy[0] += max(0.0, -reading.active_power_kw) * held
        energy[3] += 1
        st.forecast.observe(reading.timestamp, own)
        st.observe_own(reading.timestamp, own)
        m = self._month(reading.timestamp)
        if m != st.peak_month:
            st.peak_month, st.peak_kw = m, 0.0
        st.peak_kw = max(st.peak_kw, reading.active_power_kw)

    def _log_power(self, cid: str, t_ms: int, kw: float) -> None:
        log = self.power_log.setdefault(cid, [])
        if log and log[-1][0] > t_ms:
            return  # out of order: the log keeps the newest
        if not log or log[-1][1] != kw:
            log.append((t_ms, kw))
        keep = t_ms - self.config.site_meter_stale_ms - self.config.step_ms
        while len(log) > 1 and log[1][0] <= keep:
            del log[0]

    def _power_then(self, cid: str, s: SessionState, t_ms: int) -> float:
        """A charger's reported power (grid-connected and plugged in, else 0) at ``t_ms``, from its power log
        where it reaches back that far, else now."""
        then = [kw for t, kw in self.power_log.get(cid, []) if t <= t_ms]
        if then:
            return then[-1]
        return s.power_kw if s.connected and s.grid_state == "grid_connected" else 0.0

    def on_signal(self, sig: GridSignal) -> None:
        """Add or replace a grid signal (limits, prices)."""
        self.on_signals([sig])

    def on_signals(self, sigs: list[GridSignal]) -> None:
        """``on_signal`` of each in turn, in one pass over the signals known."""
        mine = [sig for sig in sigs if sig.feeder_id == self.feeder_id]
        if not mine:
            return
        assert self.limits is not None
        self.limits = self.limits.with_signals(mine)
        self.dirty = True
        for sig in mine:
            if sig.site_id is None and sig.import_limit_kw is not None and self.config.track_requests:
                old = self.trackers.get(sig.signal_id)
                if old is None or (old.start_ms, old.end_ms, old.limit_kw) != (sig.valid_from, sig.valid_until,
                                                                               sig.import_limit_kw):
                    self.trackers[sig.signal_id] = RequestTracker(sig.signal_id, sig.dr_event_id, sig.valid_from,
                                                                  sig.valid_until, self.config.step_ms,
                                                                  sig.import_limit_kw)

    def on_incentive_response(self, resp: IncentiveResponse) -> None:
        """Record a driver's answer; an accept changes the next plan."""
        new = apply_response(self.book, resp)
        if new is not self.book:
            self.book = new
            self.dirty = True

    def observe_load(self, now_ms: int, kw: float) -> None:
        """Feed a measured feeder import (kW) averaged over the interval ending at ``now_ms``, so the
        billing-month running peak includes it and requests record what was delivered."""
        self._bump_peak(now_ms, kw)
        if math.isfinite(kw):
            for tr in self.trackers.values():
                tr.on_measured(now_ms - self.config.step_ms, kw)

    # --- reports --------------------------------------------------------------------------------
    def backup_episodes(self, charger_id: str | None = None) -> list[BackupEpisode]:
        """Recorded backup episodes (last 1,000), oldest first; open ones have ``end_ms=None``."""
        return [e for e in self.episodes if charger_id is None or e.charger_id == charger_id]

    def request_report(self, signal_id: str | None = None) -> list[RequestInterval]:
        """Requested vs delivered per interval of every feeder-level import-limit request (or one)."""
        out: list[RequestInterval] = []
        for sid in sorted(self.trackers):
            if signal_id is None or sid == signal_id:
                out += self.trackers[sid].report()
        return out

    def site_own_load_kw(self, site_id: str, t_ms: int) -> float | None:
        """Forecast own load of a site at ``t_ms`` (``None`` if its meter never reported)."""
        st = self.site_states.get(site_id)
        return None if st is None else st.forecast.at(t_ms)

    # --- helpers --------------------------------------------------------------------------------
    def _month(self, t_ms: int) -> str:
        return dt.datetime.fromtimestamp(t_ms / 1000, ZoneInfo(self.config.timezone)).strftime("%Y-%m")

    def _bump_peak(self, now_ms: int, kw: float) -> None:
        m = self._month(now_ms)
        if m != self.peak_month:
            self.peak_month, self.peak_kw = m, 0.0
        if np.isfinite(kw):
            self.peak_kw = max(self.peak_kw, float(kw))

    def _settle(self, cid: str, now_ms: int) -> None:
        """Pay export at the point of interconnection only: the charger's discharge times its site's share
        (site export / its chargers' discharge over the period), measured by the site meter where it reported,
        else the site's commanded net export (``commanded``, an estimate); behind-the-meter discharge apart."""
        acc = self.exports.pop(cid, None)
        ch = self.chargers.get(cid)
        if acc is None or ch is None or acc.kwh + acc.btm_kwh <= 1e-6:
            return
        now = self.site_energy.get(ch.site_id, [0.0, 0.0, 0.0, 0.0])
        delta = [a - b for a, b in zip(now, acc.site0, strict=True)]
        if ch.site_id in self.site_command:  # the commanded export since the last interval, up to now
            t, net = self.site_command[ch.site_id]
            delta[2] += max(0.0, -net) * min(max(0, now_ms - t), HOUR_MS) / HOUR_MS
        basis = "site_meter" if delta[3] > 0 else "commanded"
        poi = delta[0] if basis == "site_meter" else delta[2]
        share = 0.0 if delta[1] <= 1e-9 else min(1.0, max(0.0, poi) / delta[1])
        exported = acc.kwh * share
        price = round(acc.value / acc.kwh, 6) if acc.kwh > 1e-9 else 0.0
        offers = self.book.accepted_offers(cid, "export")
        offer = next((o for o in offers if o.window_start < now_ms and o.window_end > acc.start_ms), None)
        self.pending_settlements.append(settle_export(
            feeder_id=self.feeder_id, charger_id=cid, customer_id=ch.customer_id, period_start=acc.start_ms,
            period_end=now_ms, exported_kwh=exported, price_per_kwh=price, offer=offer if exported > 0 else None,
            currency=self.config.incentives.currency, export_basis=basis, self_consumed_kwh=acc.btm_kwh))

    def _safe(self, cid: str, kw: float | None, now_ms: int, reason: str = "optimal",
              site_headroom_kw: float | None = None) -> SafeSetpoint:
        export_ok = bool(self.book.windows(cid, "export"))
        return safe_setpoint(kw, self.chargers.get(cid), self._projected(cid, now_ms), now_ms,
                             self.config.setpoint_validity_ms / 1000, self.config.rules, export_ok, reason,
                             site_headroom_kw)

    def _projected(self, cid: str, now_ms: int) -> SessionState | None:
        """The session with its SoC projected from the last report through every setpoint sent since (their
        discharge only), so the reserve holds across setpoints still in force."""
        s = self.sessions.get(cid)
        log = self.sent_log.get(cid)
        if s is None or not log or s.soc_pct is None:
            return s
        cap = capacity_kwh(self.chargers.get(cid), s)
        if cap is None:
            return s
        key = (cid, now_ms, len(log), log[-1].sequence, s.last_heard_ms)
        kwh = self.projection_memo.get(key)
        if kwh is None:
            if len(self.projection_memo) > 10_000:
                self.projection_memo.clear()
            kwh = self.projection_memo[key] = discharged_kwh(
                log, s.soc_ms if s.soc_ms is not None else s.last_heard_ms, now_ms, self.config.schedule_ms)
        return s if kwh <= 0 else replace(s, soc_pct=max(0.0, s.soc_pct - 100.0 * kwh / cap))

    def flexible_sessions(self, now_ms: int) -> dict[str, SessionState]:
        """Plugged-in, grid-connected, fresh sessions of known active chargers."""
        rules = self.config.rules
        return {cid: s for cid, s in sorted(self.sessions.items())
                if s.connected and s.grid_state == "grid_connected" and not s.is_stale(now_ms, rules.stale_seconds)
                and cid in self.chargers and self.chargers[cid].active}

    def _plan_sites(self, edges: np.ndarray, now_ms: int, flex: dict[str, SessionState]) -> list[PlanSite]:
        """Sites of plugged-in assets that have something to say: a limit, a known load, a demand charge or
        behind-the-meter discharge."""
        assert self.limits is not None
        c = self.config
        n = len(edges) - 1
        by_site: dict[str, list[ChargerInfo]] = {}
        for cid in flex:
            by_site.setdefault(self.chargers[cid].site_id, []).append(self.chargers[cid])
        out = []
        for sid, chs in sorted(by_site.items()):
            st = self.site_states.get(sid)
            regs = [ch.site_import_limit_kw for ch in chs if ch.site_import_limit_kw is not None]
            sig_imp, sig_exp = self.limits.site_profile(sid, edges)
            charge = self.limits.demand_charge(sid, now_ms)
            charge = c.site_demand_charge_per_kw if charge is None else charge
            known = st is not None and st.last_own_kw is not None
            if not (regs or np.isfinite(sig_imp).any() or np.isfinite(sig_exp).any() or charge > 0 or known
                    or any(ch.behind_the_meter for ch in chs)):
                continue
            imp = np.minimum(sig_imp, min(regs)) if regs else sig_imp
            exporting = all(ch.may_export for ch in chs)
            exp = np.minimum(sig_exp, min(ch.export_limit_kw for ch in chs) if exporting else 0.0)
            base = st.forecast.forecast(edges) if st is not None else np.zeros(n)
            floor = st.peak_kw if st is not None and st.peak_month == self._month(now_ms) else 0.0
            out.append(PlanSite(sid, tuple(base.tolist()), tuple(imp.tolist()), tuple(exp.tolist()),
                                float(charge), float(floor)))
        return out

    def _plan_session(self, cid: str, s: SessionState, now_ms: int, site_known: bool = False) -> PlanSession:
        c = self.config
        ch = self.chargers[cid]
        if ch.is_battery:
            return self._plan_battery(cid, ch, s, now_ms, site_known)
        dep = s.departure_ms or (s.plugged_at_ms or now_ms) + c.default_dwell_ms
        dep = max(dep, now_ms + c.step_ms)
        remaining = s.remaining_energy_kwh()
        energy = remaining if remaining is not None else c.default_request_kwh
        export_windows = self.book.windows(cid, "export")
        # behind the meter the LP's site constraint bounds discharge by the site's own load
        dmax = discharge_limit_kw(ch, s, export_allowed=bool(export_windows),
                                  site_headroom_kw=ch.max_discharge_kw if site_known else None)
        soc_kwh = cap = None
        reserve = 0.0
        if s.soc_pct is not None and s.capacity_kwh:
            cap = s.capacity_kwh
            soc_kwh = s.soc_pct / 100.0 * cap
            reserve = reserve_pct(s, c.rules) / 100.0 * cap
            if dmax > 0 and s.requested_energy_kwh is None and s.target_soc_pct is not None:
                # above its target SoC a car may give the surplus (never below target or reserve)
                energy = (max(s.target_soc_pct, reserve_pct(s, c.rules)) - s.soc_pct) / 100.0 * cap
        return PlanSession(
            key=cid, session_id=s.session_id, arrival_ms=now_ms, departure_ms=dep, energy_kwh=energy,
            max_charge_kw=charge_limit_kw(ch, s), max_discharge_kw=dmax, soc_kwh=soc_kwh, capacity_kwh=cap,
            reserve_kwh=reserve, discharge_windows=None if ch.v2g_enrolled else export_windows,
            blocked_windows=self.book.windows(cid, "delay_charging"), site_id=ch.site_id,
        )

    def _plan_battery(self, cid: str, ch: ChargerInfo, s: SessionState, now_ms: int, site_known: bool) -> PlanSession:
        """A stationary battery: present over the whole horizon, no energy request, ends no lower than it starts."""
        c = self.config
        cap = capacity_kwh(ch, s)
        soc_kwh = top = None
        reserve = 0.0
        if cap is not None and s.soc_pct is not None:
            soc_kwh = s.soc_pct / 100.0 * cap
            top = (ch.max_soc_pct if ch.max_soc_pct is not None else 100.0) / 100.0 * cap
            reserve = reserve_pct(s, c.rules, ch) / 100.0 * cap
        eta = math.sqrt(min(max(ch.round_trip_efficiency or c.battery_round_trip_efficiency, 0.01), 1.0))
        dmax = discharge_limit_kw(ch, s, site_headroom_kw=ch.max_discharge_kw if site_known else None)
        final = None if soc_kwh is None or top is None else min(max(soc_kwh, reserve), top)
        return PlanSession(
            key=cid, session_id=s.session_id, arrival_ms=now_ms, departure_ms=now_ms + c.horizon_ms + c.step_ms,
            energy_kwh=0.0, max_charge_kw=charge_limit_kw(ch, s), max_discharge_kw=dmax, soc_kwh=soc_kwh,
            capacity_kwh=top, reserve_kwh=reserve, site_id=ch.site_id, storage=True, charge_efficiency=eta,
            discharge_efficiency=eta, final_soc_kwh=final,
        )

    def _base(self, edges: np.ndarray, base: Sequence[float] | None, start: int, step: int) -> np.ndarray:
        n = len(edges) - 1
        if base is None or len(base) == 0:
            return np.zeros(n)
        vals = np.nan_to_num(np.asarray(base, dtype=float))
        mid = (edges[:-1] + edges[1:]) // 2
        idx = np.clip((mid - start) // step, 0, len(vals) - 1)
        return vals[idx]

    # --- the interval ---------------------------------------------------------------------------
    def on_interval(self, now_ms: int, base_load_kw: Sequence[float] | None = None,
                    base_start_ms: int | None = None, base_step_ms: int | None = None) -> DispatchResult:
        """Re-plan if needed and return the setpoints to emit now.

        ``base_load_kw`` is the forecast of the feeder's other load minus PV (kW) for consecutive
        ``base_step_ms`` periods from ``base_start_ms`` (defaults: the planning step, ``now_ms``).
        """
        c = self.config
        assert self.limits is not None and self.forecaster is not None
        self.projection_memo.clear()
        self.limits = self.limits.pruned(now_ms)
        self.book = self.book.pruned(now_ms)
        flex = self.flexible_sessions(now_ms)
        signature = tuple((cid, s.session_id) for cid, s in flex.items())
        need = (self.plan is None or self.dirty or signature != self.plan_signature
                or now_ms - self.plan_made_ms >= c.replan_ms or now_ms >= self.plan.edges_ms[-1] - c.step_ms)
        new_offers: list[IncentiveEvent] = []
        if need:
            self._bump_peak(now_ms, 0.0)
            edges = time_grid(now_ms, c.step_ms, c.horizon_ms, c.fine_ms, c.coarse_step_ms)
            imp, exp, price = self.limits.profile(edges)
            base = self._base(edges, base_load_kw, base_start_ms if base_start_ms is not None else now_ms,
                              base_step_ms or c.step_ms)
            sites = self._plan_sites(edges, now_ms, flex)
            known = {p.site_id for p in sites if (st := self.site_states.get(p.site_id)) is not None
                     and st.last_own_kw is not None}
            sessions = [self._plan_session(cid, s, now_ms, self.chargers[cid].site_id in known)
                        for cid, s in flex.items()]
            if c.forecast_arrivals:
                sessions += self.forecaster.expected_sessions(now_ms, int(edges[-1]))
            req = PlanRequest(
                feeder_id=self.feeder_id, edges_ms=tuple(int(e) for e in edges), base_kw=tuple(base.tolist()),
                import_limit_kw=tuple(imp.tolist()), export_limit_kw=tuple(exp.tolist()),
                price_per_kwh=tuple(price.tolist()), sessions=tuple(sessions), peak_floor_kw=self.peak_kw,
                weights=c.weights, sites=tuple(sites))
            self.plan = plan_feeder(req, c.solver_time_limit_s)
            self.plan_request = req
            self.plan_made_ms, self.plan_signature, self.dirty = now_ms, signature, False
            self.n_plans += 1
            self.n_fallbacks += self.plan.solver != "highs"
            evs = {cid: s for cid, s in flex.items() if not self.chargers[cid].is_battery}
            new_offers = self._offers(req, evs, now_ms)
            self.flexibility = compute_flexibility(self.plan, req, now_ms, c.step_ms, c.flexibility_horizon_ms)
            self._track_requests(now_ms, req, edges, base)
        out = self._setpoints(now_ms, flex, base_load_kw)
        for cid in [k for k, a in self.exports.items() if now_ms - a.start_ms >= c.settle_period_ms]:
            self._settle(cid, now_ms)
        settlements, self.pending_settlements = self.pending_settlements, []
        episodes, self.episode_updates = self.episode_updates, []
        flexibility = [self.flexibility] if need and self.flexibility is not None else []
        return DispatchResult(out, new_offers, settlements, self.plan, need, flexibility, episodes)

    def _track_requests(self, now_ms: int, req: PlanRequest, edges: np.ndarray, base: np.ndarray) -> None:
        """Planned (and, once per interval, counterfactual baseline) net import of every live request."""
        assert self.plan is not None and self.limits is not None
        for sid in [k for k, t in self.trackers.items() if t.end_ms + 7 * 24 * HOUR_MS < now_ms]:
            del self.trackers[sid]
        net = base + self.plan.fleet_kw
        live = [tr for tr in self.trackers.values() if tr.end_ms > now_ms]
        baseline = None  # one counterfactual per plan, without every request: the cost does not grow with them
        if any(tr.missing_baseline(edges) for tr in live):
            imp, exp, price = self.limits.without(*(tr.signal_id for tr in live)).profile(edges)
            cf = plan_feeder(replace(req, import_limit_kw=tuple(imp.tolist()), export_limit_kw=tuple(exp.tolist()),
                                     price_per_kwh=tuple(price.tolist())), self.config.solver_time_limit_s)
            baseline = base + cf.fleet_kw
        for tr in live:
            tr.on_plan(now_ms, edges, net, baseline)

    def _offers(self, req: PlanRequest, flex: dict[str, SessionState], now_ms: int) -> list[IncentiveEvent]:
        """Offers when the plan breaks a feeder limit, or meets it only by cutting drivers' requests
        (then the problem is found in a probe plan that serves every request)."""
        plan = self.plan
        if plan is None:
            return []
        probe: Plan | None = plan
        if plan.limit_violation_kwh <= 1e-3:  # probe may become None below
            cut = any(plan.shortfall_kwh.get(cid, 0.0) > 1e-3 for cid in flex)
            finite = np.isfinite(req.import_limit_kw).any() or np.isfinite(req.export_limit_kw).any()
            if not (cut and finite):
                return []
            w = req.weights
            soft = replace(w, limit_violation_per_kwh=min(w.limit_violation_per_kwh, w.shortfall_per_kwh / 10))
            probe = solve_lp(replace(req, weights=soft), self.config.solver_time_limit_s)
            if probe is None or probe.limit_violation_kwh <= 1e-3:
                return []
        assert probe is not None
        real = {cid: self.chargers[cid] for cid in flex}
        offers = propose_offers(probe, req, real, dict(flex), now_ms, self.config.incentives, self.book,
                                self.config.rules)
        self.book = self.book.with_offers(offers)
        return offers

    def _setpoints(self, now_ms: int, flex: dict[str, SessionState],
                   base_load_kw: Sequence[float] | None) -> list[ChargerSetpoint]:
        """Every charger's setpoint through the envelope: per charger, then per site (net export and import at
        the point of interconnection), then the feeder import limit; emitted on change, a site's together."""
        c = self.config
        plan = self.plan
        base = float(base_load_kw[0]) if base_load_kw is not None and len(base_load_kw) else 0.0
        headroom: dict[str, float | None] = {}  # own load of a site not yet covered by discharge, kW
        cands: dict[str, tuple[SafeSetpoint, str | None, float | None]] = {}
        for cid in sorted(set(self.chargers) | set(self.sessions)):
            ch = self.chargers.get(cid)
            hr: float | None = None
            if ch is not None and ch.behind_the_meter:
                if ch.site_id not in headroom:
                    headroom[ch.site_id] = self._own_load(ch.site_id, now_ms)
                hr = headroom[ch.site_id]
            planned = plan.power_at(cid, now_ms) if plan is not None and cid in flex else None
            reason = "optimal"
            message = None
            if plan is not None and cid in flex:
                reason = plan.status.get(cid, plan.reason)
                short = plan.shortfall_kwh.get(cid, 0.0)
                if short > 0:
                    message = f"expected shortfall {short:.2f} kWh"
                if planned is None:
                    planned = 0.0
            safe = self._safe(cid, planned, now_ms, reason, hr)
            if not safe.send:
                continue
            if hr is not None and ch is not None and safe.kw < 0:
                headroom[ch.site_id] = max(0.0, hr + safe.kw)
            cands[cid] = (safe, message, hr)
        live = {cid for cid in cands if (s := self.sessions.get(cid)) is not None and s.connected}
        by_site: dict[str, list[str]] = {}
        held: set[str] = set()  # chargers of a site held to its import limit: a lower value is sent at once
        for cid in sorted(live):
            by_site.setdefault(self.chargers[cid].site_id, []).append(cid)
        for sid, cids in by_site.items():
            new, why = site_envelope({cid: cands[cid][0].kw for cid in cids}, self.site_rules(sid),
                                     self._own_load(sid, now_ms), own_import_kw=self._own_load_high(sid, now_ms))
            if why is None:
                continue
            if why == "site_import_limit":
                held.update(cids)
            for cid in cids:
                safe, message, hr = cands[cid]
                if abs(new[cid] - safe.kw) > 1e-9:
                    cands[cid] = (replace(safe, kw=new[cid], reason="clipped_by_safety"),
                                  _note(message, f"held to the {why.replace('_', ' ')} of site {sid}"), hr)
        self._feeder_cap(now_ms, base, cands, live)
        for sid, (t, net) in self.site_command.items():  # the site's commanded net export since the last interval
            energy = self.site_energy.setdefault(sid, [0.0, 0.0, 0.0, 0.0])
            energy[2] += max(0.0, -net) * min(max(0, now_ms - t), HOUR_MS) / HOUR_MS
        self.site_command = {sid: (now_ms, sum(cands[cid][0].kw for cid in cids)) for sid, cids in by_site.items()}
        emit: set[str] = set()
        for cid, (safe, _, _) in cands.items():
            s = self.sessions.get(cid)
            last = self.last_sent.get(cid)
            if cid not in live:
                if last is None or last.reason != safe.reason or last.setpoint_kw != safe.kw:
                    emit.add(cid)  # idle charger: emit on change only
            elif should_emit(last, safe.kw, safe.reason, now_ms, c.setpoint_threshold_kw, c.setpoint_refresh_ms) \
                    or (cid in held and last is not None and safe.kw < last.setpoint_kw - 1e-6):
                emit.add(cid)
        for cids in by_site.values():  # a site's setpoints go together, so their sum (and schedules) hold
            if len(cids) > 1 and emit.intersection(cids):
                emit.update(cids)
        scheds = self._schedules(now_ms, {cid: cands[cid] for cid in emit if cid in live}, by_site)
        out: list[ChargerSetpoint] = []
        for cid in sorted(emit):
            safe, message, _ = cands[cid]
            valid = c.setpoint_validity_ms
            until = self._credit_until(self.chargers[cid].site_id, now_ms) if cid in self.chargers else None
            if safe.kw < 0 and until is not None:  # discharge that counts on the site meter: not beyond its freshness
                valid = max(1, min(valid, until - now_ms, c.step_ms))  # nor beyond the next reading's decision
            out.append(self._send(cid, now_ms, safe.kw, safe.reason, scheds.get(cid, []), message,
                                  plan.plan_id if plan is not None else "none", valid_ms=valid))
        self._bump_peak(now_ms, base + sum(cands[cid][0].kw for cid in live))
        return out

    def _send(self, cid: str, now_ms: int, kw: float, reason: str, sched: list, message: str | None,
              plan_id: str, fallback_kw: float | None = None, valid_ms: int | None = None) -> ChargerSetpoint:
        c = self.config
        s = self.sessions.get(cid)
        seq = self.sequence.get(cid, 0) + 1
        self.sequence[cid] = seq
        sp = build_setpoint(
            charger_id=cid, feeder_id=self.feeder_id, session_id=s.session_id if s else None, sequence=seq,
            kw=kw, now_ms=now_ms, valid_ms=c.setpoint_validity_ms if valid_ms is None else valid_ms,
            fallback_kw=c.rules.fallback_kw if fallback_kw is None else fallback_kw, schedule=sched, reason=reason,
            plan_id=plan_id, message=message)
        self.last_sent[cid] = sp
        ch = self.chargers.get(cid)
        if ch is not None and ch.bidirectional and s is not None and s.soc_pct is not None:  # only discharge counts
            log = self.sent_log.setdefault(cid, [])
            log.append(sp)
            del log[:-500]
        return sp

    def _credit_until(self, site_id: str, now_ms: int) -> int | None:
        """Until when a site's own load is credited (its meter's freshness), ``None`` if it is not."""
        own = self._own_load(site_id, now_ms)
        st = self.site_states.get(site_id)
        return st.last_meter_ms + self.config.site_meter_stale_ms if own is not None and st is not None else None

    def _own_load_high(self, site_id: str, now_ms: int) -> float | None:
        """The own load the site's import limit holds against until the next step (:meth:`SiteState.own_load_high`);
        ``None`` when the meter is not fresh."""
        st = self.site_states.get(site_id)
        return st.own_load_high(now_ms, self.config.site_meter_stale_ms, self.config.step_ms) if st else None

    def _own_load(self, site_id: str, now_ms: int) -> float | None:
        st = self.site_states.get(site_id)
        own = st.own_load_now(now_ms, self.config.site_meter_stale_ms) if st is not None else None
        # the reading is an interval or more old: credit 90 % of a positive own load (it may have fallen since)
        return own * 0.9 if own is not None and own > 0 else own

    def _feeder_cap(self, now_ms: int, base: float, cands: dict[str, tuple[SafeSetpoint, str | None, float | None]],
                    live: set[str]) -> None:
        """Limits first: charging cut (in proportion) so that base load + fleet stays within the feeder's import
        limit now; the setpoint's message says a driver's energy was cut for it."""
        assert self.limits is not None
        imp, _, _ = self.limits.profile(np.array([now_ms, now_ms + self.config.step_ms]))
        over = base + sum(cands[cid][0].kw for cid in live) - float(imp[0])
        charging = {cid: cands[cid][0].kw for cid in live if cands[cid][0].kw > 0}
        total = sum(charging.values())
        if over <= 1e-9 or total <= 0:
            return
        keep = max(0.0, 1.0 - over / total)
        for cid, kw in charging.items():
            safe, message, hr = cands[cid]
            cands[cid] = (replace(safe, kw=kw * keep, reason="clipped_by_safety"),
                          _note(message, f"charging cut for the feeder import limit {float(imp[0]):.1f} kW"), hr)

    def _schedules(self, now_ms: int, cands: dict[str, tuple[SafeSetpoint, str | None, float | None]],
                   by_site: dict[str, list[str]]) -> dict[str, list[SchedulePoint]]:
        """Schedules of the emitted chargers, each point through the envelope and then, across a site's chargers,
        through the site rules (own load counted only while the meter reading would still be fresh)."""
        c = self.config
        plan = self.plan
        if plan is None:
            return {}
        raw: dict[str, list[tuple[int, float]]] = {}
        for cid, (safe, _, hr) in cands.items():
            if not safe.flexible or cid not in plan.schedules:
                continue
            def clip(v: float, cid: str = cid, hr: float | None = hr) -> float:
                return self._safe(cid, v, now_ms, site_headroom_kw=hr).kw

            pts = schedule_points(plan, cid, now_ms, now_ms + c.schedule_ms, clip)
            raw[cid] = [(p.start, p.kw) for p in pts]
        for sid, cids in by_site.items():
            mine = [cid for cid in cids if cid in raw]
            if not mine:
                continue
            rules = self.site_rules(sid)
            own = self._own_load(sid, now_ms)
            high = self._own_load_high(sid, now_ms)
            until = self._credit_until(sid, now_ms) or now_ms
            times = sorted({t for cid in mine for t, _ in raw[cid]})
            fixed = {cid: cands[cid][0].kw for cid in cids if cid not in raw and cid in cands}
            out: dict[str, list[tuple[int, float]]] = {cid: [] for cid in mine}
            for t in times:
                vals = {cid: _at(raw[cid], t) for cid in mine}
                fresh = own if t < until else None
                new, _ = site_envelope(vals, rules, fresh, sum(fixed.values()),
                                       own_import_kw=high if t < until else None)
                for cid in mine:
                    out[cid].append((t, new[cid]))
            raw.update(out)
        result: dict[str, list[SchedulePoint]] = {}
        for cid, series in raw.items():
            merged: list[SchedulePoint] = []
            for t, v in series:
                kw = round_kw(v)
                if not merged or merged[-1].kw != kw:
                    merged.append(SchedulePoint(start=t, kw=kw))
            result[cid] = merged
        return result

    def revocations(self, now_ms: int) -> list[ChargerSetpoint]:
        """Setpoints that revoke, at once, power in force that is no longer allowed: a deactivated or islanded
        charger, an unplugged car, or discharge after a class downgrade (0 kW or the charge part kept)."""
        out: list[ChargerSetpoint] = []
        for cid, last in sorted(self.last_sent.items()):
            if last.valid_from + max(self.config.schedule_ms, last.valid_until - last.valid_from) <= now_ms:
                continue
            ch = self.chargers.get(cid)
            s = self.sessions.get(cid)
            powered = last.setpoint_kw != 0.0 or any(p.kw != 0.0 for p in last.schedule) or last.fallback_kw > 0
            discharging = last.setpoint_kw < 0 or any(p.kw < 0 for p in last.schedule)
            if not powered:
                continue
            if ch is None or not ch.active:
                reason, message = "clipped_by_safety", "revoked: charger deactivated"
            elif s is not None and s.grid_state != "grid_connected":
                reason, message = "backup_mode", "revoked: islanded"
            elif s is not None and not s.connected:
                reason, message = "unplugged", "revoked: unplugged"
            elif discharging and discharge_limit_kw(ch, s, True, ch.max_discharge_kw) <= 0.0:
                keep = max(0.0, last.setpoint_kw)
                sched = [SchedulePoint(start=p.start, kw=max(0.0, p.kw)) for p in last.schedule]
                out.append(self._send(cid, now_ms, keep, "clipped_by_safety", sched,
                                      f"revoked: no discharge as {ch.interconnection_class}", last.plan_id))
                continue
            else:
                continue
            out.append(self._send(cid, now_ms, 0.0, reason, [], message, last.plan_id, fallback_kw=0.0))
        return out

    def snapshot(self) -> FeederDispatcher:
        """A shallow copy safe to keep (e.g. for a changelog)."""
        return replace(self, chargers=dict(self.chargers), sessions=dict(self.sessions),
                       last_sent=dict(self.last_sent), sequence=dict(self.sequence),
                       site_states=copy.deepcopy(self.site_states), episodes=list(self.episodes),
                       episode_updates=list(self.episode_updates), trackers=copy.deepcopy(self.trackers),
                       registered=dict(self.registered), sites=dict(self.sites),
                       sent_log={k: list(v) for k, v in self.sent_log.items()},
                       site_energy=copy.deepcopy(self.site_energy), site_mark=dict(self.site_mark),
                       power_log={k: list(v) for k, v in self.power_log.items()},
                       site_command=dict(self.site_command), self_consumed_kwh=dict(self.self_consumed_kwh),
                       exports=copy.deepcopy(self.exports), projection_memo={})
