"""Sites as dispatch sees them: the rules at each point of interconnection (from registrations)
and each site's own load (learnt from its meter), credited only while the meter is fresh.

A part of :class:`~streams.dispatch.dispatcher.FeederDispatcher` (a mixin over its state).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from streams.contracts.models import MeterReading, SiteRegistration
from streams.dispatch.billing_peak import BillingPeak
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
        assets = sum(s.power_kw for cid, s in self.sessions.items()
                     if s.connected and s.grid_state == "grid_connected" and cid in self.chargers
                     and self.chargers[cid].site_id == sid)
        own = reading.active_power_kw - assets
        energy = self.site_energy.setdefault(sid, [0.0, 0.0, 0.0, 0.0])
        if 0 <= st.last_meter_ms < reading.timestamp:  # export at the point of interconnection, held until now
            held = min(reading.timestamp - st.last_meter_ms, HOUR_MS) / HOUR_MS
            energy[0] += max(0.0, -reading.active_power_kw) * held
        energy[3] += 1
        st.forecast.observe(reading.timestamp, own)
        if reading.timestamp >= st.last_meter_ms:
            st.last_meter_ms, st.last_own_kw = reading.timestamp, own
        m = self._month(reading.timestamp)
        if m != st.peak_month:
            st.peak_month, st.peak_kw = m, 0.0
        st.peak_kw = max(st.peak_kw, reading.active_power_kw)

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
        """The higher of the site's last measured own load and its forecast (the import limit holds against it);
        ``None`` when the meter is not fresh."""
        st = self.site_states.get(site_id)
        if st is None or st.last_own_kw is None or now_ms - st.last_meter_ms > self.config.site_meter_stale_ms:
            return None
        fc = st.forecast.at(now_ms)
        return max(st.last_own_kw, fc) if fc is not None else st.last_own_kw

    def _own_load(self, site_id: str, now_ms: int) -> float | None:
        st = self.site_states.get(site_id)
        own = st.own_load_now(now_ms, self.config.site_meter_stale_ms) if st is not None else None
        # the reading is an interval or more old: credit 90 % of a positive own load (it may have fallen since)
        return own * 0.9 if own is not None and own > 0 else own
