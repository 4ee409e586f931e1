"""Event-time pacing of a replay (pure: the caller passes the wall-clock reading in).

>>> p = EventPacer(speed=60.0)          # one hour of event time per minute
>>> p.delay(event_ms=0, wall_s=100.0)  # the first record fixes both origins
0.0
>>> p.delay(event_ms=3_600_000, wall_s=100.0)
60.0
>>> EventPacer(speed=None).delay(event_ms=10**12, wall_s=0.0)
0.0
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["EventPacer", "ReplaySummary"]


@dataclass
class EventPacer:
    """How long to wait before sending a record so event time advances ``speed`` times faster than real time.

    ``speed=None`` (or <= 0) means as fast as possible. Records whose event time is at or before the
    latest paced event time go out at once (pacing never reorders).
    """

    speed: float | None = None
    _event0: int | None = field(default=None, init=False)
    _wall0: float = field(default=0.0, init=False)

    def delay(self, event_ms: int, wall_s: float) -> float:
        """Seconds to sleep (>= 0) before sending a record with event time ``event_ms`` at wall time ``wall_s``."""
        if not self.speed or self.speed <= 0:
            return 0.0
        if self._event0 is None:
            self._event0, self._wall0 = event_ms, wall_s
            return 0.0
        due = self._wall0 + (event_ms - self._event0) / 1000.0 / self.speed
        return max(0.0, due - wall_s)


@dataclass
class ReplaySummary:
    """What a replay sent: counts per topic, event-time span and rate."""

    records: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)
    first_event_ms: int | None = None
    last_event_ms: int | None = None
    min_event_ms: int | None = None
    max_event_ms: int | None = None
    seconds: float = 0.0
    errors: int = 0

    @property
    def rate(self) -> float:
        """Records per second of wall time (delivery included)."""
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def span_ms(self) -> int:
        """Event-time span covered, ms."""
        if self.min_event_ms is None or self.max_event_ms is None:
            return 0
        return self.max_event_ms - self.min_event_ms

    def to_dict(self) -> dict[str, object]:
        """JSON-ready figures."""
        return {"records": self.records, "per_topic": dict(self.per_topic), "seconds": round(self.seconds, 3),
                "rate_per_s": round(self.rate, 1), "min_event_ms": self.min_event_ms,
                "max_event_ms": self.max_event_ms, "span_ms": self.span_ms, "errors": self.errors}
