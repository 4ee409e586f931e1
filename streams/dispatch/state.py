"""The planner's view of a feeder: chargers, sessions and grid-signal limits.

Pure, picklable dataclasses updated from the contract models by pure functions, so a stream
processor only has to call ``charger_from_registration``, ``session_from_telemetry`` and
``FeederLimits.with_signal``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from streams.contracts.models import ChargerRegistration, ChargerTelemetry, GridSignal

__all__ = [
    "ChargerInfo",
    "FeederLimits",
    "SessionState",
    "charger_from_registration",
    "session_from_telemetry",
]


@dataclass(frozen=True, slots=True)
class ChargerInfo:
    """A registered charger (or battery) and its interconnection agreement."""

    charger_id: str
    feeder_id: str
    site_id: str
    customer_id: str
    bidirectional: bool
    interconnection_class: str
    export_limit_kw: float
    v2g_enrolled: bool
    max_charge_kw: float
    max_discharge_kw: float
    site_import_limit_kw: float | None = None
    asset_type: str = "ev_charger"
    active: bool = True
    battery_capacity_kwh: float | None = None
    min_soc_pct: float | None = None
    max_soc_pct: float | None = None
    round_trip_efficiency: float | None = None
    inverter_location: str = "offboard"
    """Inverter pathway: ``offboard`` (the DC charger's inverter) or ``onboard`` (the car's, behind an AC charger)."""

    @property
    def is_battery(self) -> bool:
        """A stationary battery (a car that never leaves)."""
        return self.asset_type == "stationary_battery"

    @property
    def behind_the_meter(self) -> bool:
        """May discharge to cover its own site's load, never exporting (V2H / V2B)."""
        return self.bidirectional and self.interconnection_class == "parallel_non_exporting" and \
            self.max_discharge_kw > 0.0

    @property
    def may_export(self) -> bool:
        """True if the site may push power into the grid at all (enrolment aside)."""
        return (
            self.bidirectional
            and self.interconnection_class == "parallel_exporting"
            and self.export_limit_kw > 0.0
            and self.max_discharge_kw > 0.0
        )

    @property
    def discharge_limit_kw(self) -> float:
        """Most discharge power the grid rules allow (0 unless the site may export)."""
        if not self.may_export:
            return 0.0
        return min(self.max_discharge_kw, self.export_limit_kw)


def charger_from_registration(reg: ChargerRegistration) -> ChargerInfo:
    """Planner view of a ``ChargerRegistration``."""
    return ChargerInfo(
        charger_id=reg.charger_id,
        feeder_id=reg.feeder_id,
        site_id=reg.site_id,
        customer_id=reg.customer_id,
        bidirectional=reg.bidirectional,
        interconnection_class=reg.interconnection_class,
        export_limit_kw=reg.export_limit_kw,
        v2g_enrolled=reg.v2g_enrolled,
        max_charge_kw=reg.max_charge_kw,
        max_discharge_kw=reg.max_discharge_kw,
        site_import_limit_kw=reg.site_import_limit_kw,
        asset_type=reg.asset_type,
        active=reg.active,
        battery_capacity_kwh=reg.battery_capacity_kwh,
        min_soc_pct=reg.min_soc_pct,
        max_soc_pct=reg.max_soc_pct,
        round_trip_efficiency=reg.round_trip_efficiency,
        inverter_location=reg.inverter_location,
    )


@dataclass(frozen=True, slots=True)
class SessionState:
    """Latest telemetry of one charger, plus when its current session started."""

    charger_id: str
    feeder_id: str
    connected: bool
    last_heard_ms: int
    power_kw: float = 0.0
    session_id: str | None = None
    plugged_at_ms: int | None = None
    soc_pct: float | None = None
    capacity_kwh: float | None = None
    max_charge_kw: float = 0.0
    max_discharge_kw: float = 0.0
    departure_ms: int | None = None
    requested_energy_kwh: float | None = None
    target_soc_pct: float | None = None
    energy_delivered_kwh: float | None = None
    reserve_soc_pct: float | None = None
    grid_state: str = "grid_connected"
    soc_ms: int | None = None
    """When ``soc_pct`` was reported (a heartbeat without SoC keeps the session's last report)."""

    def remaining_energy_kwh(self) -> float | None:
        """Net energy still to deliver by departure, kWh; ``None`` when the driver gave no target."""
        if self.requested_energy_kwh is not None:
            return max(0.0, self.requested_energy_kwh - (self.energy_delivered_kwh or 0.0))
        if self.target_soc_pct is not None and self.soc_pct is not None and self.capacity_kwh:
            return max(0.0, (self.target_soc_pct - self.soc_pct) / 100.0 * self.capacity_kwh)
        return None

    def is_stale(self, now_ms: int, stale_seconds: float) -> bool:
        """Not heard for longer than ``stale_seconds`` at event time ``now_ms``."""
        return now_ms - self.last_heard_ms > stale_seconds * 1000.0


