"""The metric vocabulary: what evgrid writes to InfluxDB, as small pure functions returning points.

Every point is a :class:`MetricPoint` (measurement, tags, fields, UTC epoch milliseconds) that renders to
InfluxDB line protocol with millisecond precision. Nothing here reads the clock or does I/O: callers pass
event times (per-feeder metrics) or the worker's own clock reading (per-worker metrics).

The schema (measurements, tags, fields, units) is documented in ``grafana/README.md``; the dashboards and
alert rules in :mod:`streams.sinks.dashboards` and :mod:`streams.sinks.alerts` query exactly these names.
A field always has the same type (counts are integers, everything else floats) so InfluxDB never sees a
field-type conflict. Non-finite floats and ``None`` values are left out of a point; a point with no field
left is not produced.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from streams.contracts.models import (
    ChargerSetpoint,
    ChargerTelemetry,
    DemandForecast,
    Flexibility,
    IncentiveEvent,
    IncentiveResponse,
    UtilityEvent,
)

__all__ = [
    "DEFAULT_HORIZONS_MIN",
    "MEASUREMENTS",
    "FieldValue",
    "ForecastErrorTracker",
    "MetricPoint",
    "PipelineCounters",
    "consumer_lag_points",
    "feeder_point",
    "fleet_point",
    "flexibility_point",
    "forecast_error_point",
    "forecast_points",
    "horizon_label",
    "incentive_point",
    "make_point",
    "setpoint_points",
    "sink_point",
    "utility_event_point",
]

FieldValue = float | int | str
"""A field value: ``int`` for counts (written ``12i``), ``float`` for quantities, ``str`` for labels."""

DEFAULT_HORIZONS_MIN: tuple[int, ...] = (15, 60, 240, 1440)
"""Forecast horizons (minutes from issue to the end of the target interval) written by default."""

MEASUREMENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # measurement: (tag keys, field keys)
    "feeder": (("feeder",), ("load_kw", "import_limit_kw", "export_limit_kw", "import_headroom_kw",
                             "export_headroom_kw", "meters_reporting")),
    "forecast": (("feeder", "horizon", "model"), ("kw", "lower_kw", "upper_kw")),
    "forecast_error": (("feeder", "horizon", "model"), ("actual_kw", "forecast_kw", "naive_kw", "abs_error_kw",
                                                         "naive_abs_error_kw", "covered")),
    "fleet": (("feeder",), ("charge_kw", "discharge_kw", "net_kw", "connected_cars", "chargers_reporting",
                            "stale_chargers", "stale_share")),
    "flexibility": (("feeder",), ("baseline_kw", "up_kw", "down_kw", "energy_up_kwh", "energy_down_kwh")),
    "setpoints": (("feeder", "reason"), ("count", "charge_kw", "discharge_kw")),
    "incentives": (("feeder",), ("offered", "accepted", "declined", "active", "offered_kwh", "compensation")),
    "throughput": (("worker", "topic"), ("events", "events_per_s")),
    "consumer_lag": (("worker", "topic"), ("lag", "max_partition_lag", "partitions")),
    "dead_letters": (("worker", "reason"), ("count", "per_s")),
    "latency": (("worker", "stage"), ("count", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")),
    "sink": (("worker",), ("dropped_points", "buffered_points", "written_points", "rejected_points",
                           "write_errors")),
    "feeder_state": (("worker", "feeder"), ("checkpoint_bytes", "held_telemetry")),
    "utility_events": (("feeder", "kind", "site"), ("count", "duration_s")),
    "worker_state": (("worker",), ("state_decode_failures", "state_encode_failures", "held_telemetry")),
}
"""Every measurement with its tag keys and field keys: the contract the dashboards are written against."""


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One InfluxDB point. Build it with :func:`make_point`, which validates and drops empty values.

    Attributes
    ----------
    measurement : str
        Measurement name, one of :data:`MEASUREMENTS`.
    tags : tuple of (str, str)
        Tag key/value pairs sorted by key (tags are indexed; keep their cardinality low).
    fields : tuple of (str, FieldValue)
        Field key/value pairs sorted by key; at least one.
    time_ms : int
        Timestamp, UTC epoch milliseconds.
    """

    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, FieldValue], ...]
    time_ms: int

    def tag(self, key: str) -> str | None:
        """Value of tag ``key`` or ``None``."""
        return dict(self.tags).get(key)

    def field(self, key: str) -> FieldValue | None:
        """Value of field ``key`` or ``None``."""
        return dict(self.fields).get(key)

    def to_line(self) -> str:
        """The point in InfluxDB line protocol, timestamp in milliseconds (write with precision ``ms``)."""
        head = _escape_key(self.measurement, measurement=True)
        for key, value in self.tags:
            head += f",{_escape_key(key)}={_escape_key(value)}"
        body = ",".join(f"{_escape_key(k)}={_format_field(v)}" for k, v in self.fields)
        return f"{head} {body} {self.time_ms}"


