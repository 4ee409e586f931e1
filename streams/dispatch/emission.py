"""Setpoints out: each charger through the envelope, then per site (net export and import at the point
of interconnection), then the feeder import limit; emitted on change or refresh, a site's together, with
their schedules; and revocations of power in force that is no longer allowed.

A part of :class:`~streams.dispatch.dispatcher.FeederDispatcher` (a mixin over its state).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from streams.contracts.models import ChargerSetpoint, SchedulePoint, SiteRegistration
from streams.dispatch.billing_peak import held_load
from streams.dispatch.envelope import Envelope
from streams.dispatch.interconnection import restriction
from streams.dispatch.planner import HOUR_MS, Plan
from streams.dispatch.safety import SafeSetpoint, discharge_limit_kw
from streams.dispatch.setpoints import build_setpoint, round_kw, schedule_points, should_emit
from streams.dispatch.site_rules import site_envelope
from streams.dispatch.site_view import SiteView
from streams.dispatch.state import ChargerInfo, FeederLimits, SessionState

if TYPE_CHECKING:
    from streams.dispatch.config import DispatchConfig

__all__ = ["SetpointEmission"]


def _note(message: str | None, note: str) -> str:
    return note if not message else f"{message}; {note}"


def _at(points: list[tuple[int, float]], t: int) -> float:
    kw = 0.0
    for start, v in points:
        if start <= t:
            kw = v
    return kw


class SetpointEmission(Envelope, SiteView):
    """Setpoints emitted and revoked."""

    feeder_id: str
    config: DispatchConfig
    chargers: dict[str, ChargerInfo]
    sessions: dict[str, SessionState]
    limits: FeederLimits | None
    plan: Plan | None
    last_sent: dict[str, ChargerSetpoint]
    sequence: dict[str, int]
    sent_log: dict[str, list[ChargerSetpoint]]
    site_energy: dict[str, list[float]]
    site_command: dict[str, tuple[int, float]]
    sites: dict[str, SiteRegistration]
    power_log: dict[str, list[tuple[int, float]]]
    last_load: tuple[int, float] | None

    def _setpoints(self, now_ms: int, flex: dict[str, SessionState], base_load_kw: Sequence[float] | None,
                   uncontrolled: dict[str, tuple[float, str]] | None = None) -> list[ChargerSetpoint]:
        """Every charger's setpoint through the envelope: per charger, then per site (net export and import at
        the point of interconnection), then the feeder import limit; emitted on change, a site's together.
        ``uncontrolled``: chargers whose station refused its setpoint, sent their worst-case draw, never cut."""
        fixed = uncontrolled or {}
        c = self.config
        plan = self.plan
        base = float(base_load_kw[0]) if base_load_kw is not None and len(base_load_kw) else 0.0
        held = held_load(self.last_load, now_ms)
        base = max(base, held) if held is not None else base
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
                if plan.lost_at(now_ms):
                    message = _note(message, "feeder import limit lost: the base load alone breaks it")
                if planned is None:
                    planned = 0.0
            if cid in fixed:  # the station does not follow setpoints: sent what it is planned to draw
                planned, message = fixed[cid]
                reason = "clipped_by_safety"
            if ch is not None and ch.bidirectional and (why := restriction(self.sites.get(ch.site_id),
                                                                           ch.inverter_location)):
                message = _note(message, f"no discharge: {why}")  # status or inverter pathway (issue 21)
            safe = self._safe(cid, planned, now_ms, reason, hr)
            if not safe.send:
                continue
            if hr is not None and ch is not None and safe.kw < 0:
                headroom[ch.site_id] = max(0.0, hr + safe.kw)
            cands[cid] = (safe, message, hr)
        # in charger-id order (as ``cands``), never a set's: floats summed over them add up the same in every process
        live = {cid: None for cid in cands if (s := self.sessions.get(cid)) is not None and s.connected}
        by_site: dict[str, list[str]] = {}
        held_site: set[str] = set()  # chargers of a site held to its import limit: a lower value is sent at once
        for cid in sorted(live):
            by_site.setdefault(self.chargers[cid].site_id, []).append(cid)
        for sid, cids in by_site.items():
            new, why = site_envelope({cid: cands[cid][0].kw for cid in cids if cid not in fixed}, self.site_rules(sid),
                                     self._own_load(sid, now_ms), sum(cands[cid][0].kw for cid in cids if cid in fixed),
                                     own_import_kw=self._own_load_high(sid, now_ms))
            if why is None:
                continue
            if why == "site_import_limit":
                held_site.update(cids)
            for cid in new:
                safe, message, hr = cands[cid]
                if abs(new[cid] - safe.kw) > 1e-9:
                    cands[cid] = (replace(safe, kw=new[cid], reason="clipped_by_safety"),
                                  _note(message, f"held to the {why.replace('_', ' ')} of site {sid}"), hr)
        self._feeder_cap(now_ms, base, cands, live, set(fixed))
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
                    or (cid in held_site and last is not None and safe.kw < last.setpoint_kw - 1e-6):
                emit.add(cid)
        for cids in by_site.values():  # a site's setpoints go together, so their sum (and schedules) hold
            if len(cids) > 1 and emit.intersection(cids):
                emit.update(cids)
        scheds = self._schedules(now_ms, {cid: cands[cid] for cid in sorted(emit) if cid in live}, by_site)
        out: list[ChargerSetpoint] = []
        for cid in sorted(emit):
            safe, message, _ = cands[cid]
            valid = c.setpoint_validity_ms
            until = self._credit_until(self.chargers[cid].site_id, now_ms) if cid in self.chargers else None
            if safe.kw < 0 and until is not None:  # discharge that counts on the site meter: not beyond its freshness
                valid = max(1, min(valid, until - now_ms, c.step_ms))  # nor beyond the next reading's decision
            out.append(self._send(cid, now_ms, safe.kw, safe.reason, scheds.get(cid, []), message,
                                  plan.plan_id if plan is not None else "none", valid_ms=valid))
        self._log_fleet(now_ms, sum(cands[cid][0].kw for cid in live))
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
        self.power_log.setdefault(cid, []).append((sp.valid_from, sp.setpoint_kw))  # for dead reckoning
        ch = self.chargers.get(cid)
        if ch is not None and ch.bidirectional and s is not None and s.soc_pct is not None:  # only discharge counts
            log = self.sent_log.setdefault(cid, [])
            log.append(sp)
            del log[:-500]
        return sp

    def _feeder_cap(self, now_ms: int, base: float, cands: dict[str, tuple[SafeSetpoint, str | None, float | None]],
                    live: Collection[str], fixed: Collection[str] = ()) -> None:
        """Limits first: charging cut (in proportion) so that base load + fleet stays within the feeder's import
        limit now; the setpoint's message says a driver's energy was cut for it. A limit the plan found lost
        (the base load alone breaks it) is held at the plan's peak instead: cutting to it would starve drivers
        for nothing."""
        assert self.limits is not None
        imp, _, _ = self.limits.profile(np.array([now_ms, now_ms + self.config.step_ms]))
        cap = float(imp[0])
        if self.plan is not None and self.plan.lost_at(now_ms):
            cap = max(cap, self.plan.peak_kw)
        over = base + sum(cands[cid][0].kw for cid in live) - cap
        charging = {cid: cands[cid][0].kw for cid in live if cands[cid][0].kw > 0 and cid not in fixed}
        total = sum(charging.values())
        if over <= 1e-9 or total <= 0:
            return
        keep = max(0.0, 1.0 - over / total)
        for cid, kw in charging.items():
            safe, message, hr = cands[cid]
            cands[cid] = (replace(safe, kw=kw * keep, reason="clipped_by_safety"),
                          _note(message, f"charging cut for the feeder import limit {cap:.1f} kW"), hr)

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
            elif discharging and discharge_limit_kw(
                    ch, s, True, self._own_load(ch.site_id, now_ms) if ch.behind_the_meter else ch.max_discharge_kw
            ) <= 0.0:  # behind the meter: only against a fresh reading of the site's own load
                keep = max(0.0, last.setpoint_kw)
                sched = [SchedulePoint(start=p.start, kw=max(0.0, p.kw)) for p in last.schedule]
                why = restriction(self.sites.get(ch.site_id), ch.inverter_location)
                out.append(self._send(cid, now_ms, keep, "clipped_by_safety", sched,
                                      f"revoked: no discharge as {ch.interconnection_class}"
                                      + (f" ({why})" if why else ""), last.plan_id))
                continue
            else:
                continue
            out.append(self._send(cid, now_ms, 0.0, reason, [], message, last.plan_id, fallback_kw=0.0))
        return out
