"""What the monitoring sink remembers between records, and the points each record completes. Pure.

:class:`MonitorState` is fed decoded records from the pipeline's input and output topics (in any order
across topics, in order within a feeder) and returns :class:`~streams.sinks.metrics.MetricPoint` lists:

- meter readings are aggregated per feeder into event-time intervals exactly like the pipeline does
  (:class:`~streams.forecasting.aggregate.IntervalAggregator`); each closed interval gives a ``feeder``
  point (with the import/export limits in force from ``GridSignal`` or the defaults; a signal read after
  intervals it covers re-states their points, which overwrite the earlier ones in InfluxDB) and the
  ``forecast_error`` points of the forecasts that targeted it;
- forecasts give ``forecast`` points at the kept horizons;
- charger telemetry gives, at every interval boundary the feeder's telemetry passes, a ``fleet`` snapshot
  and (unless the feeder's ``Flexibility`` records arrive on their own topic) a telemetry-derived
  ``flexibility`` point (:func:`fleet_flexibility`), and marks the interval's ``incentives`` bucket (so a
  feeder without offers shows 0 offered and the number of active accepted offers, not a gap);
- setpoints, offers and responses are bucketed per feeder and interval; :meth:`MonitorState.flush` returns
  the complete ``setpoints``/``incentives`` points of every bucket that changed since the last flush (a
  re-written bucket overwrites the earlier, partial point in InfluxDB: same series, same time).

Nothing reads the clock; times are event times (UTC epoch ms) taken from the records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.contracts.models import (
    ChargerSetpoint,
    ChargerTelemetry,
    DemandForecast,
    Flexibility,
    FlexibilityPoint,
    GridSignal,
    IncentiveEvent,
    IncentiveResponse,
    MeterReading,
    Record,
    UtilityEvent,
)
from streams.forecasting.aggregate import IntervalAggregator
from streams.settings import Settings
from streams.sinks.metrics import (
    DEFAULT_HORIZONS_MIN,
    ForecastErrorTracker,
    MetricPoint,
    feeder_point,
    fleet_point,
    flexibility_point,
    forecast_points,
    incentive_point,
    setpoint_points,
    utility_event_point,
)

__all__ = ["MonitorConfig", "MonitorState", "fleet_flexibility"]

HOUR_MS = 3_600_000
MAX_SNAPSHOTS_PER_JUMP = 96
"""At most this many fleet snapshots are written when a feeder's telemetry jumps over a gap."""


@dataclass(frozen=True)
class MonitorConfig:
    """Parameters of :class:`MonitorState` (see :meth:`from_settings` for their settings)."""

    step_ms: int = 900_000
    grace_ms: int = 300_000
    stale_after_ms: int = 900_000
    horizons_min: tuple[int, ...] = DEFAULT_HORIZONS_MIN
    season_ms: int = 86_400_000
    default_import_limit_kw: float | None = None
    default_export_limit_kw: float | None = None
    keep_ms: int = 26 * HOUR_MS
    """Buckets, offers and signals older than this behind the newest event time seen are forgotten. Topics are
    consumed independently (a backfill may read one topic hours ahead of another), so keep it well above
    that skew: a record for a forgotten bucket starts it afresh and its point overwrites the complete one."""

    @classmethod
    def from_settings(cls, s: Settings) -> MonitorConfig:
        """EVGRID_INTERVAL_MINUTES, _GRACE_SECONDS, _STALE_TELEMETRY_SECONDS, _METRICS_*, _DEFAULT_*_LIMIT_KW."""
        return cls(step_ms=s.interval_minutes * 60_000, grace_ms=s.grace_seconds * 1000,
                   stale_after_ms=s.stale_telemetry_seconds * 1000, horizons_min=tuple(s.metrics_horizons_minutes),
                   season_ms=s.metrics_naive_season_hours * HOUR_MS,
                   default_import_limit_kw=s.default_import_limit_kw,
                   default_export_limit_kw=s.default_export_limit_kw)