def _escape_key(text: str, *, measurement: bool = False) -> str:
    # backslashes are not escaped: InfluxDB 1.x keeps them literally in names and tags
    out = text.replace(",", "\\,").replace(" ", "\\ ")
    out = out.replace("\n", "\\n")
    return out if measurement else out.replace("=", "\\=")


def _format_field(value: FieldValue) -> str:
    if isinstance(value, bool):
        raise TypeError("bool fields are not used; write 0/1 integers")
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def make_point(measurement: str, time_ms: int, tags: Mapping[str, str | None],
               fields: Mapping[str, FieldValue | None]) -> MetricPoint | None:
    """Build a point, leaving out ``None``/empty tags and ``None``/non-finite fields.

    Parameters
    ----------
    measurement : str
        Measurement name.
    time_ms : int
        UTC epoch milliseconds.
    tags : mapping of str to str or None
        Tags; empty or ``None`` values are omitted (InfluxDB rejects empty tag values).
    fields : mapping of str to FieldValue or None
        Fields; ``None``, NaN and infinities are omitted. ``bool`` is rejected (use 0/1).

    Returns
    -------
    MetricPoint or None
        ``None`` when no field is left.
    """
    if not measurement:
        raise ValueError("empty measurement name")
    clean_fields: list[tuple[str, FieldValue]] = []
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, bool):
            raise TypeError(f"field {key}: bool fields are not used; write 0/1 integers")
        if isinstance(value, float) and not math.isfinite(value):
            continue
        clean_fields.append((key, value))
    if not clean_fields:
        return None
    clean_tags = tuple(sorted((k, v) for k, v in tags.items() if v))
    return MetricPoint(measurement, clean_tags, tuple(sorted(clean_fields)), int(time_ms))


def _points(*maybe: MetricPoint | None) -> list[MetricPoint]:
    return [p for p in maybe if p is not None]


def horizon_label(lead_ms: int) -> str:
    """Tag value of a forecast horizon: ``15m``, ``90m``, ``1h``, ``24h``.

    Parameters
    ----------
    lead_ms : int
        Time from the forecast's issue to the end of the target interval, milliseconds (> 0).
    """
    if lead_ms <= 0:
        raise ValueError("lead_ms must be positive")
    minutes, rest = divmod(lead_ms, 60_000)
    if rest:
        return f"{lead_ms // 1000}s"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


# --- per feeder and interval -------------------------------------------------------------------------


def feeder_point(feeder_id: str, interval_start_ms: int, load_kw: float, *, import_limit_kw: float | None,
                 export_limit_kw: float | None, meters_reporting: int | None = None) -> MetricPoint | None:
    """Measured load of one closed interval with the limits in force (measurement ``feeder``).

    Parameters
    ----------
    feeder_id : str
        Feeder.
    interval_start_ms : int
        Start of the interval, UTC epoch ms (the point's time).
    load_kw : float
        Measured average feeder load, kW (negative = reverse flow).
    import_limit_kw, export_limit_kw : float or None
        Limits in force (export limit as a positive reverse-flow bound), kW.
    meters_reporting : int, optional
        Meters that reported in the interval.

    Returns
    -------
    MetricPoint or None
        Fields ``load_kw``, the limits, ``import_headroom_kw = import_limit - load`` and
        ``export_headroom_kw = load + export_limit`` (negative headroom = limit violated).
    """
    return make_point("feeder", interval_start_ms, {"feeder": feeder_id}, {
        "load_kw": float(load_kw),
        "import_limit_kw": None if import_limit_kw is None else float(import_limit_kw),
        "export_limit_kw": None if export_limit_kw is None else float(export_limit_kw),
        "import_headroom_kw": None if import_limit_kw is None else float(import_limit_kw) - load_kw,
        "export_headroom_kw": None if export_limit_kw is None else float(load_kw) + export_limit_kw,
        "meters_reporting": meters_reporting,
    })


