"""Incentive offers, responses and V2G settlement (pure functions).

When a plan (with all committed flexibility already used) still exceeds the feeder's import limit, or
pushes more reverse flow than its export limit allows (surplus PV), drivers are offered concrete deals
for the first such window: ``delay_charging`` (no charging in the window), ``export`` (discharge in the
window; only parallel_exporting bidirectional chargers, not already V2G-enrolled) or ``absorb_surplus``.
Whom to ask: greedily by value to the grid (kWh of the problem the deal removes) per unit of money, until
the excess (times ``over_ask``) is covered. Offer ids are deterministic.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace

import numpy as np

from streams.contracts.models import IncentiveEvent, IncentiveResponse, Settlement
from streams.dispatch.planner import HOUR_MS, Plan, PlanRequest
from streams.dispatch.safety import SafetyRules, reserve_pct
from streams.dispatch.state import ChargerInfo, SessionState

__all__ = [
    "IncentiveParams",
    "OfferBook",
    "apply_response",
    "offer_id",
    "problem_window",
    "propose_offers",
    "settle_export",
]


@dataclass(frozen=True, slots=True)
class IncentiveParams:
    """Prices of deals and offer mechanics."""

    delay_price_per_kwh: float = 0.10
    export_price_per_kwh: float = 0.30
    absorb_price_per_kwh: float = 0.05
    offer_ttl_ms: int = 30 * 60_000
    over_ask: float = 1.2
    min_kwh: float = 0.5
    currency: str = "USD"


@dataclass(frozen=True, slots=True)
class OfferBook:
    """Offers made and the accepted ones (picklable)."""

    offers: dict[str, IncentiveEvent] = field(default_factory=dict)
    accepted: frozenset[str] = frozenset()

    def with_offers(self, new: list[IncentiveEvent]) -> OfferBook:
        return replace(self, offers={**self.offers, **{o.offer_id: o for o in new}})

    def accepted_offers(self, charger_id: str, action: str) -> list[IncentiveEvent]:
        return [self.offers[i] for i in sorted(self.accepted)
                if i in self.offers and self.offers[i].charger_id == charger_id and self.offers[i].action == action]

    def windows(self, charger_id: str, action: str) -> tuple[tuple[int, int], ...]:
        """Accepted windows of ``action`` for a charger."""
        return tuple((o.window_start, o.window_end) for o in self.accepted_offers(charger_id, action))

    def pruned(self, now_ms: int) -> OfferBook:
        """Drop offers whose window ended."""
        keep = {k: o for k, o in self.offers.items() if o.window_end > now_ms}
        return OfferBook(offers=keep, accepted=frozenset(a for a in self.accepted if a in keep))


def offer_id(feeder_id: str, charger_id: str, session_id: str | None, action: str, start: int, end: int) -> str:
    """Deterministic offer id."""
    key = f"{feeder_id}|{charger_id}|{session_id}|{action}|{start}|{end}"
    return "offer-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def apply_response(book: OfferBook, resp: IncentiveResponse) -> OfferBook:
    """Record an accept (declines and unknown or expired offers change nothing)."""
    offer = book.offers.get(resp.offer_id)
    if offer is None or not resp.accepted or resp.responded_at > offer.expires_at or resp.offer_id in book.accepted:
        return book
    if offer.customer_id != resp.customer_id:
        return book
    return replace(book, accepted=book.accepted | {resp.offer_id})


def problem_window(plan: Plan, req: PlanRequest) -> tuple[str, int, int, float] | None:
    """First window where the plan exceeds a limit: (kind, start, end, excess kWh); kind is
    ``import`` or ``export``."""
    edges = np.asarray(plan.edges_ms)
    dt = np.diff(edges) / HOUR_MS
    net = np.asarray(req.base_kw, dtype=float) + plan.fleet_kw
    for kind, over in (("import", net - np.asarray(req.import_limit_kw, dtype=float)),
                       ("export", -net - np.asarray(req.export_limit_kw, dtype=float))):
        bad = np.flatnonzero(over > 1e-3)
        if len(bad):
            k0 = k1 = int(bad[0])
            while k1 + 1 < len(over) and over[k1 + 1] > 1e-3:
                k1 += 1
            excess = float(np.sum(over[k0:k1 + 1] * dt[k0:k1 + 1]))
            return kind, int(edges[k0]), int(edges[k1 + 1]), excess
    return None


def propose_offers(plan: Plan, req: PlanRequest, chargers: dict[str, ChargerInfo],
                   sessions: dict[str, SessionState], now_ms: int, params: IncentiveParams,
                   book: OfferBook, rules: SafetyRules) -> list[IncentiveEvent]:
    """New offers for the first problem window of ``plan`` (none if there is none or it is covered)."""
    prob = problem_window(plan, req)
    if prob is None:
        return []
    kind, start, end, excess = prob
    hours = (end - start) / HOUR_MS
    edges = np.asarray(plan.edges_ms)
    in_win = (edges[:-1] < end) & (edges[1:] > start)
    dt = np.diff(edges) / HOUR_MS
    cands: list[tuple[float, str, str, float, float]] = []  # (-value per money, charger, action, kWh, pay)
    for cid in sorted(chargers):
        ch, s = chargers[cid], sessions.get(cid)
        if s is None or not s.connected or s.is_stale(now_ms, rules.stale_seconds) or not ch.active:
            continue
        if s.grid_state != "grid_connected":
            continue
        sched = plan.schedules.get(cid)
        if kind == "import":
            if sched is not None:
                kwh = float(np.sum(np.maximum(sched[in_win], 0.0) * dt[in_win]))
                if kwh >= params.min_kwh:
                    cands.append((0.0, cid, "delay_charging", kwh, kwh * params.delay_price_per_kwh))
            if ch.may_export and not ch.v2g_enrolled and s.soc_pct is not None and s.capacity_kwh:
                avail = (s.soc_pct - reserve_pct(s, rules)) / 100.0 * s.capacity_kwh
                kwh = min(avail, ch.discharge_limit_kw * hours)
                if kwh >= params.min_kwh:
                    cands.append((0.0, cid, "export", kwh, kwh * params.export_price_per_kwh))
        else:
            room = None
            if s.soc_pct is not None and s.capacity_kwh:
                room = (100.0 - s.soc_pct) / 100.0 * s.capacity_kwh
            planned = float(np.sum(np.maximum(sched[in_win], 0.0) * dt[in_win])) if sched is not None else 0.0
            kwh = max(0.0, min(ch.max_charge_kw * hours - planned, room if room is not None else math.inf))
            if kwh >= params.min_kwh:
                cands.append((0.0, cid, "absorb_surplus", kwh, kwh * params.absorb_price_per_kwh))
    ranked = sorted(((-(k / p) if p > 0 else -math.inf, cid, a, k, p) for _, cid, a, k, p in cands))
    need = excess * params.over_ask
    for o in book.offers.values():  # offers still open or accepted for this window count
        if o.window_start == start and o.window_end == end and (o.expires_at > now_ms or o.offer_id in book.accepted):
            need -= o.expected_kwh
    out: list[IncentiveEvent] = []
    used: set[str] = set()
    for _, cid, action, kwh, pay in ranked:
        if need <= 0:
            break
        s = sessions[cid]
        oid = offer_id(plan.feeder_id, cid, s.session_id, action, start, end)
        if oid in book.offers or cid in used:
            continue
        used.add(cid)
        need -= kwh
        out.append(IncentiveEvent(
            offer_id=oid, feeder_id=plan.feeder_id, charger_id=cid, customer_id=chargers[cid].customer_id,
            session_id=s.session_id, action=action,  # type: ignore[arg-type]
            window_start=start, window_end=end, expected_kwh=round(kwh, 3), compensation=round(pay, 2),
            currency=params.currency, expires_at=min(start, now_ms + params.offer_ttl_ms) if start > now_ms
            else now_ms + params.offer_ttl_ms, issued_at=now_ms,
            reason=f"forecast {kind} excess {excess:.1f} kWh over the feeder limit",
        ))
    return out


def settle_export(*, feeder_id: str, charger_id: str, customer_id: str, period_start: int, period_end: int,
                  exported_kwh: float, price_per_kwh: float, offer: IncentiveEvent | None = None,
                  currency: str = "USD", export_basis: str = "charger_telemetry",
                  self_consumed_kwh: float = 0.0) -> Settlement:
    """Settlement of V2G energy exported in a period: kWh × price (+ the offer's compensation)."""
    kwh = max(0.0, float(exported_kwh))
    amount = kwh * price_per_kwh + (offer.compensation if offer is not None else 0.0)
    key = f"{feeder_id}|{charger_id}|{period_start}|{period_end}|{offer.offer_id if offer else ''}"
    return Settlement(
        settlement_id="settle-" + hashlib.sha256(key.encode()).hexdigest()[:16],
        offer_id=offer.offer_id if offer is not None else None, feeder_id=feeder_id, charger_id=charger_id,
        customer_id=customer_id, period_start=period_start, period_end=period_end, exported_kwh=round(kwh, 4),
        price_per_kwh=price_per_kwh, amount=round(amount, 4), currency=currency,
        export_basis=export_basis, self_consumed_kwh=round(max(0.0, self_consumed_kwh), 4),  # type: ignore[arg-type]
    )