def fleet_flexibility(feeder_id: str, time_ms: int, step_ms: int, telemetry: Iterable[ChargerTelemetry],
                      stale_after_ms: int) -> Flexibility:
    """How far the connected fleet could move its power over the next interval, from telemetry alone.

    Per fresh, connected, grid-connected charger: ``up_kw = max_charge_kw - power_kw`` (charge harder),
    ``down_kw = power_kw + max_discharge_kw`` (stop charging, then discharge). Energies are those powers over
    one interval, capped by the battery's room (``up``: capacity × (100 − SoC) %) and its energy above the
    reserve (the discharge part of ``down``: capacity × (SoC − reserve) %) when SoC and capacity are known.
    ``baseline_kw`` is the fleet's present net power.

    Parameters
    ----------
    feeder_id : str
        Feeder.
    time_ms : int
        Start of the interval (event time), UTC epoch ms.
    step_ms : int
        Interval length, ms.
    telemetry : iterable of ChargerTelemetry
        Latest record of each charger of the feeder.
    stale_after_ms : int
        Chargers not heard for longer than this are left out.
    """
    hours = step_ms / HOUR_MS
    base = up = down = e_up = e_down = 0.0
    for t in telemetry:
        if time_ms - t.timestamp > stale_after_ms or not t.connected or t.grid_state != "grid_connected":
            continue
        base += t.power_kw
        u = max(0.0, t.max_charge_kw - t.power_kw)
        defer = max(0.0, t.power_kw)
        discharge = t.max_discharge_kw + min(0.0, t.power_kw)
        eu, ed = u * hours, discharge * hours
        if t.soc_pct is not None and t.battery_capacity_kwh is not None:
            eu = min(eu, t.battery_capacity_kwh * (100.0 - t.soc_pct) / 100.0)
            ed = min(ed, max(0.0, t.battery_capacity_kwh * (t.soc_pct - (t.reserve_soc_pct or 0.0)) / 100.0))
        up += u
        down += defer + max(0.0, discharge)
        e_up += max(0.0, eu)
        e_down += defer * hours + max(0.0, ed)
    point = FlexibilityPoint(start=time_ms, baseline_kw=base, up_kw=up, down_kw=down, energy_up_kwh=e_up,
                             energy_down_kwh=e_down)
    return Flexibility(feeder_id=feeder_id, issued_at=time_ms, step_ms=step_ms, points=[point])


@dataclass
class _Feeder:
    aggregator: IntervalAggregator
    signals: list[GridSignal] = field(default_factory=list)
    loads: dict[int, tuple[float, int]] = field(default_factory=dict)  # interval start -> (kW, meters reporting)
    telemetry: dict[str, ChargerTelemetry] = field(default_factory=dict)
    next_boundary: int | None = None
    own_flexibility: bool = False


@dataclass
class _Bucket:
    setpoints: list[ChargerSetpoint] = field(default_factory=list)
    offers: list[IncentiveEvent] = field(default_factory=list)
    responses: list[IncentiveResponse] = field(default_factory=list)
    incentives: bool = False


