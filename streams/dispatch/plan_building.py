"""The planner's request from the dispatcher's state: the flexible sessions, their energy and power bounds
(cars and stationary batteries), the sites with something to say, and the base load on the planning grid.

A part of :class:`~streams.dispatch.dispatcher.FeederDispatcher` (a mixin over its state).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from streams.dispatch.arrivals import ArrivalForecaster
from streams.dispatch.billing_peak import LOAD_HOLD_MS, BillingPeak, held_load, ramped_load, yesterday_load
from streams.dispatch.incentives import OfferBook
from streams.dispatch.planner import HOUR_MS, PlanRequest, PlanSession, PlanSite, time_grid
from streams.dispatch.safety import capacity_kwh, charge_limit_kw, discharge_limit_kw, reserve_pct
from streams.dispatch.sites import SiteState
from streams.dispatch.state import ChargerInfo, FeederLimits, SessionState

if TYPE_CHECKING:
    from streams.dispatch.config import DispatchConfig

__all__ = ["PlanBuilding", "period_max"]


def period_max(vals: np.ndarray, start_ms: int, step_ms: int, period_ms: int) -> np.ndarray:
    """Per value of a forecast of consecutive ``step_ms`` intervals from ``start_ms``: the largest of the values whose
    intervals end in the same meter reading period (``period_ms``, aligned to the epoch). Read from fewer readings than
    intervals, a forecast saw-tooths within a period, and a plan would put EV load into its false valleys.

    >>> period_max(np.array([5.0, 9.0, 7.0, 1.0, 2.0]), 0, 5, 15).tolist()
    [9.0, 9.0, 9.0, 2.0, 2.0]
    """
    ends = start_ms + (np.arange(len(vals)) + 1) * step_ms
    block = (ends - 1) // period_ms
    out = vals.copy()
    for b in np.unique(block):
        sel = block == b
        out[sel] = vals[sel].max()
    return out


class PlanBuilding(BillingPeak):
    """The planner's request built from the dispatcher's state."""

    config: DispatchConfig
    chargers: dict[str, ChargerInfo]
    sessions: dict[str, SessionState]
    limits: FeederLimits | None
    book: OfferBook
    site_states: dict[str, SiteState]
    feeder_id: str
    forecaster: ArrivalForecaster | None
    last_load: tuple[int, float] | None
    load_history: list[tuple[int, float]]

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
            margin = c.site_peak_margin * st.forecast.abs_err_kw if st is not None and charge > 0 else 0.0
            out.append(PlanSite(sid, tuple(base.tolist()), tuple(imp.tolist()), tuple(exp.tolist()),
                                float(charge), float(floor), float(margin)))
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
            reserve_kwh=reserve, setpoint_lag_ms=c.setpoint_lag_ms, taper_floor=c.charge_taper_floor,
            taper_soc_kwh=None if cap is None or c.charge_taper_soc_pct is None
            else c.charge_taper_soc_pct / 100.0 * cap,
            discharge_windows=None if ch.v2g_enrolled else export_windows,
            blocked_windows=self.book.windows(cid, "delay_charging"), site_id=ch.site_id,
            discharge_hold_h=c.setpoint_validity_ms / HOUR_MS,  # the envelope's reserve rule, planned
        )

    def _plan_battery(self, cid: str, ch: ChargerInfo, s: SessionState, now_ms: int, site_known: bool) -> PlanSession:
        """A stationary battery: present over the whole horizon, no energy request; it ends the horizon no lower than it
        starts nor than its target SoC (``battery_target_soc_pct``, within its bounds), so a drained battery
        recharges within a horizon instead of each re-plan putting the recharge off."""
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
        target = c.battery_target_soc_pct / 100.0 * cap if cap is not None else 0.0
        final = None if soc_kwh is None or top is None else min(max(soc_kwh, reserve, target), top)
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
        period = self._meter_period_ms()
        if self.config.base_period_max and period > step:
            vals = period_max(vals, start, step, period)
        mid = (edges[:-1] + edges[1:]) // 2
        idx = np.clip((mid - start) // step, 0, len(vals) - 1)
        return vals[idx]

    def _meter_period_ms(self) -> int:
        """The feeder meter's reading period as the gap between its last two readings (0 before two)."""
        h = self.load_history
        return h[-1][0] - h[-2][0] if len(h) >= 2 else 0

    def plan_request_at(self, now_ms: int, flex: dict[str, SessionState], base_load_kw: Sequence[float] | None,
                        base_start_ms: int | None, base_step_ms: int | None,
                        base_upper_kw: Sequence[float] | None = None) -> tuple[PlanRequest, np.ndarray, np.ndarray]:
        """The planner's request at ``now_ms`` for the ``flex`` sessions (and, if configured, the arrivals
        forecast), with its time grid and base load per step. ``base_upper_kw`` (the forecast's upper prediction
        bound, on the periods of ``base_load_kw``) is the base the near-term peak holds against, if configured."""
        c = self.config
        assert self.limits is not None and self.forecaster is not None
        edges = time_grid(now_ms, c.step_ms, c.horizon_ms, c.fine_ms, c.coarse_step_ms)
        imp, exp, price = self.limits.profile(edges)
        base = self._base(edges, base_load_kw, base_start_ms if base_start_ms is not None else now_ms,
                          base_step_ms or c.step_ms)
        upper = None
        if base_upper_kw is not None and len(base_upper_kw):
            upper = self._base(edges, base_upper_kw, base_start_ms if base_start_ms is not None else now_ms,
                               base_step_ms or c.step_ms)
        held = held_load(self.last_load, now_ms)
        if held is not None:
            # the last reading holds for a while, no higher than the forecast's upper prediction bound: a load the
            # forecast sees falling (after its daily peak) is not planned flat, the room it leaves unused
            near = edges[:-1] < now_ms + LOAD_HOLD_MS
            base = np.where(near, np.maximum(base, held if upper is None else np.minimum(held, upper)), base)
        mids = (edges[:-1] + edges[1:]) // 2
        yesterday = yesterday_load(self.load_history, mids, LOAD_HOLD_MS)
        base = np.fmax(base, yesterday)  # NaN where yesterday was not measured
        if c.weights.flatten_per_kwh > 0 and held is not None:
            # flattening defers EV load into the forecast's valleys: only into those yesterday measured (a forecast
            # learnt without a day of history has no daily shape); elsewhere the last reading
            base = np.where(np.isnan(yesterday), held, base)
        if c.ramp_hold:
            # a rising load goes on rising for a while, but no higher than the forecast's upper prediction bound: a
            # forecast that sees the turn of the ramp coming is not overruled by a straight line through it
            ramp = ramped_load(self.load_history, mids)
            base = np.fmax(base, ramp if upper is None else np.minimum(ramp, np.maximum(upper, base)))  # NaN: no ramp
        near_base: tuple[float, ...] = ()
        upper_ms = c.near_peak_upper_ms
        if upper_ms > 0 and upper is not None:
            soon = edges[:-1] < now_ms + upper_ms
            near_base = tuple(np.where(soon, np.maximum(base, upper), base).tolist())  # never below the plan's base
        upper_base: tuple[float, ...] = ()
        if c.weights.upper_peak_per_kw > 0 and upper is not None:
            upper_base = tuple(np.fmax(upper, base).tolist())
        sites = self._plan_sites(edges, now_ms, flex)
        known = {p.site_id for p in sites if (st := self.site_states.get(p.site_id)) is not None
                 and st.last_own_kw is not None}
        sessions = [self._plan_session(cid, s, now_ms, self.chargers[cid].site_id in known)
                    for cid, s in flex.items()]
        if c.forecast_arrivals:
            sessions += self.forecaster.expected_sessions(now_ms, int(edges[-1]))
        scenarios: tuple[tuple[float, ...], ...] = ()
        if c.weights.scenario_share > 0 and upper is not None:
            # the load as far under the forecast as its upper bound is over it: the first step hedges against a
            # forecast peak that may not come
            scenarios = (tuple(np.maximum(2.0 * base - np.fmax(upper, base), 0.0).tolist()),)
        req = PlanRequest(
            feeder_id=self.feeder_id, edges_ms=tuple(int(e) for e in edges), base_kw=tuple(base.tolist()),
            import_limit_kw=tuple(imp.tolist()), export_limit_kw=tuple(exp.tolist()),
            price_per_kwh=tuple(price.tolist()), sessions=tuple(sessions), peak_floor_kw=self.peak_kw,
            weights=c.weights, sites=tuple(sites), near_base_kw=near_base,
            upper_base_kw=upper_base, scenario_base_kw=scenarios)
        return req, edges, base
