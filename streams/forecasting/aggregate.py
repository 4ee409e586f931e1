"""Per-feeder event-time interval aggregation of meter readings.

A reading's ``timestamp`` is the *end* of its metering period (see ``MeterReading.avsc``), so a reading
stamped ``t`` belongs to the interval ``(start, start + interval]`` with ``start = (t - 1) // interval *
interval``: a 15-minute reading stamped 00:15 counts in the interval 00:00-00:15.

A meter that reads less often than the interval (15-minute readings, 5-minute intervals) reports its mean over its
period: a reading stamped ``t`` whose meter last read at ``p`` also counts in every interval that lies within
``(p, t]`` and is still open, so those intervals carry the load, not gaps, provided ``t - p`` is no longer than the
meter's spacing before (a longer silence is missing readings: a gap) and at most :data:`MAX_PERIOD_MS`.

The feeder's watermark is the largest reading timestamp seen. An interval closes when the watermark passes
(exceeds) its end plus the grace; a reading for a closed interval is ``late``. Nothing here reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = ["AddOutcome", "ClosedInterval", "IntervalAggregator", "ReadingLike"]

AddOutcome = Literal["accepted", "duplicate", "late"]

MAX_PERIOD_MS = 3_600_000
"""The longest metering period a reading is spread over (the time since its meter's previous reading); after a longer
silence the reading counts in its own interval only."""


class ReadingLike(Protocol):
    """What the aggregator needs from a reading (``streams.contracts.models.MeterReading`` fits)."""

    @property
    def meter_id(self) -> str: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def active_power_kw(self) -> float: ...


@dataclass(frozen=True, slots=True)
class ClosedInterval:
    """One closed aggregation interval of one feeder.

    Attributes
    ----------
    start, end : int
        Interval bounds, UTC epoch ms; readings stamped in ``(start, end]`` count.
    kw : float or None
        Feeder average active power, kW: the sum over reporting meters of each meter's mean, divided by
        ``share``; ``None`` when no meter reported (a gap).
    share : float
        Share of the feeder's known meters that reported, 0-1.
    reported, known : int
        Number of meters that reported / that the feeder is known to have.
    """

    start: int
    end: int
    kw: float | None
    share: float
    reported: int
    known: int

    @property
    def missing(self) -> bool:
        """True when no meter reported in the interval."""
        return self.kw is None


@dataclass(slots=True)
class _Open:
    sums: dict[str, list[float]] = field(default_factory=dict)  # meter -> [sum kW, count]
    seen: set[tuple[str, int]] = field(default_factory=set)


class IntervalAggregator:
    """Event-time interval aggregation for one feeder. Picklable; state is the open intervals only.

    Parameters
    ----------
    interval_ms : int
        Interval length, ms (divides a day).
    grace_ms : int
        How long after an interval's end (in event time) readings still count.
    meter_expiry_ms : int
        A meter not heard for this long (event time) stops counting as one of the feeder's known meters.
    max_gap_intervals : int
        At most this many empty intervals are emitted for one gap in the data; older empty intervals of a
        longer gap are skipped (the forecaster sees the jump in ``start``).
    """

    __slots__ = ("_closed_until", "_last_seen", "_open", "_spacing", "grace_ms", "interval_ms", "max_gap_intervals",
                 "meter_expiry_ms", "watermark")

    def __init__(self, interval_ms: int = 900_000, grace_ms: int = 300_000, *,
                 meter_expiry_ms: int = 7 * 86_400_000, max_gap_intervals: int = 4 * 96 * 7) -> None:
        if interval_ms <= 0 or 86_400_000 % interval_ms:
            raise ValueError(f"interval_ms {interval_ms} must divide one day")
        if grace_ms < 0:
            raise ValueError("grace_ms must be >= 0")
        self.interval_ms = interval_ms
        self.grace_ms = grace_ms
        self.meter_expiry_ms = meter_expiry_ms
        self.max_gap_intervals = max_gap_intervals
        self.watermark: int | None = None
        self._closed_until: int | None = None  # end of the last emitted interval
        self._open: dict[int, _Open] = {}
        self._last_seen: dict[str, int] = {}
        self._spacing: dict[str, int] = {}  # meter -> time between its last two readings (in order)

    def interval_start(self, timestamp: int) -> int:
        """Start of the interval a reading stamped ``timestamp`` (end of its period) belongs to."""
        return (timestamp - 1) // self.interval_ms * self.interval_ms

    def is_late(self, timestamp: int) -> bool:
        """Whether a reading stamped ``timestamp`` would be rejected as late now."""
        start = self.interval_start(timestamp)
        if self._closed_until is not None and start < self._closed_until:
            return True
        return self.watermark is not None and start + self.interval_ms + self.grace_ms < self.watermark

    def add(self, reading: ReadingLike) -> AddOutcome:
        """Count one reading. Returns ``accepted``, ``duplicate`` (same meter and timestamp already counted)
        or ``late`` (its interval has closed: dead-letter it with reason ``late``)."""
        ts = int(reading.timestamp)
        if self.is_late(ts):
            return "late"
        start = self.interval_start(ts)
        key = (reading.meter_id, ts)
        if (open_ := self._open.get(start)) is not None and key in open_.seen:
            return "duplicate"
        prev = self._last_seen.get(reading.meter_id)
        spacing = self._spacing
        first = start
        if prev is not None and prev < ts:
            gap = ts - prev
            if gap <= min(spacing.get(reading.meter_id, 0), MAX_PERIOD_MS):  # the open intervals within its period
                closed = self._closed_until if self._closed_until is not None else -(2**62)
                first = min(start, max(-(-prev // self.interval_ms) * self.interval_ms, closed))
            spacing[reading.meter_id] = gap
        kw = float(reading.active_power_kw)
        for s in range(first, start + 1, self.interval_ms):
            bucket = self._open.get(s)
            if bucket is None:
                bucket = self._open[s] = _Open()
            bucket.seen.add(key)
            acc = bucket.sums.get(reading.meter_id)
            if acc is None:
                bucket.sums[reading.meter_id] = [kw, 1.0]
            else:
                acc[0] += kw
                acc[1] += 1.0
        if self._last_seen.get(reading.meter_id, ts - 1) < ts:
            self._last_seen[reading.meter_id] = ts
        if self.watermark is None or ts > self.watermark:
            self.watermark = ts
        return "accepted"

    def advance(self) -> list[ClosedInterval]:
        """Close every interval whose end plus grace the watermark has passed, oldest first, gaps included."""
        if self.watermark is None:
            return []
        limit = self.watermark - self.grace_ms - 1  # intervals with end + grace < watermark close
        start = self._closed_until
        if start is None:
            if not self._open:
                return []
            start = min(self._open)
        out: list[ClosedInterval] = []
        while start + self.interval_ms <= limit:
            bucket = self._open.pop(start, None)
            if bucket is None:  # a gap: emit at most max_gap_intervals empty intervals before the next data
                stop = (limit - self.interval_ms) // self.interval_ms * self.interval_ms + self.interval_ms
                nxt = min((s for s in self._open if s > start), default=stop)
                target = min(nxt, stop)
                if (target - start) // self.interval_ms > self.max_gap_intervals:
                    start = target - self.max_gap_intervals * self.interval_ms
                    bucket = self._open.pop(start, None)
            out.append(self._close(start, bucket))
            start += self.interval_ms
            self._closed_until = start
        return out

    def _close(self, start: int, bucket: _Open | None) -> ClosedInterval:
        end = start + self.interval_ms
        horizon = end - self.meter_expiry_ms
        for meter in [m for m, seen in self._last_seen.items() if seen <= horizon]:
            del self._last_seen[meter]
            self._spacing.pop(meter, None)
        known = sum(1 for seen in self._last_seen.values() if seen > horizon)
        if bucket is None or not bucket.sums:
            return ClosedInterval(start, end, None, 0.0, 0, known)
        reported = len(bucket.sums)
        known = max(known, reported)
        share = reported / known
        total = sum(s / c for s, c in bucket.sums.values())
        return ClosedInterval(start, end, total / share, share, reported, known)

    def __getstate__(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state: dict[str, object]) -> None:
        self._spacing = {}  # a state from before spacings were kept
        for k, v in state.items():
            setattr(self, k, v)