class MonitorState:
    """Monitoring state of every feeder one monitor instance sees (see the module docstring).

    Parameters
    ----------
    config : MonitorConfig
        Interval, grace, staleness, horizons, naive season, default limits.
    """

    def __init__(self, config: MonitorConfig | None = None) -> None:
        self.config = c = config or MonitorConfig()
        self.tracker = ForecastErrorTracker(c.horizons_min, c.season_ms)
        self.feeders: dict[str, _Feeder] = {}
        self.buckets: dict[tuple[str, int], _Bucket] = {}
        self.dirty: set[tuple[str, int]] = set()
        self.offers: dict[str, IncentiveEvent] = {}
        self.accepted: set[str] = set()
        self.watermark = 0
        self.ignored = 0

    def observe(self, record: Record) -> list[MetricPoint]:
        """Take one record; return the points it completes (``setpoints``/``incentives`` come from :meth:`flush`)."""
        if isinstance(record, MeterReading):
            return self._meter(record)
        if isinstance(record, ChargerTelemetry):
            return self._telemetry(record)
        if isinstance(record, DemandForecast):
            return forecast_points(record, self.config.horizons_min) + self.tracker.add_forecast(record)
        if isinstance(record, GridSignal):
            return self._signal(record)
        if isinstance(record, ChargerSetpoint):
            slim = record.model_copy(update={"schedule": [], "message": None})  # only counts and kW are kept
            self._bucket(record.feeder_id, record.issued_at).setpoints.append(slim)
            return []
        if isinstance(record, IncentiveEvent):
            self.offers[record.offer_id] = record
            b = self._bucket(record.feeder_id, record.issued_at)
            b.offers.append(record)
            b.incentives = True
            return []
        if isinstance(record, IncentiveResponse):
            if record.accepted:
                self.accepted.add(record.offer_id)
            else:
                self.accepted.discard(record.offer_id)
            b = self._bucket(record.feeder_id, record.responded_at)
            b.responses.append(record)
            b.incentives = True
            return []
        if isinstance(record, UtilityEvent):
            p = utility_event_point(record)
            return [p] if p is not None else []
        if isinstance(record, Flexibility):
            self._feeder(record.feeder_id).own_flexibility = True
            p = flexibility_point(record)
            return [p] if p is not None else []
        self.ignored += 1
        return []

    def flush(self) -> list[MetricPoint]:
        """Complete ``setpoints`` and ``incentives`` points of every bucket changed since the last flush."""
        out: list[MetricPoint] = []
        for feeder, start in sorted(self.dirty):
            b = self.buckets.get((feeder, start))
            if b is None:
                continue
            out += setpoint_points(feeder, start, b.setpoints)
            if b.incentives:
                p = incentive_point(feeder, start, offered=b.offers, responses=b.responses,
                                    active=self.active_offers(feeder, start))
                if p is not None:
                    out.append(p)
        self.dirty.clear()
        self._prune()
        return out

    def active_offers(self, feeder_id: str, time_ms: int) -> int:
        """Accepted offers of ``feeder_id`` whose window contains ``time_ms``."""
        return sum(1 for oid in self.accepted if (o := self.offers.get(oid)) is not None
                   and o.feeder_id == feeder_id and o.window_start <= time_ms < o.window_end)

    def limits(self, feeder_id: str, time_ms: int) -> tuple[float | None, float | None]:
        """(import, export) limit in force at ``time_ms``: the latest-issued valid signal giving each, else default."""
        imp, exp = self.config.default_import_limit_kw, self.config.default_export_limit_kw
        f = self.feeders.get(feeder_id)
        valid = [s for s in (f.signals if f else []) if s.valid_from <= time_ms < s.valid_until]
        for s in sorted(valid, key=lambda s: s.issued_at):
            if s.import_limit_kw is not None:
                imp = s.import_limit_kw
            if s.export_limit_kw is not None:
                exp = s.export_limit_kw
        return imp, exp

    # --- internals ------------------------------------------------------------------------------------
    def _feeder(self, feeder_id: str) -> _Feeder:
        f = self.feeders.get(feeder_id)
        if f is None:
            f = self.feeders[feeder_id] = _Feeder(IntervalAggregator(self.config.step_ms, self.config.grace_ms))
        return f

    def _start(self, time_ms: int) -> int:
        return time_ms // self.config.step_ms * self.config.step_ms

    def _bucket(self, feeder_id: str, time_ms: int) -> _Bucket:
        key = (feeder_id, self._start(time_ms))
        self.watermark = max(self.watermark, time_ms)
        self.dirty.add(key)
        b = self.buckets.get(key)
        if b is None:
            b = self.buckets[key] = _Bucket()
        return b

    def _signal(self, signal: GridSignal) -> list[MetricPoint]:
        """Keep the signal; re-state the ``feeder`` points of kept intervals it covers (it was read after them)."""
        f = self._feeder(signal.feeder_id)
        f.signals.append(signal)
        return [p for start in sorted(f.loads) if signal.valid_from <= start < signal.valid_until
                if (p := self._load_point(signal.feeder_id, start, *f.loads[start])) is not None]

    def _load_point(self, feeder_id: str, start: int, kw: float, reported: int) -> MetricPoint | None:
        imp, exp = self.limits(feeder_id, start)
        return feeder_point(feeder_id, start, kw, import_limit_kw=imp, export_limit_kw=exp, meters_reporting=reported)

    def _meter(self, reading: MeterReading) -> list[MetricPoint]:
        f = self._feeder(reading.feeder_id)
        if f.aggregator.add(reading) == "late":
            return []
        self.watermark = max(self.watermark, reading.timestamp)
        out: list[MetricPoint] = []
        for interval in f.aggregator.advance():
            if interval.kw is None:
                continue
            f.loads[interval.start] = (interval.kw, interval.reported)
            p = self._load_point(reading.feeder_id, interval.start, interval.kw, interval.reported)
            if p is not None:
                out.append(p)
            out += self.tracker.add_actual(reading.feeder_id, interval.start, interval.kw)
        return out

    def _telemetry(self, t: ChargerTelemetry) -> list[MetricPoint]:
        c = self.config
        f = self._feeder(t.feeder_id)
        out: list[MetricPoint] = []
        if f.next_boundary is None:
            f.next_boundary = self._start(t.timestamp) + c.step_ms
        if t.timestamp >= f.next_boundary:
            first = max(f.next_boundary, self._start(t.timestamp) - (MAX_SNAPSHOTS_PER_JUMP - 1) * c.step_ms)
            for boundary in range(first, self._start(t.timestamp) + 1, c.step_ms):
                out += self._snapshot(t.feeder_id, f, boundary)
            f.next_boundary = self._start(t.timestamp) + c.step_ms
        prev = f.telemetry.get(t.charger_id)
        if prev is None or prev.timestamp <= t.timestamp:
            f.telemetry[t.charger_id] = t
        self.watermark = max(self.watermark, t.timestamp)
        return out

    def _snapshot(self, feeder_id: str, f: _Feeder, boundary: int) -> list[MetricPoint]:
        c = self.config
        latest = list(f.telemetry.values())
        points = [fleet_point(feeder_id, boundary, latest, c.stale_after_ms)]
        if not f.own_flexibility:
            points.append(flexibility_point(fleet_flexibility(feeder_id, boundary, c.step_ms, latest,
                                                              c.stale_after_ms)))
        self._bucket(feeder_id, boundary).incentives = True  # an interval without offers is a 0, not a gap
        return [p for p in points if p is not None]

    def _prune(self) -> None:
        cutoff = self.watermark - self.config.keep_ms
        for key in [k for k in self.buckets if k[1] < cutoff]:
            del self.buckets[key]
        for oid in [o for o, e in self.offers.items() if e.window_end < cutoff]:
            del self.offers[oid]
            self.accepted.discard(oid)
        for f in self.feeders.values():
            f.signals = [s for s in f.signals if s.valid_until >= cutoff]
            for start in [t for t in f.loads if t < cutoff]:
                del f.loads[start]
