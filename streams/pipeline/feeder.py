"""One feeder's state and what each valid input record does to it. Pure and picklable.

The runtime keeps the chargers registered on the feeder, applies each input exactly once (it records the
last offset applied per input partition), feeds meter readings to the interval aggregator, and on every
interval close runs the forecaster and the dispatcher.
"""

from __future__ import annotations

from typing import NamedTuple

from streams.contracts.models import (
    ChargerRegistration,
    ChargerTelemetry,
    GridSignal,
    IncentiveResponse,
    MeterReading,
    Record,
    WeatherObservation,
)
from streams.ingest.validate import RawMessage, Rejection
from streams.settings import Settings

__all__ = ["FeederRuntime", "Output", "Reject"]

class Reject(NamedTuple):
    """Dead-letter ``msg`` (the current input or one held earlier) for ``rejection``."""

    msg: RawMessage
    rejection: Rejection


Output = Reject | tuple[str, bytes, Record]


class FeederRuntime:
    """State of one feeder. ``apply`` returns outputs: records to produce, or rejections to dead-letter."""

    def __init__(self, feeder_id: str, settings: Settings) -> None:
        self.feeder_id = feeder_id
        self.interval_ms = settings.interval_minutes * 60_000
        self.offsets: dict[tuple[str, int], int] = {}
        self.chargers: dict[str, ChargerRegistration] = {}
        self.registration_grace_ms = settings.registration_grace_seconds * 1000
        self.watermark = 0
        self.readings = 0
        # Telemetry of chargers not (yet) registered: held until the registration arrives or the watermark
        # passes its time + grace (topics are consumed independently, so a registration may come later).
        self.pending: dict[str, list[tuple[RawMessage, ChargerTelemetry]]] = {}

    def claim(self, topic: str, partition: int, offset: int) -> bool:
        """True the first time an input offset is seen; False for one already applied (a replay after restart)."""
        key = (topic, partition)
        if offset <= self.offsets.get(key, -1):
            return False
        self.offsets[key] = offset
        return True

    def apply(self, record: Record, msg: RawMessage) -> list[Output]:
        out: list[Output] = []
        if isinstance(record, MeterReading):
            self._advance(record.timestamp, out)
            self.on_meter(record, msg, out)
        elif isinstance(record, ChargerTelemetry):
            if record.charger_id not in self.chargers:
                self.pending.setdefault(record.charger_id, []).append((msg, record))
            else:
                self.on_telemetry(record, msg, out)
            self._advance(record.timestamp, out)
        elif isinstance(record, ChargerRegistration):
            self.chargers[record.charger_id] = record
            for held_msg, held in self.pending.pop(record.charger_id, []):
                self.on_telemetry(held, held_msg, out)
        elif isinstance(record, GridSignal | IncentiveResponse):
            pass
        else:
            out.append(Reject(msg, Rejection("wrong_record_type", f"{type(record).__name__} is not a feeder input")))
        return out

    def _advance(self, ts: int, out: list[Output]) -> None:
        """Move the feeder's event-time watermark; dead-letter held telemetry whose grace has passed."""
        self.watermark = max(self.watermark, ts)
        if not self.pending:
            return
        deadline = self.watermark - self.registration_grace_ms
        for charger_id in [c for c, held in self.pending.items() if held[0][1].timestamp < deadline]:
            for held_msg, _ in self.pending.pop(charger_id):
                reason = f"charger {charger_id} is not registered on feeder {self.feeder_id}"
                out.append(Reject(held_msg, Rejection("unknown_charger", reason)))

    def on_meter(self, reading: MeterReading, msg: RawMessage, out: list[Output]) -> None:
        self.readings += 1

    def on_telemetry(self, telemetry: ChargerTelemetry, msg: RawMessage, out: list[Output]) -> None:
        pass

    def observe_weather(self, obs: WeatherObservation) -> None:
        pass
