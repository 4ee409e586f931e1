"""Per-site own load (V2H / V2B): what the site's meter says minus its dispatched assets, and a forecast.

A site's *own load* is its metered import minus the power of its chargers and batteries at that time
(their latest telemetry). :class:`SiteLoadForecast` keeps an exponentially weighted average per
(day type, time-of-day bin) in the local time zone — a smoothed seasonal-naive forecast — blended with
the last observation for the next hour (persistence decays with ``exp(-lead / 1 h)``).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np

__all__ = ["SiteLoadForecast", "SiteState"]

HOUR_MS = 3_600_000


@dataclass
class SiteLoadForecast:
    """Seasonal (weekday/weekend × time of day) EWMA forecast of one site's own load, kW."""

    bin_ms: int = 15 * 60_000
    alpha: float = 0.3
    timezone: str = "UTC"
    profile: dict[tuple[int, int], float] = field(default_factory=dict)
    last_kw: float | None = None
    last_ms: int = -1
    abs_err_kw: float = 0.0
    """Exponentially weighted mean of ``|own load - its forecast|`` over the readings, the forecast being what a plan
    at the start of the reading's period saw for it (kW; 0 until a second reading)."""
    err_alpha: float = 0.05
    err_count: int = 0

    def _key(self, t_ms: int) -> tuple[int, int]:
        local = dt.datetime.fromtimestamp(t_ms / 1000, ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        return int(local.weekday() >= 5), minute * 60_000 // self.bin_ms

    def observe(self, t_ms: int, kw: float) -> None:
        """Learn the own load ``kw`` averaged over the period ending at ``t_ms``."""
        if not math.isfinite(kw):
            return
        if self.last_kw is not None and t_ms > self.last_ms:
            seen = self.at(max(self.last_ms, t_ms - self.bin_ms // 2))  # the period's middle, from its start
            if seen is not None:
                err = abs(kw - seen)
                self.abs_err_kw = err if self.err_count == 0 else self.abs_err_kw + self.err_alpha * (
                    err - self.abs_err_kw)
                self.err_count += 1
        key = self._key(t_ms - 1)
        old = self.profile.get(key)
        self.profile[key] = kw if old is None else old + self.alpha * (kw - old)
        if t_ms >= self.last_ms:
            self.last_kw, self.last_ms = float(kw), t_ms

    def at(self, t_ms: int) -> float | None:
        """Forecast at ``t_ms`` (``None`` before anything was observed)."""
        day, b = self._key(t_ms)
        seasonal = self.profile.get((day, b))
        if seasonal is None:
            seasonal = self.profile.get((1 - day, b))
        if self.last_kw is None:
            return seasonal
        if seasonal is None:
            return self.last_kw
        w = math.exp(-max(0, t_ms - self.last_ms) / HOUR_MS)
        return w * self.last_kw + (1 - w) * seasonal

    def forecast(self, edges_ms: np.ndarray) -> np.ndarray:
        """Forecast at the middle of every step of ``edges_ms`` (0 where nothing is known), kW."""
        mids = (np.asarray(edges_ms[:-1]) + np.asarray(edges_ms[1:])) // 2
        vals = [self.at(int(m)) for m in mids]
        return np.array([0.0 if v is None else v for v in vals], dtype=float)


@dataclass
class SiteState:
    """What the dispatcher knows of one site from its own meter."""

    site_id: str
    forecast: SiteLoadForecast
    last_meter_ms: int = -1
    last_own_kw: float | None = None
    rise_kw_per_ms: float = 0.0
    """How fast the own load rose between its last two readings (0 when it fell), kW per ms."""
    peak_month: str = ""
    peak_kw: float = 0.0

    def observe_own(self, t_ms: int, own_kw: float) -> None:
        """The own load ``own_kw`` read at ``t_ms``: the latest reading and its rise since the one before."""
        if t_ms < self.last_meter_ms:
            return
        if self.last_own_kw is not None and t_ms > self.last_meter_ms:
            self.rise_kw_per_ms = max(0.0, (own_kw - self.last_own_kw) / (t_ms - self.last_meter_ms))
        self.last_meter_ms, self.last_own_kw = t_ms, own_kw

    def own_load_high(self, now_ms: int, stale_ms: int, ahead_ms: int) -> float | None:
        """The own load an import limit must hold against until ``now_ms + ahead_ms``: the higher of the last
        reading and the forecast, plus the last rise carried on from the reading to then (a rising load is
        read late); ``None`` when the meter has not reported within ``stale_ms``.

        >>> st = SiteState("s", SiteLoadForecast())
        >>> st.observe_own(0, 3.0); st.observe_own(300_000, 3.1)
        >>> round(st.own_load_high(300_000, 1_800_000, 300_000), 3)
        3.2
        """
        if self.last_own_kw is None or now_ms - self.last_meter_ms > stale_ms:
            return None
        fc = self.forecast.at(now_ms)
        high = max(self.last_own_kw, fc) if fc is not None else self.last_own_kw
        return high + self.rise_kw_per_ms * max(0, now_ms + ahead_ms - self.last_meter_ms)

    def own_load_now(self, now_ms: int, stale_ms: int) -> float | None:
        """Conservative own load now: the smaller of the last measurement and the forecast; ``None`` when
        the meter has not reported within ``stale_ms``."""
        if self.last_own_kw is None or now_ms - self.last_meter_ms > stale_ms:
            return None
        fc = self.forecast.at(now_ms)
        return min(self.last_own_kw, fc) if fc is not None else self.last_own_kw
