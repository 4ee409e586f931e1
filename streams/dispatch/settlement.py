"""Settlement of V2G export: paid at the point of interconnection only (the charger's discharge times
its site's share of the export measured by the site meter, else commanded), behind-the-meter discharge apart.

A part of :class:`~streams.dispatch.dispatcher.FeederDispatcher` (a mixin over its state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from streams.contracts.models import ChargerTelemetry, Settlement
from streams.dispatch.incentives import OfferBook, settle_export
from streams.dispatch.planner import HOUR_MS
from streams.dispatch.state import ChargerInfo, FeederLimits, SessionState

if TYPE_CHECKING:
    from streams.dispatch.config import DispatchConfig

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
    site_mark: dict[str, tuple[float, ...]]
    self_consumed_kwh: dict[str, float]
    limits: FeederLimits | None

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

    def _accrue_export(self, tel: ChargerTelemetry, prev: SessionState | None, ch: ChargerInfo | None) -> None:
        """Accrue the discharge reported since ``prev`` (held until ``tel``) to the charger's settlement period:
        paid export at an exporting site, self-consumption behind the meter of any other."""
        if prev is not None and prev.power_kw < 0 and prev.grid_state == "grid_connected" and ch is not None:
            hours = (tel.timestamp - prev.last_heard_ms) / HOUR_MS
            kwh = -prev.power_kw * min(hours, 1.0)
            counters = self.site_energy.setdefault(ch.site_id, [0.0, 0.0, 0.0, 0.0])
            mark = self.site_mark.get(tel.charger_id, tuple(counters))
            acc = self.exports.setdefault(tel.charger_id, _ExportAcc(prev.last_heard_ms, site0=mark))
            if self.chargers[tel.charger_id].interconnection_class != "parallel_exporting":
                acc.btm_kwh += kwh  # behind the meter: self-consumption, never paid
                self.self_consumed_kwh[tel.charger_id] = self.self_consumed_kwh.get(tel.charger_id, 0.0) + kwh
                kwh = 0.0
            counters[1] += kwh
            acc.kwh += kwh
            assert self.limits is not None
            span = np.array([prev.last_heard_ms, max(tel.timestamp, prev.last_heard_ms + 1)])
            _, _, price = self.limits.profile(span)
            acc.value += kwh * float(price[0])
        if ch is not None and tel.charger_id not in self.exports:  # where a period that starts now starts
            self.site_mark[tel.charger_id] = tuple(self.site_energy.setdefault(ch.site_id, [0.0, 0.0, 0.0, 0.0]))
