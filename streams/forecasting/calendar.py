"""Local calendar of interval starts: time-of-day slot, weekday, holiday and day type in a local time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
import numpy as np

__all__ = ["CalendarBlock", "LocalCalendar"]

DAY_MS = 86_400_000


@lru_cache(maxsize=64)
def _holiday_calendar(country: str | None) -> holidays.HolidayBase | None:
    if not country:
        return None
    return holidays.country_holidays(country)


class CalendarBlock:
    """Calendar of a vector of interval starts (numpy arrays of equal length).

    Attributes
    ----------
    slot : ndarray[int]
        Local time-of-day slot, ``local minutes of the day // interval minutes``.
    weekday : ndarray[int]
        Local weekday, Monday = 0.
    holiday : ndarray[float]
        1.0 on a public holiday of the configured country (local date), else 0.0.
    daytype : ndarray[int]
        0 working day, 1 Saturday, 2 Sunday or holiday.
    """

    __slots__ = ("daytype", "holiday", "slot", "weekday")

    def __init__(self, slot: np.ndarray, weekday: np.ndarray, holiday: np.ndarray) -> None:
        self.slot = slot
        self.weekday = weekday
        self.holiday = holiday
        self.daytype = np.where((holiday > 0) | (weekday == 6), 2, np.where(weekday == 5, 1, 0))


class LocalCalendar:
    """Maps UTC epoch-ms interval starts to local calendar features. Stateless apart from caches; picklable.

    Parameters
    ----------
    interval_ms : int
        Interval length, ms (divides a day).
    timezone : str
        IANA time zone of the calendar (e.g. ``Europe/Berlin``).
    country : str or None
        ISO country code of the ``holidays`` calendar; None or empty for no holidays.
    """

    def __init__(self, interval_ms: int, timezone: str = "UTC", country: str | None = None) -> None:
        self.interval_ms = interval_ms
        self.timezone = timezone
        self.country = country or None
        self.slots_per_day = DAY_MS // interval_ms
        self._tz = ZoneInfo(timezone)
        self._hol_cache: dict[int, float] = {}

    def __getstate__(self) -> dict[str, object]:
        return {"interval_ms": self.interval_ms, "timezone": self.timezone, "country": self.country}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["interval_ms"], state["timezone"], state["country"])  # type: ignore[misc]

    def _offset_ms(self, ts: int) -> int:
        off = datetime.fromtimestamp(ts / 1000, UTC).astimezone(self._tz).utcoffset()
        return int(off.total_seconds() * 1000) if off is not None else 0

    def _is_holiday(self, local_day: int) -> float:
        hit = self._hol_cache.get(local_day)
        if hit is None:
            cal = _holiday_calendar(self.country)
            hit = float(cal is not None and (date(1970, 1, 1) + timedelta(days=local_day)) in cal)
            if len(self._hol_cache) > 4096:
                self._hol_cache.clear()
            self._hol_cache[local_day] = hit
        return hit

    def block(self, starts: np.ndarray) -> CalendarBlock:
        """Calendar of the intervals starting at ``starts`` (int64 epoch ms, ascending)."""
        starts = np.asarray(starts, dtype=np.int64)
        if starts.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return CalendarBlock(empty, empty, np.zeros(0))
        first, last = self._offset_ms(int(starts[0])), self._offset_ms(int(starts[-1]))
        if first == last:
            local = starts + first
        else:  # a DST change inside the block
            local = np.array([int(s) + self._offset_ms(int(s)) for s in starts], dtype=np.int64)
        days = local // DAY_MS
        slot = (local - days * DAY_MS) // self.interval_ms
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
        if self.country:
            uniq, inverse = np.unique(days, return_inverse=True)
            hol = np.array([self._is_holiday(int(d)) for d in uniq])[inverse]
        else:
            hol = np.zeros(len(days))
        return CalendarBlock(slot.astype(np.int64), weekday.astype(np.int64), hol)

    def one(self, start: int) -> CalendarBlock:
        """Calendar of a single interval start."""
        return self.block(np.array([start], dtype=np.int64))
