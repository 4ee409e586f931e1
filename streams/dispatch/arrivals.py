"""Online forecast of the charging demand of sessions that have not arrived yet.

Learned only from sessions already seen: for each future day, the sessions of past days of the same
day type (weekday / weekend, local time) are replayed at the same local time of day, binned by
(arrival, departure) and averaged over the number of such days observed. The planner adds the result as
virtual sessions, so it does not pack today's cars under a low peak only to be surprised by the
cars still to come.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from streams.dispatch.planner import PlanSession

__all__ = ["ArrivalForecaster", "ObservedSession"]

MIN_MS = 60_000
DAY_MS = 86_400_000
FULL_DAY_GRACE_MS = 60 * MIN_MS  # a day first seen within this of its local midnight counts as observed whole


@dataclass(frozen=True, slots=True)
class ObservedSession:
    """A past session, in local-day coordinates."""

    day: int  # local date ordinal
    weekend: bool
    arrival_min: float  # minutes after local midnight
    dwell_min: float
    energy_kwh: float
    max_kw: float


@dataclass
class ArrivalForecaster:
    """Per-day-type expected arriving sessions, learned online (pure, picklable).

    Parameters
    ----------
    timezone:
        IANA zone of the site's local time (day type and time of day).
    bin_minutes:
        Arrival/departure bin width of the virtual sessions.
    window_days:
        Only sessions of the last ``window_days`` days are used (and kept).
    scale:
        Multiplier on the expected energy (1 = mean).
    """

    timezone: str = "UTC"
    bin_minutes: int = 30
    window_days: int = 28
    scale: float = 1.0
    history: list[ObservedSession] = field(default_factory=list)
    first_day: int | None = None
    seen_keys: dict[str, int] = field(default_factory=dict)  # key -> local day, pruned with the history

    def _local(self, t_ms: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(t_ms / 1000, ZoneInfo(self.timezone))

    def _midnight_ms(self, day: int) -> int:
        d = dt.date.fromordinal(day)
        return int(dt.datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(self.timezone)).timestamp() * 1000)

    def start(self, t_ms: int) -> None:
        """Mark the first observed day: days before it are not counted as empty days, and neither is a day first
        seen more than ``FULL_DAY_GRACE_MS`` after its local midnight (its arrivals before then were missed, so it
        counts from the next)."""
        if self.first_day is None:
            day = self._local(t_ms).date().toordinal()
            self.first_day = day if t_ms - self._midnight_ms(day) <= FULL_DAY_GRACE_MS else day + 1

    def observe(self, key: str, arrival_ms: int, departure_ms: int, energy_kwh: float, max_kw: float) -> None:
        """Learn one session once it has arrived (``key`` deduplicates repeats)."""
        if key in self.seen_keys or departure_ms <= arrival_ms or not energy_kwh > 0:
            return
        self.start(arrival_ms)
        loc = self._local(arrival_ms)
        day = loc.date().toordinal()
        self.seen_keys[key] = day
        self.history.append(ObservedSession(
            day=day, weekend=loc.weekday() >= 5,
            arrival_min=loc.hour * 60 + loc.minute + loc.second / 60,
            dwell_min=(departure_ms - arrival_ms) / MIN_MS, energy_kwh=float(energy_kwh), max_kw=float(max_kw)))
        oldest = day - self.window_days - 1
        if self.history and self.history[0].day < oldest:
            self.history = [h for h in self.history if h.day >= oldest]
            self.seen_keys = {k: d for k, d in self.seen_keys.items() if d >= oldest - 1}

    def expected_sessions(self, now_ms: int, end_ms: int) -> list[PlanSession]:
        """Virtual sessions expected to arrive in (now_ms, end_ms), departures clipped to ``end_ms``."""
        if self.first_day is None or not self.history:
            return []
        today = self._local(now_ms).date().toordinal()
        bin_ms = self.bin_minutes * MIN_MS
        out: dict[tuple[int, int], list[float]] = {}
        day = today
        while self._midnight_ms(day) < end_ms:
            weekend = dt.date.fromordinal(day).weekday() >= 5
            lo = max(self.first_day, day - self.window_days)
            days = [x for x in range(lo, today) if (dt.date.fromordinal(x).weekday() >= 5) == weekend]
            if days:
                midnight = self._midnight_ms(day)
                w = self.scale / len(days)
                for h in self.history:
                    if h.weekend != weekend or not lo <= h.day < today:
                        continue
                    arr = midnight + int(h.arrival_min * MIN_MS)
                    if arr <= now_ms or arr >= end_ms:
                        continue
                    a_bin = arr // bin_ms * bin_ms
                    d_bin = (arr + int(h.dwell_min * MIN_MS)) // bin_ms * bin_ms
                    acc = out.setdefault((max(a_bin, now_ms), max(d_bin, a_bin + bin_ms)), [0.0, 0.0])
                    acc[0] += h.energy_kwh * w
                    acc[1] += h.max_kw * w
            day += 1
        sessions = []
        for (a, d), (e, p) in sorted(out.items()):
            dep = min(d, end_ms)
            if dep <= a:
                continue
            frac = (dep - a) / (d - a)
            sessions.append(PlanSession(key=f"virtual:{a}:{d}", arrival_ms=a, departure_ms=dep,
                                        energy_kwh=e * frac, max_charge_kw=p, virtual=True))
        return sessions
