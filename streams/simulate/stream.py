"""The merged, encoded simulator stream: every generator in event-time order, plus injected bad messages."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from streams.contracts.codec import AvroCodec, default_codec
from streams.contracts.models import Record, encode_record
from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, METER_READINGS, WEATHER
from streams.simulate.bad import ALL_KINDS, HEADER_INJECTED, HEADER_KIND, applicable_kinds, make_bad
from streams.simulate.chargers import SetpointFn, charger_telemetry
from streams.simulate.config import SimConfig, py_rng
from streams.simulate.fleet import Fleet, build_fleet, station_for_feeder
from streams.simulate.meters import meter_records, meter_times
from streams.simulate.profiles import h0_profile_kw
from streams.simulate.sessions import AcnSessions, load_acn_sessions, plan_sessions
from streams.simulate.weather import station_weather, weather_records

__all__ = ["SimMessage", "SimSummary", "iter_records", "simulate", "summarize"]

TOPIC_OF: dict[str, str] = {
    "MeterReading": METER_READINGS,
    "ChargerTelemetry": CHARGER_TELEMETRY,
    "ChargerRegistration": CHARGER_REGISTRY,
    "WeatherObservation": WEATHER,
}


@dataclass(frozen=True, slots=True)
class SimMessage:
    """One message to produce. ``topic`` has no prefix; ``timestamp`` (event time) is the Kafka timestamp."""

    timestamp: int
    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    record: Record | None = None
    """The good record (None for injected bad messages)."""
    injected: str | None = None
    """Reason code of an injected bad message (None for good ones)."""
    kind: str | None = None
    """Kind of damage of an injected bad message."""


def _key(record: Record) -> str:
    feeder = getattr(record, "feeder_id", None)
    return feeder if feeder is not None else str(getattr(record, "station_id"))  # noqa: B009


def iter_records(cfg: SimConfig, *, fleet: Fleet | None = None, acn: AcnSessions | None = None,
                 setpoint_fn: SetpointFn | None = None) -> Iterator[tuple[int, str, str, Record]]:
    """Good records ``(event time, topic, key, record)`` of the whole run, merged in event-time order.

    Registrations come first (at the run start), then weather, meters and chargers interleave by time;
    ties keep that order. Charger generators are lazy, so ``setpoint_fn`` sees the stream's progress
    (each generator is read at most one report ahead of the merge).
    """
    fleet = fleet or build_fleet(cfg)
    acn = acn or load_acn_sessions(cfg.acn_path)
    weather = {f: station_weather(cfg, station_for_feeder(f)) for f in fleet.feeders}
    sources: list[Iterable[tuple[int, Record]]] = [[(cfg.start_ms, c.registration) for c in fleet.chargers]]
    sources += [weather_records(cfg, w) for w in weather.values()]
    if fleet.homes:
        h0 = h0_profile_kw(meter_times(cfg), cfg.timezone)
        sources += [meter_records(cfg, h, h0, weather[h.feeder_id]) for h in fleet.homes]
    for c in fleet.chargers:
        sessions = plan_sessions(cfg, c.charger_id, c.capacity_kwh, acn, c.reserve_soc_pct)
        sources.append(charger_telemetry(cfg, c, sessions, setpoint_fn))
    for ts, record in heapq.merge(*sources, key=lambda item: item[0]):
        yield ts, TOPIC_OF[type(record).__name__], _key(record), record


def simulate(cfg: SimConfig, *, codec: AvroCodec | None = None, fleet: Fleet | None = None,
             acn: AcnSessions | None = None, setpoint_fn: SetpointFn | None = None) -> Iterator[SimMessage]:
    """The encoded stream of ``cfg``: byte-identical for the same config (and setpoints).

    With ``cfg.bad_rate`` r > 0, a bad message is inserted before a good one with probability r/(1-r),
    so bad messages are a share r of all messages; each damages the record it precedes in one of the
    kinds applicable to it (``cfg.bad_kinds``, default all) and goes to the same topic with the same
    key and timestamp, carrying the headers ``evgrid-injected`` and ``evgrid-injected-kind``.
    """
    codec = codec or default_codec()
    rng = py_rng(cfg.seed, "bad")
    allowed = cfg.bad_kinds or ALL_KINDS
    p_bad = cfg.bad_rate / (1.0 - cfg.bad_rate)
    for ts, topic, key, record in iter_records(cfg, fleet=fleet, acn=acn, setpoint_fn=setpoint_fn):
        value = encode_record(codec, record)
        kb = key.encode()
        if p_bad > 0.0 and rng.random() < p_bad:
            kinds = applicable_kinds(type(record).__name__, allowed)
            if kinds:
                bad = make_bad(codec, kinds[rng.randrange(len(kinds))], record, value, rng)
                headers = ((HEADER_INJECTED, bad.reason_code.encode()), (HEADER_KIND, bad.kind.encode()))
                yield SimMessage(ts, topic, kb, bad.value, headers, None, bad.reason_code, bad.kind)
        yield SimMessage(ts, topic, kb, value, (), record)


@dataclass
class SimSummary:
    """What a run produced: counts per topic and per injected reason, and the event-time span."""

    per_topic: Counter[str] = field(default_factory=Counter)
    bad_per_reason: Counter[str] = field(default_factory=Counter)
    bad_per_kind: Counter[str] = field(default_factory=Counter)
    first_ts: int | None = None
    last_ts: int | None = None
    total: int = 0
    bytes: int = 0

    def add(self, msg: SimMessage) -> None:
        """Count one message."""
        self.per_topic[msg.topic] += 1
        self.total += 1
        self.bytes += len(msg.value)
        if msg.injected is not None:
            self.bad_per_reason[msg.injected] += 1
            self.bad_per_kind[msg.kind or "?"] += 1
        if self.first_ts is None:
            self.first_ts = msg.timestamp
        self.last_ts = msg.timestamp

    @property
    def bad_total(self) -> int:
        return sum(self.bad_per_reason.values())


def summarize(messages: Iterable[SimMessage]) -> SimSummary:
    """Count a stream (consumes it)."""
    summary = SimSummary()
    for msg in messages:
        summary.add(msg)
    return summary

