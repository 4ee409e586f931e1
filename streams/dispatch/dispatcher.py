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

This class is the coordinator: its state is the fields below, each responsibility a mixin in its own module
(``inputs``, ``dead_reckoning``, ``site_view``, ``settlement``, ``plan_building``, ``offering``,
``request_tracking``, ``envelope``, ``emission``, ``billing_peak``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields, replace

from streams.contracts.models import ChargerSetpoint, Flexibility, IncentiveEvent, Settlement, SiteRegistration
from streams.dispatch.arrivals import ArrivalForecaster
from streams.dispatch.backup import BackupEpisode
from streams.dispatch.config import DispatchConfig, changed_fields
from streams.dispatch.dead_reckoning import DeadReckoning
from streams.dispatch.emission import SetpointEmission
from streams.dispatch.flexibility import compute_flexibility
from streams.dispatch.incentives import OfferBook
from streams.dispatch.offering import Offering
from streams.dispatch.plan_building import PlanBuilding
from streams.dispatch.planner import Plan, PlanRequest, plan_feeder
from streams.dispatch.request_tracking import RequestTracking
from streams.dispatch.requests import RequestTracker
from streams.dispatch.settlement import _ExportAcc as _SettlementExportAcc
from streams.dispatch.sites import SiteState
from streams.dispatch.state import ChargerInfo, FeederLimits, SessionState

__all__ = ["DispatchConfig", "DispatchResult", "FeederDispatcher"]


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


class _ExportAcc(_SettlementExportAcc):
    """Kept so that checkpoints written before the split (which name this class) still decode."""


@dataclass
class FeederDispatcher(DeadReckoning, PlanBuilding, Offering, RequestTracking, SetpointEmission):
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
    last_load: tuple[int, float] | None = None
    """The last measured feeder load (end of its interval, kW): a plan does not count on the load falling
    below it in the next ``LOAD_HOLD_MS`` (a forecast that dips under it would be filled with EV load)."""
    load_history: list[tuple[int, float]] = field(default_factory=list)
    """Measured feeder loads (end of interval, kW) of the last day: a plan does not count on the load falling below
    what it was at the same time yesterday (the base load forecast can miss a daily ramp)."""
    fleet_log: list[tuple[int, float]] = field(default_factory=list)
    """The EV power commanded (from, kW) over the last ``FLEET_LOG_MS``: added to a meter's reading of an interval
    for the billing month's running peak (the meters measure the feeder's other load)."""
    last_sent: dict[str, ChargerSetpoint] = field(default_factory=dict)
    sequence: dict[str, int] = field(default_factory=dict)
    exports: dict[str, _SettlementExportAcc] = field(default_factory=dict)
    pending_settlements: list[Settlement] = field(default_factory=list)
    n_plans: int = 0
    n_fallbacks: int = 0
    n_solver_time_limits: int = 0
    """Plans whose solve hit the wall-clock hang guard (each one a non-reproducible outcome)."""
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
    setpoint_answers: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Per charger: the newest (sequence, answer) its station gave to a setpoint (telemetry v3)."""
    n_refused_setpoints: int = 0
    """Answers rejected / error / timeout taken in (each charger planned as uncontrolled load until it accepts)."""
    site_energy: dict[str, list[float]] = field(default_factory=dict)
    """Per site: metered export at its meter, its chargers' reported discharge, its commanded net export (kWh),
    and the number of site meter readings."""
    projection_memo: dict[tuple, float] = field(default_factory=dict, repr=False)
    """Discharge since the SoC report, by (charger, time, log state): a cache of :meth:`_projected`."""
    site_mark: dict[str, tuple[float, ...]] = field(default_factory=dict)
    """Per charger: its site's counters at its last report (the start of a settlement period beginning then)."""
    site_command: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Per site: the net power commanded at the last interval (time, kW; − = export)."""
    power_log: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    reported_power: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    """Per charger at a site with a meter: (time, reported power) at each change, for the site meter's stale
    window, so that a site reading is net of its assets at the reading's time, not at the plan's."""
    """Per charger: (start, kW) of the setpoints sent since its last report (dead reckoning)."""

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

    def reconfigure(self, config: DispatchConfig) -> list[str]:
        """Take ``config`` (the settings the worker runs with now) in place of the one this state was built with, as
        after a restart from a checkpoint; the next interval re-plans. The limits keep their grid signals over the new
        defaults. An arrivals forecast learnt on another calendar (time zone, bin) starts afresh. Returns the names
        of the settings that changed."""
        changed = changed_fields(self.config, config)
        if not changed:
            return []
        self.config = config
        if self.limits is not None:
            self.limits = replace(self.limits, default_import_kw=config.default_import_limit_kw,
                                  default_export_kw=config.default_export_limit_kw,
                                  default_price=config.default_price_per_kwh)
        fc = self.forecaster
        if fc is None or (fc.timezone, fc.bin_minutes) != (config.timezone, config.arrival_bin_minutes):
            self.forecaster = ArrivalForecaster(timezone=config.timezone, bin_minutes=config.arrival_bin_minutes)
        self.dirty = True
        return changed

    # --- the interval ---------------------------------------------------------------------------
    def on_interval(self, now_ms: int, base_load_kw: Sequence[float] | None = None,
                    base_start_ms: int | None = None, base_step_ms: int | None = None,
                    base_upper_kw: Sequence[float] | None = None) -> DispatchResult:
        """Re-plan if needed and return the setpoints to emit now.

        ``base_load_kw`` is the forecast of the feeder's other load minus PV (kW) for consecutive
        ``base_step_ms`` periods from ``base_start_ms`` (defaults: the planning step, ``now_ms``);
        ``base_upper_kw`` its upper prediction bound on the same periods (the near-term peak holds against it).
        """
        c = self.config
        assert self.limits is not None and self.forecaster is not None
        self.projection_memo.clear()
        self.limits = self.limits.pruned(now_ms)
        self.book = self.book.pruned(now_ms)
        flex = self.flexible_sessions(now_ms)
        held = self.uncontrolled(flex)  # stations that refused their setpoint: load the others absorb
        flex = {cid: s for cid, s in flex.items() if cid not in held}
        signature = tuple((cid, s.session_id) for cid, s in flex.items())
        need = (self.plan is None or self.dirty or signature != self.plan_signature
                or now_ms - self.plan_made_ms >= c.replan_ms or now_ms >= self.plan.edges_ms[-1] - c.step_ms)
        new_offers: list[IncentiveEvent] = []
        if need:
            self._bump_peak(now_ms, 0.0)
            plan_base, plan_upper = base_load_kw, base_upper_kw
            if held:
                extra = sum(kw for kw, _ in held.values())
                plan_base = [v + extra for v in base_load_kw] if base_load_kw is not None and len(base_load_kw) \
                    else [extra]
                plan_upper = [v + extra for v in base_upper_kw] if base_upper_kw is not None else None
            req, edges, base = self.plan_request_at(now_ms, flex, plan_base, base_start_ms, base_step_ms, plan_upper)
            self.plan = plan_feeder(req, c.solver_limits)
            self.plan_request = req
            self.plan_made_ms, self.plan_signature, self.dirty = now_ms, signature, False
            self.n_plans += 1
            self.n_fallbacks += self.plan.solver != "highs"
            self.n_solver_time_limits += self.plan.solver_failure == "time_limit"
            evs = {cid: s for cid, s in flex.items() if not self.chargers[cid].is_battery}
            new_offers = self._offers(req, evs, now_ms)
            self.flexibility = compute_flexibility(self.plan, req, now_ms, c.step_ms, c.flexibility_horizon_ms)
            self._track_requests(now_ms, req, edges, base)
        out = self._setpoints(now_ms, flex, base_load_kw, held)
        for cid in [k for k, a in self.exports.items() if now_ms - a.start_ms >= c.settle_period_ms]:
            self._settle(cid, now_ms)
        settlements, self.pending_settlements = self.pending_settlements, []
        episodes, self.episode_updates = self.episode_updates, []
        flexibility = [self.flexibility] if need and self.flexibility is not None else []
        return DispatchResult(out, new_offers, settlements, self.plan, need, flexibility, episodes)

    def snapshot(self) -> FeederDispatcher:
        """A shallow copy safe to keep (e.g. for a changelog)."""
        return replace(self, chargers=dict(self.chargers), sessions=dict(self.sessions),
                       last_sent=dict(self.last_sent), sequence=dict(self.sequence),
                       site_states=copy.deepcopy(self.site_states), episodes=list(self.episodes),
                       episode_updates=list(self.episode_updates), trackers=copy.deepcopy(self.trackers),
                       registered=dict(self.registered), sites=dict(self.sites),
                       sent_log={k: list(v) for k, v in self.sent_log.items()},
                       site_energy=copy.deepcopy(self.site_energy), site_mark=dict(self.site_mark),
                       site_command=dict(self.site_command), setpoint_answers=dict(self.setpoint_answers),
                       self_consumed_kwh=dict(self.self_consumed_kwh),
                       exports=copy.deepcopy(self.exports), projection_memo={},
                       power_log={k: list(v) for k, v in self.power_log.items()},
                       reported_power={k: list(v) for k, v in self.reported_power.items()},
                       load_history=list(self.load_history), fleet_log=list(self.fleet_log))
