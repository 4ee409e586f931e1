"""Sites as dispatch sees them: the rules at each point of interconnection (from registrations)
and each site's own load (learnt from its meter), credited only while the meter is fresh.

A part of :class:`~streams.dispatch.dispatcher.FeederDispatcher` (a mixin over its state).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from streams.contracts.models import MeterReading, SiteRegistration
from streams.dispatch.billing_peak import BillingPeak, mean_power
from streams.dispatch.interconnection import charger_class
from streams.dispatch.planner import HOUR_MS
from streams.dispatch.site_rules import SiteRules, site_rules
from streams.dispatch.sites import SiteLoadForecast, SiteState
from streams.dispatch.state import ChargerInfo, SessionState

if TYPE_CHECKING:
    from streams.dispatch.config import DispatchConfig

__all__ = ["SiteView"]


class SiteView(BillingPeak):
    """Each site's rules at its point of interconnection and its own load."""

    feeder_id: str
    config: DispatchConfig
    chargers: dict[str, ChargerInfo]
    sessions: dict[str, SessionState]
    site_states: dict[str, SiteState]
    reported_power: dict[str, list[tuple[int, float]]]
    registered: dict[str, ChargerInfo]
    sites: dict[str, SiteRegistration]
    site_energy: dict[str, list[float]]

    def site_rules(self, site_id: str) -> SiteRules:
        """The rules at the site's point of interconnection (site registration and chargers, strictest)."""
        return site_rules(site_id, self.sites.get(site_id), self.registered.values())

    def _refresh_site(self, site_id: str) -> None:
        rules = self.site_rules(site_id)
        for cid, info in self.registered.items():
            if info.site_id != site_id:
                continue
            cls = charger_class(rules.interconnection_class, self.sites.get(site_id), info.inverter_location)
            export = rules.export_limit_kw if cls == rules.interconnection_class else 0.0
            self.chargers[cid] = replace(info, interconnection_class=cls, export_limit_kw=export,
                                         site_import_limit_kw=rules.import_limit_kw)

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
        since = st.last_meter_ms if 0 <= st.last_meter_ms < reading.timestamp <= st.last_meter_ms + HOUR_MS else None
        assets = sum(self._power_over(cid, s, since, reading.timestamp) for cid, s in self.sessions.items()
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
        log = self.reported_power.setdefault(cid, [])
        if log and log[-1][0] > t_ms:
            return  # out of order: the log keeps the newest
        if not log or log[-1][1] != kw:
            log.append((t_ms, kw))
        keep = t_ms - self.config.site_meter_stale_ms - self.config.step_ms
        while len(log) > 1 and log[1][0] <= keep:
            del log[0]

    def _power_over(self, cid: str, s: SessionState, start_ms: int | None, end_ms: int) -> float:
        """A charger's mean reported power over ``[start_ms, end_ms)``, the metering period a reading stamped
        ``end_ms`` ends (it averages over it); the power at ``end_ms`` where the period is not known
        (``start_ms`` None) or its power log does not reach back to its start.

        >>> from types import SimpleNamespace
        >>> v = SimpleNamespace(reported_power={"c": [(0, 0.0), (240_000, -3.0)]})
        >>> SiteView._power_over(v, "c", None, 0, 300_000)
        -0.6
        """
        log = self.reported_power.get(cid, [])
        if start_ms is None or not log or log[0][0] > start_ms:
            return self._power_then(cid, s, end_ms)
        return mean_power(log, start_ms, end_ms)

    def _power_then(self, cid: str, s: SessionState, t_ms: int) -> float:
        """A charger's reported power (grid-connected and plugged in, else 0) at ``t_ms``, from its power log
        where it reaches back that far, else now."""
        then = [kw for t, kw in self.reported_power.get(cid, []) if t <= t_ms]
        if then:
            return then[-1]
        return s.power_kw if s.connected and s.grid_state == "grid_connected" else 0.0

    def site_own_load_kw(self, site_id: str, t_ms: int) -> float | None:
        """Forecast own load of a site at ``t_ms`` (``None`` if its meter never reported)."""
        st = self.site_states.get(site_id)
        return None if st is None else st.forecast.at(t_ms)

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
