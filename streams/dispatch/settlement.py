"""Settlement of V2G export: paid at the point of interconnection only (the charger's discharge times
its site's share of the export measured by the site meter, else commanded), behind-the-meter discharge apart.

A part of :class:`~streams.dispatch.dispatcher.FeederDispatcher` (a mixin over its state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from streams.contracts.models import (
    Settlement,
)
from streams.dispatch.incentives import OfferBook, settle_export
from streams.dispatch.planner import HOUR_MS
from streams.dispatch.state import ChargerInfo

if TYPE_CHECKING:
    from streams.dispatch.dispatcher import DispatchConfig

__all__ = ["ExportSettlement"]


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


class ExportSettlement:
    """Export settled at the point of interconnection when a car leaves or a period ends."""

    feeder_id: str
    config: DispatchConfig
    chargers: dict[str, ChargerInfo]
    book: OfferBook
    exports: dict[str, _ExportAcc]
    pending_settlements: list[Settlement]
    site_energy: dict[str, list[float]]
    site_command: dict[str, tuple[int, float]]

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
