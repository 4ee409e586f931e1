"""The billing month's running peak of the feeder's import (the planner's peak floor).

The peak is what was measured: a feeder meter's reading of an interval plus the EV power the dispatcher commanded
over that interval (the meters measure the feeder's other load; see ``observe_load``). A forecast never sets it:
a forecast that overshoots would raise the floor, and every later plan would take the phantom headroom below it
as free. A feeder without any meter reading counts the commanded EV power alone.

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

__all__ = ["DAY_MS", "FLEET_LOG_MS", "LOAD_HOLD_MS", "BillingPeak", "held_load", "mean_power", "ramped_load",
           "yesterday_load"]

LOAD_HOLD_MS = 30 * 60_000
"""How long the last measured feeder load bounds the planned base load from below (and the feeder cap's)."""
RAMP_BASE_MS = 15 * 60_000
"""The ramp hold's slope spans at least this (the feeder meters' usual period)."""


DAY_MS = 24 * 60 * 60_000
"""How far back the measured feeder load bounds the planned base load from below (the same time yesterday)."""


FLEET_LOG_MS = 4 * LOAD_HOLD_MS
"""How long the commanded EV power is kept: longer than a meter reading ever lags the plan (a few intervals)."""


def mean_power(log: Sequence[tuple[int, float]], start_ms: int, end_ms: int) -> float:
    """The time average over ``[start_ms, end_ms)`` of a step function ``log`` (``(from, kW)``, ascending; 0 kW
    before its first point).

    >>> mean_power([(0, 10.0), (5, 20.0)], 0, 10), mean_power([(5, 20.0)], 0, 10), mean_power([], 0, 10)
    (15.0, 10.0, 0.0)
    """
    if end_ms <= start_ms:
        return 0.0
    total = 0.0
    for i, (t, kw) in enumerate(log):
        nxt = log[i + 1][0] if i + 1 < len(log) else end_ms
        a, b = max(t, start_ms), min(nxt, end_ms)
        if b > a:
            total += kw * (b - a)
    return total / (end_ms - start_ms)


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


def ramped_load(history: Sequence[tuple[int, float]], t_ms: np.ndarray) -> np.ndarray:
    """Per time in ``t_ms``: the measured feeder load (``history``: ``(end of its interval, kW)``, ascending) carried
    on at its last rise, or NaN when the load is not rising, the readings compared are more than ``LOAD_HOLD_MS``
    apart or the time is more than ``LOAD_HOLD_MS`` after the last. The rise is the slope between the last load and
    the last one at least ``RAMP_BASE_MS`` older (a meter's 15-minute reading fills three 5-minute intervals with
    one value), from their periods' midpoints. On an evening ramp the last reading is already low for the interval
    under way.

    >>> ramped_load([(0, 100.0), (900_000, 120.0)], np.array([1_350_000, 9_000_000])).tolist()
    [140.0, nan]
    >>> ramped_load([(0, 100.0), (300_000, 120.0), (600_000, 120.0), (900_000, 120.0)], np.array([1_350_000])).tolist()
    [140.0]
    """
    out = np.full(len(t_ms), np.nan)
    if len(history) < 2:
        return out
    e1, k1 = history[-1]
    i = len(history) - 2
    while i > 0 and history[i][0] > e1 - RAMP_BASE_MS:
        i -= 1
    e0, k0 = history[i]
    gap = e1 - e0
    if k1 <= k0 or not 0 < gap <= LOAD_HOLD_MS:
        return out
    t = np.asarray(t_ms, dtype=np.int64)
    ok = (t > e1 - gap) & (t <= e1 + LOAD_HOLD_MS)
    out[ok] = k1 + (k1 - k0) / gap * (t[ok] - (e1 - gap / 2))
    return out


class BillingPeak:
    """The feeder's running peak import of the billing month."""

    config: DispatchConfig
    peak_month: str
    peak_kw: float
    last_load: tuple[int, float] | None
    fleet_log: list[tuple[int, float]]

    def _month(self, t_ms: int) -> str:
        return dt.datetime.fromtimestamp(t_ms / 1000, ZoneInfo(self.config.timezone)).strftime("%Y-%m")

    def _bump_peak(self, now_ms: int, kw: float) -> None:
        m = self._month(now_ms)
        if m != self.peak_month:
            self.peak_month, self.peak_kw = m, 0.0
        if np.isfinite(kw):
            self.peak_kw = max(self.peak_kw, float(kw))

    def _log_fleet(self, now_ms: int, kw: float) -> None:
        """Record the EV power commanded from ``now_ms`` on (kW, the sum of the plugged-in chargers' setpoints);
        without a feeder meter it is the running peak's only evidence."""
        log = self.fleet_log
        if log and log[-1][0] == now_ms:
            log[-1] = (now_ms, float(kw))
        elif not log or (now_ms > log[-1][0] and log[-1][1] != kw):
            log.append((now_ms, float(kw)))
        keep = now_ms - FLEET_LOG_MS
        while len(log) > 1 and log[1][0] <= keep:
            log.pop(0)
        if self.last_load is None:
            self._bump_peak(now_ms, kw)

    def _bump_measured(self, end_ms: int, kw: float) -> None:
        """The running peak takes a feeder meter's reading ``kw`` of the interval ending at ``end_ms`` plus the EV
        power commanded over that interval."""
        self._bump_peak(end_ms, kw + mean_power(self.fleet_log, end_ms - self.config.step_ms, end_ms))
