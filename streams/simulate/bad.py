"""Bad-message injection: known kinds of broken messages and the dead-letter reason code each must get.

Reason codes (shared with the dead-letter router): ``truncated``, ``bad_magic``, ``unknown_schema``,
``wrong_record_type``, ``invalid_value``, ``unknown_charger``, ``out_of_window``. Injected messages
carry the header ``evgrid-injected: <reason code>`` (and ``evgrid-injected-kind: <kind>``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from streams.contracts.codec import HEADER_LEN, MAGIC, AvroCodec, DecodeError
from streams.contracts.models import ChargerTelemetry, MeterReading, Record, WeatherObservation

__all__ = [
    "ALL_KINDS",
    "BAD_MAGIC",
    "DECODE_DETECTABLE",
    "HEADER_INJECTED",
    "HEADER_KIND",
    "INVALID_VALUE",
    "KIND_REASON",
    "OUT_OF_WINDOW",
    "REASON_CODES",
    "TRUNCATED",
    "UNKNOWN_CHARGER",
    "UNKNOWN_SCHEMA",
    "WRONG_RECORD_TYPE",
    "BadMessage",
    "applicable_kinds",
    "make_bad",
]

TRUNCATED = "truncated"
BAD_MAGIC = "bad_magic"
UNKNOWN_SCHEMA = "unknown_schema"
WRONG_RECORD_TYPE = "wrong_record_type"
INVALID_VALUE = "invalid_value"
UNKNOWN_CHARGER = "unknown_charger"
OUT_OF_WINDOW = "out_of_window"
REASON_CODES = (TRUNCATED, BAD_MAGIC, UNKNOWN_SCHEMA, WRONG_RECORD_TYPE, INVALID_VALUE, UNKNOWN_CHARGER,
                OUT_OF_WINDOW)

HEADER_INJECTED = "evgrid-injected"
HEADER_KIND = "evgrid-injected-kind"

TS_1970 = 0
TS_2099 = 4_070_908_800_000  # 2099-01-01T00:00Z: inside the contract's absolute window, far past any watermark

KIND_REASON: dict[str, str] = {
    "truncated_bytes": TRUNCATED,
    "random_bytes": BAD_MAGIC,
    "unknown_fingerprint": UNKNOWN_SCHEMA,
    "wrong_record_type": WRONG_RECORD_TYPE,
    "nan_power": INVALID_VALUE,
    "soc_140": INVALID_VALUE,
    "power_above_limit": INVALID_VALUE,
    "timestamp_1970": OUT_OF_WINDOW,  # below the contract's 2000-01-01 floor: decode_record rejects it
    "timestamp_2099": OUT_OF_WINDOW,
    "unknown_charger": UNKNOWN_CHARGER,
}
"""Each bad kind and the reason code a correct dead-letter router gives it."""
ALL_KINDS = tuple(KIND_REASON)
DECODE_DETECTABLE = frozenset(set(ALL_KINDS) - {"timestamp_2099", "unknown_charger"})
"""Kinds that ``decode_record(codec, value, expected)`` alone rejects, with the kind's reason code.

The others decode into valid records: ``unknown_charger`` needs the registry, ``timestamp_2099``
(inside the contract's 2000-2100 window) needs the feeder's event-time watermark.
"""

_BYTE_KINDS = ("truncated_bytes", "random_bytes", "unknown_fingerprint", "wrong_record_type")
_BY_RECORD: dict[str, tuple[str, ...]] = {
    "MeterReading": (*_BYTE_KINDS, "nan_power", "timestamp_1970", "timestamp_2099"),
    "ChargerTelemetry": (*_BYTE_KINDS, "nan_power", "soc_140", "power_above_limit", "timestamp_1970",
                         "timestamp_2099", "unknown_charger"),
    "WeatherObservation": (*_BYTE_KINDS, "timestamp_1970", "timestamp_2099"),
}


@dataclass(frozen=True)
class BadMessage:
    """One injected message: its bytes, the kind of damage and the expected reason code."""

    value: bytes
    kind: str
    reason_code: str


def applicable_kinds(record_type: str, allowed: tuple[str, ...] = ALL_KINDS) -> tuple[str, ...]:
    """The kinds that can damage a record of ``record_type`` (byte-level kinds apply to every type)."""
    return tuple(k for k in _BY_RECORD.get(record_type, _BYTE_KINDS) if k in allowed)


def _foreign(record: Record) -> Record:
    """A valid record of another type, for the wrong-record-type kind."""
    ts: int = getattr(record, "timestamp", 0) or getattr(record, "registered_at", 1_767_571_200_000)
    if isinstance(record, WeatherObservation):
        return MeterReading(meter_id="WRONG-TYPE", feeder_id="WRONG-TYPE", timestamp=ts, active_power_kw=0.0)
    return WeatherObservation(station_id="WRONG-TYPE", timestamp=ts, air_temperature_c=10.0, ghi_wm2=0.0)


def _truncate(codec: AvroCodec, good: bytes, rng: random.Random) -> bytes:
    """A prefix of ``good`` the codec reports as truncated (some cuts land mid-string and read as corrupt)."""
    for _ in range(20):
        cut = good[: rng.randrange(1, len(good))]
        try:
            codec.decode(cut)
        except DecodeError as exc:
            if exc.code == TRUNCATED:
                return cut
    return good[: rng.randrange(1, HEADER_LEN)]


def make_bad(codec: AvroCodec, kind: str, record: Record, good: bytes, rng: random.Random) -> BadMessage:
    """Damage ``record`` (whose encoding is ``good``) in the way ``kind`` names."""
    reason = KIND_REASON[kind]
    name = type(record).__name__
    raw = record.to_avro()
    if kind == "truncated_bytes":
        value = _truncate(codec, good, rng)
    elif kind == "random_bytes":
        value = bytes([rng.choice([b for b in range(256) if b != MAGIC[0]])]) + rng.randbytes(rng.randrange(9, 60))
    elif kind == "unknown_fingerprint":
        fp = rng.randbytes(8)
        while fp in codec.by_fingerprint:
            fp = rng.randbytes(8)
        value = MAGIC + fp + good[HEADER_LEN:]
    elif kind == "wrong_record_type":
        foreign = _foreign(record)
        value = codec.encode(type(foreign).__name__, foreign.to_avro())
    else:
        if kind == "nan_power":
            raw["power_kw" if isinstance(record, ChargerTelemetry) else "active_power_kw"] = math.nan
        elif kind == "soc_140":
            raw["soc_pct"] = 140.0
        elif kind == "power_above_limit":
            raw["power_kw"] = round(raw["max_charge_kw"] * 2.0 + 5.0, 3)
        elif kind == "timestamp_1970":
            raw["timestamp"] = TS_1970
        elif kind == "timestamp_2099":
            raw["timestamp"] = TS_2099
        elif kind == "unknown_charger":
            raw["charger_id"] = f"UNREGISTERED-{rng.randrange(10**6):06d}"
        else:
            raise ValueError(f"unknown bad kind {kind}")
        value = codec.encode(name, raw)
    return BadMessage(value, kind, reason)
