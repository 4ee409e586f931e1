"""Safety envelope: every setpoint passes through :func:`safe_setpoint`, whatever the optimiser said.

Rules, in order:
1. unknown or inactive charger → nothing is sent;
2. islanded / backup mode → nothing is sent (no grid setpoint), not flexible;
3. stale telemetry (not heard for ``stale_seconds``) or no telemetry → the safe fallback
   (``fallback_kw`` clipped to [0, charge limit]), reason ``stale_telemetry``, not flexible;
4. not connected → 0 kW, reason ``unplugged``;
5. non-finite plan value → 0 kW;
6. clip to [−discharge limit, charge limit], where the charge limit is the smaller of the registered and
   reported ratings, and the discharge limit is 0 unless the charger is bidirectional and the driver is
   enrolled (or accepted an export offer; a stationary battery is always dispatchable), and then
   - ``parallel_exporting``: never above the approved export limit;
   - ``parallel_non_exporting`` (V2H / V2B behind the meter): never above ``site_headroom_kw``, the site's
     own load not yet covered by other discharging assets (unknown → no discharge), so the site never
     exports;
   - ``non_parallel``: no discharge;
7. SoC reserve: no discharge without a known SoC and capacity or at/below the reserve (a battery's
   ``min_soc_pct``), and never so much that the SoC would fall below the reserve within the step;
8. a stationary battery never charges above its ``max_soc_pct`` within the step.
A changed value gets reason ``clipped_by_safety``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from streams.dispatch.state import ChargerInfo, SessionState

__all__ = ["SafeSetpoint", "SafetyRules", "capacity_kwh", "charge_limit_kw", "discharge_limit_kw", "reserve_pct",
           "safe_setpoint"]


@dataclass(frozen=True, slots=True)
class SafetyRules:
    """Parameters of the envelope."""

    reserve_soc_pct: float = 30.0
    stale_seconds: float = 900.0
    fallback_kw: float = 0.0


@dataclass(frozen=True, slots=True)
class SafeSetpoint:
    """Outcome of the envelope for one charger: ``send`` False means emit nothing."""

    send: bool
    kw: float = 0.0
    reason: str = "optimal"
    flexible: bool = False


def _nonneg(x: float | None) -> float:
    return max(0.0, float(x)) if x is not None and math.isfinite(x) else 0.0


def charge_limit_kw(charger: ChargerInfo, session: SessionState | None) -> float:
    """Smallest of the registered and reported charge ratings, kW (>= 0)."""
    lim = _nonneg(charger.max_charge_kw)
    if session is not None:
        lim = min(lim, _nonneg(session.max_charge_kw))
    return lim


def discharge_limit_kw(charger: ChargerInfo, session: SessionState | None, export_allowed: bool = False,
                       site_headroom_kw: float | None = None) -> float:
    """Most discharge power the grid rules allow now, kW (>= 0), before the SoC rule.

    ``site_headroom_kw`` is the site's own load still uncovered (behind-the-meter discharge of a
    ``parallel_non_exporting`` site); ``None`` = unknown → no behind-the-meter discharge.
    """
    consent = charger.v2g_enrolled or export_allowed or charger.is_battery
    if not charger.bidirectional or not consent:
        return 0.0
    if charger.may_export:
        lim = min(_nonneg(charger.max_discharge_kw), _nonneg(charger.export_limit_kw))
    elif charger.interconnection_class == "parallel_non_exporting":
        lim = min(_nonneg(charger.max_discharge_kw), _nonneg(site_headroom_kw))
    else:
        return 0.0
    if session is not None:
        lim = min(lim, _nonneg(session.max_discharge_kw))
    return lim


def reserve_pct(session: SessionState, rules: SafetyRules, charger: ChargerInfo | None = None) -> float:
    """The driver's reserve SoC, a battery's registered ``min_soc_pct`` (the higher of both), or the default."""
    r = session.reserve_soc_pct
    out = float(r) if r is not None and math.isfinite(r) else rules.reserve_soc_pct
    if charger is not None and charger.is_battery and charger.min_soc_pct is not None:
        out = float(charger.min_soc_pct) if r is None else max(out, float(charger.min_soc_pct))
    return out


def capacity_kwh(charger: ChargerInfo | None, session: SessionState) -> float | None:
    """Battery capacity: reported by telemetry, else registered (stationary battery)."""
    cap = session.capacity_kwh
    if (cap is None or not math.isfinite(cap)) and charger is not None and charger.battery_capacity_kwh:
        cap = charger.battery_capacity_kwh
    return cap if cap is not None and math.isfinite(cap) and cap > 0 else None


def safe_setpoint(planned_kw: float | None, charger: ChargerInfo | None, session: SessionState | None,
                  now_ms: int, step_seconds: float, rules: SafetyRules, export_allowed: bool = False,
                  reason: str = "optimal", site_headroom_kw: float | None = None) -> SafeSetpoint:
    """Apply every rule to a planned value (``None`` = no plan for this charger → 0 kW).

    ``step_seconds`` is how long the setpoint may be applied (its validity), used by the SoC rules;
    ``site_headroom_kw`` bounds behind-the-meter discharge (see :func:`discharge_limit_kw`).
    """
    if charger is None or not charger.active:
        return SafeSetpoint(send=False, reason="unknown_charger")
    if session is not None and session.grid_state != "grid_connected":
        return SafeSetpoint(send=False, reason="backup_mode")
    if session is None or session.is_stale(now_ms, rules.stale_seconds):
        fb = min(_nonneg(rules.fallback_kw), charge_limit_kw(charger, session))
        if session is not None and not session.connected:
            fb = 0.0
        return SafeSetpoint(send=True, kw=fb, reason="stale_telemetry", flexible=False)
    if not session.connected:
        return SafeSetpoint(send=True, kw=0.0, reason="unplugged", flexible=False)
    raw = planned_kw if planned_kw is not None else 0.0
    kw = float(raw) if math.isfinite(raw) else 0.0
    hi = charge_limit_kw(charger, session)
    lo = -discharge_limit_kw(charger, session, export_allowed, site_headroom_kw)
    soc, cap = session.soc_pct, capacity_kwh(charger, session)
    soc_ok = soc is not None and cap is not None and math.isfinite(soc)
    hours = max(step_seconds, 1.0) / 3600.0
    if lo < 0:
        if not soc_ok:
            lo = 0.0
        else:
            assert soc is not None and cap is not None
            avail_kwh = (soc - reserve_pct(session, rules, charger)) / 100.0 * cap
            lo = 0.0 if avail_kwh <= 0 else max(lo, -avail_kwh / hours)
    if charger.is_battery and hi > 0:
        if not soc_ok:
            hi = 0.0
        else:
            assert soc is not None and cap is not None
            room = ((charger.max_soc_pct if charger.max_soc_pct is not None else 100.0) - soc) / 100.0 * cap
            hi = 0.0 if room <= 0 else min(hi, room / hours)
    kw = min(max(kw, lo), hi)
    if kw == 0.0:
        kw = 0.0  # no negative zero
    changed = planned_kw is None or not math.isfinite(raw) or abs(kw - raw) > 1e-6
    return SafeSetpoint(send=True, kw=kw, reason="clipped_by_safety" if changed and planned_kw is not None
                        else reason, flexible=True)
