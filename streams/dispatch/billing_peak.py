"""The billing month's running peak of the feeder's import (the planner's peak floor).

A part of :class:`~streams.dispatch.dispatcher.FeederDispatcher` (a mixin over its state).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

if TYPE_CHECKING:
    from streams.dispatch.config import DispatchConfig

__all__ = ["LOAD_HOLD_MS", "BillingPeak", "held_load"]

LOAD_HOLD_MS = 30 * 60_000
"""How long the last measured feeder load bounds the planned base load from below (and the feeder cap's)."""


def held_load(last_load: tuple[int, float] | None, now_ms: int) -> float | None:
    """The last measured feeder load ``(end of its interval, kW)`` if it is recent (within ``LOAD_HOLD_MS``)."""
    if last_load is None or now_ms - last_load[0] > LOAD_HOLD_MS:
        return None
    return last_load[1]


class BillingPeak:
    """The feeder's running peak import of the billing month."""

    config: DispatchConfig
    peak_month: str
    peak_kw: float

    def _month(self, t_ms: int) -> str:
        return dt.datetime.fromtimestamp(t_ms / 1000, ZoneInfo(self.config.timezone)).strftime("%Y-%m")

    def _bump_peak(self, now_ms: int, kw: float) -> None:
        m = self._month(now_ms)
        if m != self.peak_month:
            self.peak_month, self.peak_kw = m, 0.0
        if np.isfinite(kw):
            self.peak_kw = max(self.peak_kw, float(kw))