def forecast_points(forecast: DemandForecast,
                    horizons_min: Iterable[int] = DEFAULT_HORIZONS_MIN) -> list[MetricPoint]:
    """The forecast at selected horizons, timed at the target interval start (measurement ``forecast``).

    A point of step ``k`` has horizon ``k * step_ms``; only steps whose horizon is in ``horizons_min`` are
    written, so each feeder has a handful of series (tag ``horizon``) rather than one per step.
    """
    wanted = {int(h) * 60_000 for h in horizons_min}
    out: list[MetricPoint] = []
    for p in forecast.points:
        lead = p.step * forecast.step_ms
        if lead not in wanted:
            continue
        out += _points(make_point("forecast", p.start, {
            "feeder": forecast.feeder_id, "horizon": horizon_label(lead), "model": forecast.model_id,
        }, {"kw": float(p.kw), "lower_kw": float(p.lower_kw), "upper_kw": float(p.upper_kw)}))
    return out


def forecast_error_point(feeder_id: str, interval_start_ms: int, horizon: str, model_id: str, *,
                         actual_kw: float, forecast_kw: float, naive_kw: float | None,
                         lower_kw: float | None = None, upper_kw: float | None = None) -> MetricPoint | None:
    """Error of one forecast against the measured load, beside the seasonal-naive error (``forecast_error``).

    Fields ``abs_error_kw = |forecast - actual|``, ``naive_abs_error_kw = |naive - actual|`` (absent when no
    naive value exists yet) and ``covered`` (1 when the actual lies within [lower, upper], else 0).
    """
    covered = None
    if lower_kw is not None and upper_kw is not None:
        covered = int(lower_kw <= actual_kw <= upper_kw)
    return make_point("forecast_error", interval_start_ms,
                      {"feeder": feeder_id, "horizon": horizon, "model": model_id}, {
        "actual_kw": float(actual_kw), "forecast_kw": float(forecast_kw),
        "naive_kw": None if naive_kw is None else float(naive_kw),
        "abs_error_kw": abs(float(forecast_kw) - actual_kw),
        "naive_abs_error_kw": None if naive_kw is None else abs(float(naive_kw) - actual_kw),
        "covered": covered,
    })


def fleet_point(feeder_id: str, time_ms: int, telemetry: Iterable[ChargerTelemetry],
                stale_after_ms: int) -> MetricPoint | None:
    """EV fleet state of a feeder from the latest telemetry of each charger (measurement ``fleet``).

    Parameters
    ----------
    feeder_id : str
        Feeder.
    time_ms : int
        Event time of the snapshot (e.g. the interval end), UTC epoch ms.
    telemetry : iterable of ChargerTelemetry
        The latest record of each charger of the feeder (one per charger).
    stale_after_ms : int
        A charger not heard for longer than this is stale (EVGRID_STALE_TELEMETRY_SECONDS × 1000).

    Returns
    -------
    MetricPoint or None
        ``charge_kw`` (sum of positive power), ``discharge_kw`` (V2G export, sum of negative power as a
        positive number), ``net_kw``, ``connected_cars``, ``chargers_reporting`` (not stale),
        ``stale_chargers`` and ``stale_share`` (stale / known chargers, 0 when none are known).
    """
    charge = discharge = 0.0
    connected = fresh = stale = 0
    for t in telemetry:
        if time_ms - t.timestamp > stale_after_ms:
            stale += 1
            continue
        fresh += 1
        if t.connected:
            connected += 1
        if t.power_kw >= 0:
            charge += t.power_kw
        else:
            discharge -= t.power_kw
    known = fresh + stale
    return make_point("fleet", time_ms, {"feeder": feeder_id}, {
        "charge_kw": charge, "discharge_kw": discharge, "net_kw": charge - discharge,
        "connected_cars": connected, "chargers_reporting": fresh, "stale_chargers": stale,
        "stale_share": stale / known if known else 0.0,
    })


