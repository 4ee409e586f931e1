"""Feeder-level import-limit requests: planned and counterfactual (baseline) net import per interval.

A part of :class:`~streams.dispatch.dispatcher.FeederDispatcher` (a mixin over its state).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from streams.dispatch.planner import HOUR_MS, Plan, PlanRequest, plan_feeder
from streams.dispatch.requests import RequestInterval, RequestTracker
from streams.dispatch.state import FeederLimits

if TYPE_CHECKING:
    from streams.dispatch.config import DispatchConfig

__all__ = ["RequestTracking"]


class RequestTracking:
    """Planned and baseline net import of feeder-level requests."""

    config: DispatchConfig
    limits: FeederLimits | None
    plan: Plan | None
    trackers: dict[str, RequestTracker]

    def _track_requests(self, now_ms: int, req: PlanRequest, edges: np.ndarray, base: np.ndarray) -> None:
        """Planned (and, once per interval, counterfactual baseline) net import of every live request."""
        assert self.plan is not None and self.limits is not None
        for sid in [k for k, t in self.trackers.items() if t.end_ms + 7 * 24 * HOUR_MS < now_ms]:
            del self.trackers[sid]
        net = base + self.plan.fleet_kw
        live = [tr for tr in self.trackers.values() if tr.end_ms > now_ms]
        baseline = None  # one counterfactual per plan, without every request: the cost does not grow with them
        if any(tr.missing_baseline(edges) for tr in live):
            imp, exp, price = self.limits.without(*(tr.signal_id for tr in live)).profile(edges)
            cf = plan_feeder(replace(req, import_limit_kw=tuple(imp.tolist()), export_limit_kw=tuple(exp.tolist()),
                                     price_per_kwh=tuple(price.tolist())), self.config.solver_limits)
            baseline = base + cf.fleet_kw
        for tr in live:
            tr.on_plan(now_ms, edges, net, baseline)

    def request_report(self, signal_id: str | None = None) -> list[RequestInterval]:
        """Requested vs delivered per interval of every feeder-level import-limit request (or one)."""
        out: list[RequestInterval] = []
        for sid in sorted(self.trackers):
            if signal_id is None or sid == signal_id:
                out += self.trackers[sid].report()
        return out
