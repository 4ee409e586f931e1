"""The billing month's running peak of the feeder's import (the planner's peak floor).

A part of :class:`~streams.dispatch.dispatcher.FeederDispatcher` (a mixin over its state).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from streams.dispatch.config import DispatchConfig

__all__ = ["DAY_MS", "LOAD_HOLD_MS", "BillingPeak", "held_load", "yesterday_load"]

LOAD_HOLD_MS = 30 * 60_000
"""How long the last measured feeder load bounds the planned base load from below (and the feeder cap's)."""


DAY_MS = 24 * 60 * 60_000
"""How far back the measured feeder load bounds the planned base load from below (the same time yesterday)."""


def yesterday_load(history: Sequence[tuple[int, float]], t_ms: np.ndarray, max_gap_ms: int) -> np.ndarray:
    """Per time in ``t_ms``: the measured feeder load (``history``: ``(end of its interval, kW)``, ascending) of the
    interval holding that time one day earlier, or NaN where no reading ends within ``max_gap_ms`` after it."""
    out = np.full(len(t_ms), np.nan)
    if not history:
        return out
    ends = np.fromiter((e for e, _ in history), dtype=np.int64, count=len(history))
    kws = np.fromiter((k for _, k in history), dtype=float, count=len(history))
    back = np.asarray(t_ms, dtype=np.int64) - DAY_MS
    i = np.searchsorted(ends, back, side="left")  # the first reading ending at or after that time
    ok = (i < len(ends)) & (np.take(ends, np.minimum(i, len(ends) - 1)) - back <= max_gap_ms)
    out[ok] = kws[i[ok]]
    return out


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