def flexibility_point(flex: Flexibility) -> MetricPoint | None:
    """Flexibility of the interval starting at issue (the first point) (measurement ``flexibility``)."""
    if not flex.points:
        return None
    p = flex.points[0]
    return make_point("flexibility", p.start, {"feeder": flex.feeder_id}, {
        "baseline_kw": float(p.baseline_kw), "up_kw": float(p.up_kw), "down_kw": float(p.down_kw),
        "energy_up_kwh": float(p.energy_up_kwh), "energy_down_kwh": float(p.energy_down_kwh),
    })


def utility_event_point(event: UtilityEvent) -> MetricPoint | None:
    """One notice to the utility at its event time (measurement ``utility_events``): ``count`` 1, and the
    length of a backup episode (s) when it ends."""
    return make_point("utility_events", event.at, {"feeder": event.feeder_id, "kind": event.kind,
                                                   "site": event.site_id},
                      {"count": 1, "duration_s": event.duration_s})


def setpoint_points(feeder_id: str, time_ms: int, setpoints: Iterable[ChargerSetpoint]) -> list[MetricPoint]:
    """Setpoints issued for a feeder in one interval, one point per reason (measurement ``setpoints``).

    Fields ``count``, ``charge_kw`` (sum of positive setpoints) and ``discharge_kw`` (sum of negative
    setpoints as a positive number). Setpoints of other feeders are ignored.
    """
    acc: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for s in setpoints:
        if s.feeder_id != feeder_id:
            continue
        a = acc[s.reason]
        a[0] += 1
        if s.setpoint_kw >= 0:
            a[1] += s.setpoint_kw
        else:
            a[2] -= s.setpoint_kw
    return _points(*(make_point("setpoints", time_ms, {"feeder": feeder_id, "reason": reason}, {
        "count": int(a[0]), "charge_kw": float(a[1]), "discharge_kw": float(a[2]),
    }) for reason, a in sorted(acc.items())))


def incentive_point(feeder_id: str, time_ms: int, *, offered: Sequence[IncentiveEvent],
                    responses: Sequence[IncentiveResponse], active: int) -> MetricPoint | None:
    """Incentive activity of a feeder in one interval (measurement ``incentives``).

    Parameters
    ----------
    offered : sequence of IncentiveEvent
        Offers issued in the interval.
    responses : sequence of IncentiveResponse
        Responses received in the interval.
    active : int
        Accepted offers whose window contains ``time_ms``.
    """
    offered = [o for o in offered if o.feeder_id == feeder_id]
    responses = [r for r in responses if r.feeder_id == feeder_id]
    accepted = sum(1 for r in responses if r.accepted)
    return make_point("incentives", time_ms, {"feeder": feeder_id}, {
        "offered": len(offered), "accepted": accepted, "declined": len(responses) - accepted,
        "active": int(active), "offered_kwh": float(sum(o.expected_kwh for o in offered)),
        "compensation": float(sum(o.compensation for o in offered)),
    })


