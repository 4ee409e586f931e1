"""What a feeder's dispatcher is told: registrations, telemetry (sessions, learnt arrivals, export for
settlement, backup episodes), grid signals, incentive answers and the measured feeder load.

A part of :class:`~streams.dispatch.dispatcher.FeederDispatcher` (a mixin over its state).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

from streams.contracts.models import (
    ChargerRegistration,
    ChargerSetpoint,
    ChargerTelemetry,
    GridSignal,
    IncentiveResponse,
    SiteRegistration,
)
from streams.dispatch.arrivals import ArrivalForecaster
from streams.dispatch.backup import BackupEpisode
from streams.dispatch.billing_peak import DAY_MS, LOAD_HOLD_MS
from streams.dispatch.incentives import OfferBook, apply_response
from streams.dispatch.requests import RequestTracker
from streams.dispatch.safety import charge_limit_kw
from streams.dispatch.settlement import ExportSettlement
from streams.dispatch.site_rules import outside_rating
from streams.dispatch.site_view import SiteView
from streams.dispatch.state import (
    ChargerInfo,
    FeederLimits,
    SessionState,
    charger_from_registration,
    session_from_telemetry,
)

if TYPE_CHECKING:
    from streams.dispatch.config import DispatchConfig

__all__ = ["DispatchInputs"]


class DispatchInputs(SiteView, ExportSettlement):
    """The records a feeder's dispatcher is fed."""

    feeder_id: str
    config: DispatchConfig
    chargers: dict[str, ChargerInfo]
    sessions: dict[str, SessionState]
    limits: FeederLimits | None
    forecaster: ArrivalForecaster | None
    book: OfferBook
    dirty: bool
    episodes: list[BackupEpisode]
    episode_updates: list[BackupEpisode]
    trackers: dict[str, RequestTracker]
    registered: dict[str, ChargerInfo]
    sites: dict[str, SiteRegistration]
    sent_log: dict[str, list[ChargerSetpoint]]
    n_refused_telemetry: int
    last_load: tuple[int, float] | None
    setpoint_answers: dict[str, tuple[int, str]]
    n_refused_setpoints: int
    load_history: list[tuple[int, float]]

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

    def on_telemetry(self, tel: ChargerTelemetry) -> None:
        """Update a charger's session; learns arrivals and accumulates V2G export for settlement."""
        if tel.feeder_id != self.feeder_id:
            return
        ch = self.registered.get(tel.charger_id)
        if ch is not None and outside_rating(tel, ch) is not None:
            self.n_refused_telemetry += 1  # impossible power: never settled, never used for headroom
            return
        if tel.setpoint_sequence is not None and tel.setpoint_answer is not None:
            self._on_answer(tel.charger_id, tel.setpoint_sequence, tel.setpoint_answer)
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
        self._accrue_export(tel, prev, ch)
        if new.connected and new.session_id and new.departure_ms and new.plugged_at_ms == tel.timestamp:
            energy = new.remaining_energy_kwh()
            if energy:
                self.forecaster.observe(new.session_id, tel.timestamp, new.departure_ms, energy, new.max_charge_kw)
        if prev is not None and prev.connected and not new.connected:
            self._settle(tel.charger_id, tel.timestamp)
        self._backup_transition(prev, new)
        self.sessions[tel.charger_id] = new

    def _on_answer(self, cid: str, sequence: int, answer: str) -> None:
        """A station's answer to setpoint ``sequence``: the newest answer says whether it follows setpoints."""
        old = self.setpoint_answers.get(cid)
        if old is not None and (sequence < old[0] or old == (sequence, answer)):
            return  # an older answer, or the same one again
        self.setpoint_answers[cid] = (sequence, answer)
        if answer != "accepted":
            self.n_refused_setpoints += 1
        if (old is not None and old[1] != "accepted") != (answer != "accepted"):
            self.dirty = True

    def uncontrolled(self, flex: dict[str, SessionState]) -> dict[str, tuple[float, str]]:
        """The sessions of ``flex`` whose station's newest answer to a setpoint was rejected / error / timeout:
        their worst-case draw (the larger of the reported power and the charge rating, kW) and why. They are
        planned as load, not controlled, until the station accepts a later setpoint."""
        out: dict[str, tuple[float, str]] = {}
        for cid, s in flex.items():
            ans = self.setpoint_answers.get(cid)
            if ans is None or ans[1] == "accepted":
                continue
            kw = max(s.power_kw, charge_limit_kw(self.chargers[cid], s))
            out[cid] = (kw, f"uncontrolled: the station answered {ans[1]} to setpoint {ans[0]}; "
                            f"planned as {kw:g} kW of load until it accepts one")
        return out

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
        billing-month running peak includes it (with the EV power commanded over the interval) and requests record
        what was delivered."""
        self._bump_measured(now_ms, kw)
        if math.isfinite(kw):
            self.last_load = (now_ms, float(kw))
            hist = self.load_history
            if not hist or now_ms > hist[-1][0]:
                hist.append((now_ms, float(kw)))
            keep = now_ms - DAY_MS - LOAD_HOLD_MS
            while hist and hist[0][0] < keep:
                hist.pop(0)
            for tr in self.trackers.values():
                tr.on_measured(now_ms - self.config.step_ms, kw)

    def backup_episodes(self, charger_id: str | None = None) -> list[BackupEpisode]:
        """Recorded backup episodes (last 1,000), oldest first; open ones have ``end_ms=None``."""
        return [e for e in self.episodes if charger_id is None or e.charger_id == charger_id]
