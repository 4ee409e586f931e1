"""A charger's setpoint through the safety envelope, with the SoC projected through the setpoints still in
force (so the reserve holds across them).

A part of :class:`~streams.dispatch.dispatcher.FeederDispatcher` (a mixin over its state).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from streams.contracts.models import ChargerSetpoint
from streams.dispatch.incentives import OfferBook
from streams.dispatch.safety import SafeSetpoint, capacity_kwh, safe_setpoint
from streams.dispatch.setpoints import discharged_kwh
from streams.dispatch.state import ChargerInfo, SessionState

if TYPE_CHECKING:
    from streams.dispatch.config import DispatchConfig

__all__ = ["Envelope"]


class Envelope:
    """A charger's setpoint through the safety envelope (SoC projected through setpoints in force)."""

    config: DispatchConfig
    chargers: dict[str, ChargerInfo]
    sessions: dict[str, SessionState]
    book: OfferBook
    sent_log: dict[str, list[ChargerSetpoint]]
    projection_memo: dict[tuple, float]

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