def session_from_telemetry(prev: SessionState | None, tel: ChargerTelemetry) -> SessionState:
    """New state of a charger after telemetry ``tel`` (``prev`` is its previous state or ``None``).

    Out-of-order telemetry (older than ``prev``) leaves ``prev`` unchanged. ``plugged_at_ms`` is the
    first time the current session was seen connected.
    """
    if prev is not None and tel.timestamp < prev.last_heard_ms:
        return prev
    plugged_at: int | None = None
    soc, soc_ms, cap = tel.soc_pct, tel.timestamp if tel.soc_pct is not None else None, tel.battery_capacity_kwh
    if tel.connected:
        same = prev is not None and prev.connected and prev.session_id == tel.session_id
        plugged_at = prev.plugged_at_ms if same and prev is not None else tel.timestamp
        if same and prev is not None and soc is None:  # the dispatcher projects it through its setpoints
            soc, soc_ms, cap = prev.soc_pct, prev.soc_ms, cap if cap is not None else prev.capacity_kwh
    return SessionState(
        charger_id=tel.charger_id,
        feeder_id=tel.feeder_id,
        connected=tel.connected,
        last_heard_ms=tel.timestamp,
        power_kw=tel.power_kw,
        session_id=tel.session_id if tel.connected else None,
        plugged_at_ms=plugged_at,
        soc_pct=soc,
        capacity_kwh=cap,
        max_charge_kw=tel.max_charge_kw,
        max_discharge_kw=tel.max_discharge_kw,
        departure_ms=tel.departure_time,
        requested_energy_kwh=tel.requested_energy_kwh,
        target_soc_pct=tel.target_soc_pct,
        energy_delivered_kwh=tel.energy_delivered_kwh,
        reserve_soc_pct=tel.reserve_soc_pct,
        grid_state=tel.grid_state,
        soc_ms=soc_ms,
    )


@dataclass(frozen=True, slots=True)
class FeederLimits:
    """Feeder import/export limits and prices over time, from ``GridSignal`` s over configured defaults.

    Signals with the same ``signal_id`` replace each other; site-level signals (``site_id`` set) are kept
    but do not limit the feeder. Where several feeder signals overlap a step, the lowest limit and the
    price of the most recently issued signal apply; a signal's export limit replaces the default (it may
    raise it: every site stays within its own approved limit in the envelope).
    """

    default_import_kw: float
    default_export_kw: float
    default_price: float
    signals: tuple[GridSignal, ...] = ()

    def with_signal(self, sig: GridSignal) -> FeederLimits:
        """A copy with ``sig`` added (replacing any signal with the same id)."""
        return self.with_signals([sig])

    def with_signals(self, sigs: list[GridSignal]) -> FeederLimits:
        """``with_signal`` of each in turn, in one pass (a flood of signals costs linear time)."""
        new: dict[str, GridSignal] = {}
        for sig in sigs:
            new.pop(sig.signal_id, None)  # a replaced signal moves to the end, as with_signal does
            new[sig.signal_id] = sig
        kept = tuple(s for s in self.signals if s.signal_id not in new)
        return replace(self, signals=(*kept, *new.values()))

    def without(self, *signal_ids: str) -> FeederLimits:
        """A copy without the signals ``signal_ids`` (the counterfactual of requests)."""
        drop = set(signal_ids)
        return replace(self, signals=tuple(s for s in self.signals if s.signal_id not in drop))

    def pruned(self, now_ms: int) -> FeederLimits:
        """A copy without signals that ended at or before ``now_ms``."""
        return replace(self, signals=tuple(s for s in self.signals if s.valid_until > now_ms))


    def site_profile(self, site_id: str, edges_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Import and export limits (kW, ``inf`` = none) per step from the signals scoped to ``site_id``."""
        n = len(edges_ms) - 1
        imp = np.full(n, np.inf)
        exp = np.full(n, np.inf)
        starts, ends = edges_ms[:-1], edges_ms[1:]
        for s in self.signals:
            if s.site_id != site_id:
                continue
            cover = (starts < s.valid_until) & (ends > s.valid_from)
            if s.import_limit_kw is not None:
                imp[cover] = np.minimum(imp[cover], s.import_limit_kw)
            if s.export_limit_kw is not None:
                exp[cover] = np.minimum(exp[cover], s.export_limit_kw)
        return imp, exp

    def demand_charge(self, site_id: str | None, now_ms: int) -> float | None:
        """Demand charge per kW of the site (``None`` = the feeder) from the latest signal valid at ``now_ms``."""
        best: GridSignal | None = None
        for s in self.signals:
            live = s.site_id == site_id and s.demand_charge_per_kw is not None \
                and s.valid_from <= now_ms < s.valid_until
            if live and (best is None or s.issued_at >= best.issued_at):
                best = s
        return None if best is None else best.demand_charge_per_kw

    def profile(self, edges_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Import limit (kW), export limit (kW, >= 0) and price per step of the grid ``edges_ms``."""
        n = len(edges_ms) - 1
        imp = np.full(n, self.default_import_kw, dtype=float)
        exp = np.full(n, self.default_export_kw, dtype=float)
        price = np.full(n, self.default_price, dtype=float)
        price_issued = np.full(n, -math.inf)
        sig_exp = np.full(n, np.inf)
        starts, ends = edges_ms[:-1], edges_ms[1:]
        for s in self.signals:
            if s.site_id is not None:
                continue
            cover = (starts < s.valid_until) & (ends > s.valid_from)
            if not cover.any():
                continue
            if s.import_limit_kw is not None:
                imp[cover] = np.minimum(imp[cover], s.import_limit_kw)
            if s.export_limit_kw is not None:  # a signal sets the export limit (sites stay within their own)
                sig_exp[cover] = np.minimum(sig_exp[cover], s.export_limit_kw)
            if s.price_per_kwh is not None:
                mid = (starts + ends) / 2
                at = (mid >= s.valid_from) & (mid < s.valid_until) & (price_issued <= s.issued_at)
                price[at] = s.price_per_kwh
                price_issued[at] = s.issued_at
        exp = np.where(np.isfinite(sig_exp), sig_exp, exp)
        return imp, exp, price
