"""Feeder-level requests (e.g. "feeder F at most 300 kW 17:00-19:00") and the change delivered against
the baseline.

A request is a feeder-level ``GridSignal`` with ``import_limit_kw``. Its *baseline* per interval is the
feeder's planned net import of a counterfactual plan without that signal, frozen the first time a plan
covers the interval; *planned* is the net import of the latest plan made before the interval ended;
*measured* is the feeder import observed for the interval (``FeederDispatcher.observe_load``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["RequestInterval", "RequestTracker"]


@dataclass(frozen=True, slots=True)
class RequestInterval:
    """Requested vs delivered in one interval of a request's window (kW)."""

    signal_id: str
    dr_event_id: str | None
    start_ms: int
    limit_kw: float
    baseline_kw: float | None
    planned_kw: float | None
    measured_kw: float | None

    @property
    def requested_reduction_kw(self) -> float | None:
        """How far below the baseline the request asks to go (>= 0)."""
        return None if self.baseline_kw is None else max(0.0, self.baseline_kw - self.limit_kw)

    @property
    def delivered_reduction_kw(self) -> float | None:
        """Baseline minus the measured import (or the planned one while nothing was measured)."""
        actual = self.measured_kw if self.measured_kw is not None else self.planned_kw
        return None if self.baseline_kw is None or actual is None else self.baseline_kw - actual


@dataclass
class RequestTracker:
    """Intervals of one request window and what was known about each."""

    signal_id: str
    dr_event_id: str | None
    start_ms: int
    end_ms: int
    step_ms: int
    limit_kw: float
    baseline: dict[int, float] = field(default_factory=dict)
    planned: dict[int, float] = field(default_factory=dict)
    measured: dict[int, float] = field(default_factory=dict)

    def interval_starts(self) -> list[int]:
        first = self.start_ms // self.step_ms * self.step_ms
        return list(range(first, self.end_ms, self.step_ms))

    def missing_baseline(self, edges_ms: np.ndarray) -> bool:
        """True if a plan on ``edges_ms`` covers an interval whose baseline is not frozen yet."""
        lo, hi = int(edges_ms[0]), int(edges_ms[-1])
        return any(a not in self.baseline and lo <= a + self.step_ms // 2 < hi for a in self.interval_starts())

    def on_plan(self, now_ms: int, edges_ms: np.ndarray, net: np.ndarray, baseline_net: np.ndarray | None) -> None:
        """Record the planned (and, where missing, the baseline) net import of the intervals not yet over."""
        starts = [a for a in self.interval_starts() if a + self.step_ms > now_ms]
        mids = np.asarray(starts, dtype=np.int64) + self.step_ms // 2
        inside = (mids >= edges_ms[0]) & (mids < edges_ms[-1])
        steps = np.searchsorted(edges_ms, mids, side="right") - 1  # one pass: many requests stay cheap
        for a, ok, k in zip(starts, inside.tolist(), steps.tolist(), strict=True):
            if not ok:
                continue
            self.planned[a] = float(net[k])
            if baseline_net is not None and a not in self.baseline:
                self.baseline[a] = float(baseline_net[k])

    def on_measured(self, interval_start_ms: int, kw: float) -> None:
        """The measured feeder import of the interval starting at ``interval_start_ms``."""
        if self.start_ms // self.step_ms * self.step_ms <= interval_start_ms < self.end_ms:
            self.measured[interval_start_ms] = float(kw)

    def report(self) -> list[RequestInterval]:
        return [RequestInterval(self.signal_id, self.dr_event_id, a, self.limit_kw, self.baseline.get(a),
                                self.planned.get(a), self.measured.get(a)) for a in self.interval_starts()]
