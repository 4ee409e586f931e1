"""Turn one raw Kafka message into a validated contract record, or a :class:`Rejection` with a reason.

Checks, in order: size, framing and schema (codec), record type for the topic, physics (models), key
matches the record's partitioning field, event time not in the future of the wall clock by more than
``max_future_seconds`` (the only use of the clock: a sanity bound, never a processing decision).
Checks that need state (unknown charger, late reading) are made by the feeder runtime.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from streams.contracts.codec import AvroCodec, DecodeError
from streams.contracts.models import DeadLetter, Record, decode_record
from streams.contracts.topics import TOPICS

__all__ = ["MAX_DEADLETTER_KEY", "MAX_DEADLETTER_VALUE", "MAX_REASON_CHARS", "RawMessage", "Rejection", "Validator",
           "dead_letter"]

MAX_DEADLETTER_VALUE = 65_536
"""Dead letters keep at most this many bytes of the original value, so one always fits in a Kafka message."""
MAX_DEADLETTER_KEY = 1_024
"""... and at most this many bytes of the original key (the reason says how long it was)."""
MAX_REASON_CHARS = 2_000
"""... and at most this many characters of the human-readable reason."""


class RawMessage(NamedTuple):
    """A message as read from Kafka; ``topic`` is the logical name (without EVGRID_TOPIC_PREFIX)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was refused: a reason code (see DeadLetter.avsc) and a human-readable reason."""

    code: str
    reason: str


_KEY_FIELD = {"MeterReading": "feeder_id", "ChargerTelemetry": "feeder_id", "ChargerRegistration": "feeder_id",
              "SiteRegistration": "feeder_id",
              "GridSignal": "feeder_id", "IncentiveResponse": "feeder_id", "WeatherObservation": "station_id"}
_EVENT_TIME = {"MeterReading": "timestamp", "ChargerTelemetry": "timestamp", "ChargerRegistration": "registered_at",
               "SiteRegistration": "registered_at",
               "GridSignal": "issued_at", "IncentiveResponse": "responded_at", "WeatherObservation": "timestamp"}


class Validator:
    """Stateless validation of input messages.

    Parameters
    ----------
    codec
        The Avro codec.
    max_message_bytes
        Larger values are rejected as ``oversized``.
    max_future_ms
        Event times further than this ahead of ``clock()`` are rejected as ``out_of_window``.
    clock
        Wall clock in epoch milliseconds (injectable for tests).
    """

    def __init__(
        self,
        codec: AvroCodec,
        max_message_bytes: int = 1_048_576,
        max_future_ms: int = 3_600_000,
        clock: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.codec = codec
        self.max_message_bytes = max_message_bytes
        self.max_future_ms = max_future_ms
        self.clock = clock

    def check(self, msg: RawMessage, now_ms: int | None = None) -> Record | Rejection:
        """The validated record, or why not (``now_ms``: the clock, read once per batch by callers)."""
        if msg.value is None or len(msg.value) == 0:
            return Rejection("truncated", "empty message value (0 bytes)")
        if len(msg.value) > self.max_message_bytes:
            return Rejection("oversized", f"{len(msg.value)} bytes is above the {self.max_message_bytes}-byte limit")
        spec = TOPICS.get(msg.topic)
        if spec is None:
            return Rejection("unknown_topic", f"no contract for topic {msg.topic}")
        try:
            record = decode_record(self.codec, msg.value, spec.record if not spec.also else None)
        except DecodeError as exc:
            return Rejection(exc.code, exc.reason)
        name = type(record).__name__
        if name not in spec.records:
            return Rejection("wrong_record_type", f"got a {name}, this topic carries {' or '.join(spec.records)}")
        key_field = _KEY_FIELD.get(name)
        if key_field is not None:
            expected = getattr(record, key_field).encode()
            if msg.key != expected:
                shown = msg.key.decode(errors="replace")[:80] if msg.key is not None else None
                return Rejection("key_mismatch", f"key {shown!r} is not the record's {key_field} {expected.decode()!r}")
        ts_field = _EVENT_TIME.get(name)
        if ts_field is not None:
            ts = getattr(record, ts_field)
            limit = (self.clock() if now_ms is None else now_ms) + self.max_future_ms
            if ts > limit:
                ahead_h = (ts - limit) / 3.6e6
                return Rejection("out_of_window", f"{ts_field} {ts} is {ahead_h:.1f} h beyond now + max future")
        return record


def dead_letter(msg: RawMessage, rejection: Rejection, worker: str, rejected_at: int) -> DeadLetter:
    """The DeadLetter record for a refused message: it always fits in a Kafka message (value, key and reason are
    truncated to :data:`MAX_DEADLETTER_VALUE`, :data:`MAX_DEADLETTER_KEY` bytes and :data:`MAX_REASON_CHARS`)."""
    value = msg.value[:MAX_DEADLETTER_VALUE] if msg.value is not None else None
    key, reason = msg.key, rejection.reason
    if key is not None and len(key) > MAX_DEADLETTER_KEY:
        reason = f"{reason} (key of {len(key)} bytes, first {MAX_DEADLETTER_KEY} kept)"
        key = key[:MAX_DEADLETTER_KEY]
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[:MAX_REASON_CHARS - 1] + "…"
    return DeadLetter(
        source_topic=msg.topic, partition=msg.partition, offset=msg.offset, key=key, value=value,
        reason_code=rejection.code, reason=reason, record_timestamp=msg.timestamp,
        rejected_at=rejected_at, worker=worker,
    )
