"""Incentive offers when the plan breaks a feeder limit or meets it only by cutting drivers' requests.

A part of :class:`~streams.dispatch.dispatcher.FeederDispatcher` (a mixin over its state).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from streams.contracts.models import IncentiveEvent
from streams.dispatch.incentives import OfferBook, propose_offers
from streams.dispatch.planner import Plan, PlanRequest, solve_lp
from streams.dispatch.state import ChargerInfo, SessionState

if TYPE_CHECKING:
    from streams.dispatch.config import DispatchConfig

__all__ = ["Offering"]


class Offering:
    """Incentive offers made from a plan."""

    config: DispatchConfig
    chargers: dict[str, ChargerInfo]
    book: OfferBook
    plan: Plan | None

    def _offers(self, req: PlanRequest, flex: dict[str, SessionState], now_ms: int) -> list[IncentiveEvent]:
        """Offers when the plan breaks a feeder limit, or meets it only by cutting drivers' requests
        (then the problem is found in a probe plan that serves every request)."""
        plan = self.plan
        if plan is None:
            return []
        probe: Plan | None = plan
        if plan.limit_violation_kwh <= 1e-3:  # probe may become None below
            cut = any(plan.shortfall_kwh.get(cid, 0.0) > 1e-3 for cid in flex)
            finite = np.isfinite(req.import_limit_kw).any() or np.isfinite(req.export_limit_kw).any()
            if not (cut and finite):
                return []
            w = req.weights
            soft = replace(w, limit_violation_per_kwh=min(w.limit_violation_per_kwh, w.shortfall_per_kwh / 10))
            probe = solve_lp(replace(req, weights=soft), self.config.solver_limits)
            if probe is None or probe.limit_violation_kwh <= 1e-3:
                return []
        assert probe is not None
        real = {cid: self.chargers[cid] for cid in flex}
        offers = propose_offers(probe, req, real, dict(flex), now_ms, self.config.incentives, self.book,
                                self.config.rules)
        self.book = self.book.with_offers(offers)
        return offers