@dataclass
class ForecastErrorTracker:
    """Scores forecasts against measured load, per horizon, beside a seasonal-naive baseline.

    Pure and event-time driven: feed it forecasts (:meth:`add_forecast`) and measured interval loads
    (:meth:`add_actual`); each actual returns ``forecast_error`` points for every kept forecast of that
    interval. The seasonal-naive forecast of an interval is the load measured one ``season_ms`` earlier
    (only valid for horizons up to a season). State older than a season plus the longest horizon is pruned.

    Parameters
    ----------
    horizons_min : iterable of int
        Horizons kept, minutes (see :func:`forecast_points`).
    season_ms : int
        Season of the naive baseline (default one day).
    """

    horizons_min: Iterable[int] = DEFAULT_HORIZONS_MIN
    season_ms: int = 86_400_000
    _forecasts: dict[tuple[str, int], dict[str, tuple[str, float, float, float]]] = field(
        default_factory=dict, init=False, repr=False)
    _actuals: dict[str, dict[int, float]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.horizons_min = tuple(sorted({int(h) for h in self.horizons_min}))
        self._wanted = {h * 60_000 for h in self.horizons_min}
        self._keep_ms = self.season_ms + max(self._wanted, default=0) + 3_600_000

    def add_forecast(self, forecast: DemandForecast) -> list[MetricPoint]:
        """Remember the forecast's points at the kept horizons until their actual arrives.

        Returns the ``forecast_error`` points of targets whose actual is already known (a monitor may read
        the meter topic ahead of the forecast topic); those points are not kept.
        """
        out: list[MetricPoint] = []
        history = self._actuals.get(forecast.feeder_id, {})
        for p in forecast.points:
            lead = p.step * forecast.step_ms
            if lead not in self._wanted:
                continue
            actual = history.get(p.start)
            if actual is not None:
                out += _points(forecast_error_point(
                    forecast.feeder_id, p.start, horizon_label(lead), forecast.model_id, actual_kw=actual,
                    forecast_kw=p.kw, naive_kw=history.get(p.start - self.season_ms), lower_kw=p.lower_kw,
                    upper_kw=p.upper_kw))
                continue
            slot = self._forecasts.setdefault((forecast.feeder_id, p.start), {})
            slot[horizon_label(lead)] = (forecast.model_id, p.kw, p.lower_kw, p.upper_kw)
        return out

    def add_actual(self, feeder_id: str, interval_start_ms: int, load_kw: float) -> list[MetricPoint]:
        """Record a measured interval load; return the ``forecast_error`` points it completes."""
        history = self._actuals.setdefault(feeder_id, {})
        history[interval_start_ms] = load_kw
        naive = history.get(interval_start_ms - self.season_ms)
        out: list[MetricPoint] = []
        for horizon, (model, kw, lo, hi) in sorted(self._forecasts.pop((feeder_id, interval_start_ms), {}).items()):
            out += _points(forecast_error_point(feeder_id, interval_start_ms, horizon, model, actual_kw=load_kw,
                                                forecast_kw=kw, naive_kw=naive, lower_kw=lo, upper_kw=hi))
        self._prune(feeder_id, interval_start_ms)
        return out

    def pending(self) -> int:
        """Forecast intervals still waiting for their actual."""
        return len(self._forecasts)

    def _prune(self, feeder_id: str, now_ms: int) -> None:
        cutoff = now_ms - self._keep_ms
        history = self._actuals[feeder_id]
        for t in [t for t in history if t < cutoff]:
            del history[t]
        for key in [k for k in self._forecasts if k[0] == feeder_id and k[1] < cutoff]:
            del self._forecasts[key]


# --- per worker ---------------------------------------------------------------------------------------


def consumer_lag_points(worker: str, time_ms: int, lag_by_topic: Mapping[str, Mapping[int, int]]) -> list[
        MetricPoint]:
    """Consumer lag per topic (sum over partitions) (measurement ``consumer_lag``).

    Parameters
    ----------
    lag_by_topic : mapping of topic to mapping of partition to lag
        Messages between the committed offset and the end offset, per partition.
    """
    return _points(*(make_point("consumer_lag", time_ms, {"worker": worker, "topic": topic}, {
        "lag": int(sum(lags.values())), "max_partition_lag": int(max(lags.values(), default=0)),
        "partitions": len(lags),
    }) for topic, lags in sorted(lag_by_topic.items())))


def sink_point(worker: str, time_ms: int, *, dropped: int, buffered: int, written: int, rejected: int,
               write_errors: int) -> MetricPoint | None:
    """The monitoring sink's own counters, cumulative since start (measurement ``sink``)."""
    return make_point("sink", time_ms, {"worker": worker}, {
        "dropped_points": int(dropped), "buffered_points": int(buffered), "written_points": int(written),
        "rejected_points": int(rejected), "write_errors": int(write_errors),
    })


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of a sorted, non-empty sequence."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return float(sorted_values[rank - 1])


@dataclass
class PipelineCounters:
    """Counters of one worker between two snapshots: events per topic, dead letters, latencies, lag.

    Not thread-safe (a faust worker calls it from its event loop). :meth:`snapshot` turns the window into
    ``throughput``, ``dead_letters``, ``latency`` and ``consumer_lag`` points and starts a new window.

    Parameters
    ----------
    worker : str
        Worker name (tag ``worker``).
    max_latency_samples : int
        Latency samples kept per stage and window; beyond it samples overwrite older ones round-robin.
    """

    worker: str
    max_latency_samples: int = 10_000
    _events: dict[str, int] = field(default_factory=lambda: defaultdict(int), init=False, repr=False)
    _dead: dict[str, int] = field(default_factory=lambda: defaultdict(int), init=False, repr=False)
    _latency: dict[str, list[float]] = field(default_factory=dict, init=False, repr=False)
    _latency_seen: dict[str, int] = field(default_factory=lambda: defaultdict(int), init=False, repr=False)
    _lag: dict[str, dict[int, int]] = field(default_factory=dict, init=False, repr=False)
    _window_start_ms: int | None = field(default=None, init=False, repr=False)
    _known_topics: set[str] = field(default_factory=set, init=False, repr=False)
    _known_reasons: set[str] = field(default_factory=set, init=False, repr=False)

    def start(self, now_ms: int) -> None:
        """Open the first window at ``now_ms`` (otherwise the first snapshot has no rates)."""
        self._window_start_ms = now_ms

    def event(self, topic: str, n: int = 1) -> None:
        """Count ``n`` events consumed from ``topic``."""
        self._events[topic] += n

    def dead_letter(self, reason_code: str, n: int = 1) -> None:
        """Count ``n`` records sent to the dead-letter topic with ``reason_code``."""
        self._dead[reason_code] += n

    def latency(self, stage: str, ms: float) -> None:
        """Record one latency sample, e.g. stage ``setpoint``: event time of the input → setpoint emitted."""
        samples = self._latency.setdefault(stage, [])
        seen = self._latency_seen[stage]
        if len(samples) < self.max_latency_samples:
            samples.append(float(ms))
        else:
            samples[seen % self.max_latency_samples] = float(ms)
        self._latency_seen[stage] = seen + 1

    def lag(self, topic: str, partition: int, lag: int) -> None:
        """Set the current consumer lag of one partition (kept across snapshots until updated)."""
        self._lag.setdefault(topic, {})[partition] = max(0, int(lag))

    def snapshot(self, now_ms: int) -> list[MetricPoint]:
        """Points for the window ending at ``now_ms``; counters reset (lag is a gauge and stays).

        Rates (``events_per_s``, ``per_s``) are over the window since the previous snapshot (or
        :meth:`start`); without a window start they are omitted. Topics and reasons seen once are written
        with 0 in later quiet windows, so rates fall to zero instead of leaving gaps.
        """
        seconds = None
        if self._window_start_ms is not None and now_ms > self._window_start_ms:
            seconds = (now_ms - self._window_start_ms) / 1000.0
        out: list[MetricPoint] = []
        self._known_topics.update(self._events)
        self._known_reasons.update(self._dead)
        for topic in sorted(self._known_topics):
            n = self._events.get(topic, 0)
            out += _points(make_point("throughput", now_ms, {"worker": self.worker, "topic": topic}, {
                "events": int(n), "events_per_s": None if seconds is None else n / seconds}))
        for reason in sorted(self._known_reasons):
            n = self._dead.get(reason, 0)
            out += _points(make_point("dead_letters", now_ms, {"worker": self.worker, "reason": reason}, {
                "count": int(n), "per_s": None if seconds is None else n / seconds}))
        for stage, samples in sorted(self._latency.items()):
            if not samples:
                continue
            ordered = sorted(samples)
            out += _points(make_point("latency", now_ms, {"worker": self.worker, "stage": stage}, {
                "count": int(self._latency_seen[stage]), "mean_ms": sum(ordered) / len(ordered),
                "p50_ms": _percentile(ordered, 0.5), "p95_ms": _percentile(ordered, 0.95),
                "p99_ms": _percentile(ordered, 0.99), "max_ms": float(ordered[-1])}))
        out += consumer_lag_points(self.worker, now_ms, self._lag)
        self._events.clear()
        self._dead.clear()
        self._latency.clear()
        self._latency_seen.clear()
        self._window_start_ms = now_ms
        return out


def feeder_state_points(worker: str, time_ms: int, state_bytes: Mapping[bytes, int],
                        held: Mapping[bytes, int], decode_failures: int, encode_failures: int) -> list[MetricPoint]:
    """``feeder_state`` per feeder (its last checkpoint's size, telemetry held in memory) and ``worker_state``
    (checkpoints that did not decode: feeders started fresh; states that could not be encoded)."""
    out = _points(*(make_point("feeder_state", time_ms, {"worker": worker, "feeder": f.decode(errors="replace")},
                               {"checkpoint_bytes": int(n), "held_telemetry": int(held.get(f, 0))})
                    for f, n in sorted(state_bytes.items())))
    return out + _points(make_point("worker_state", time_ms, {"worker": worker}, {
        "state_decode_failures": int(decode_failures), "state_encode_failures": int(encode_failures),
        "held_telemetry": int(sum(held.values()))}))
