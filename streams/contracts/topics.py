"""The topic table: every topic evgrid reads or writes, its record type, key and retention.

``evgrid topics create`` creates them from this table; the agents and the simulator take names from
here (with the configured prefix) so there is one source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TOPICS", "TopicSpec", "topic_name"]

DAY_MS = 86_400_000


@dataclass(frozen=True)
class TopicSpec:
    """One topic: name (without prefix), record type, what the key is, and its broker configuration."""

    name: str
    record: str
    key: str
    cleanup_policy: str
    retention_ms: int
    feeder_keyed: bool = True
    """Partitioned like the input topics (EVGRID_PARTITIONS); otherwise 1 partition per key space below."""
    also: tuple[str, ...] = ()
    """Other record types the topic carries (the registry: sites next to their chargers)."""

    @property
    def records(self) -> tuple[str, ...]:
        """Every record type the topic carries."""
        return (self.record, *self.also)

    def config(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}


TOPICS: dict[str, TopicSpec] = {
    t.name: t
    for t in (
        TopicSpec("evgrid.meter.readings", "MeterReading", "feeder_id", "delete", 7 * DAY_MS),
        TopicSpec("evgrid.charger.telemetry", "ChargerTelemetry", "feeder_id", "delete", 7 * DAY_MS),
        # Keyed by feeder for co-partitioning, so not compacted (that would keep one charger per feeder).
        TopicSpec("evgrid.charger.registry", "ChargerRegistration", "feeder_id", "delete", -1,
                  also=("SiteRegistration",)),
        TopicSpec("evgrid.weather", "WeatherObservation", "station_id", "delete", 30 * DAY_MS, False),
        TopicSpec("evgrid.grid.signals", "GridSignal", "feeder_id", "delete", 30 * DAY_MS),
        TopicSpec("evgrid.forecasts", "DemandForecast", "feeder_id", "delete", 7 * DAY_MS),
        TopicSpec("evgrid.setpoints", "ChargerSetpoint", "charger_id", "compact", -1),
        TopicSpec("evgrid.incentives", "IncentiveEvent", "customer_id", "delete", 90 * DAY_MS),
        TopicSpec("evgrid.incentive-responses", "IncentiveResponse", "feeder_id", "delete", 90 * DAY_MS),
        TopicSpec("evgrid.settlements", "Settlement", "customer_id", "delete", 400 * DAY_MS),
        TopicSpec("evgrid.flexibility", "Flexibility", "feeder_id", "delete", 7 * DAY_MS),
        TopicSpec("evgrid.utility.events", "UtilityEvent", "feeder_id", "delete", 400 * DAY_MS),
        TopicSpec("evgrid.deadletter", "DeadLetter", "source topic", "delete", 30 * DAY_MS, False),
    )
}

METER_READINGS = "evgrid.meter.readings"
CHARGER_TELEMETRY = "evgrid.charger.telemetry"
CHARGER_REGISTRY = "evgrid.charger.registry"
WEATHER = "evgrid.weather"
GRID_SIGNALS = "evgrid.grid.signals"
FORECASTS = "evgrid.forecasts"
SETPOINTS = "evgrid.setpoints"
INCENTIVES = "evgrid.incentives"
INCENTIVE_RESPONSES = "evgrid.incentive-responses"
SETTLEMENTS = "evgrid.settlements"
FLEXIBILITY = "evgrid.flexibility"
DEADLETTER = "evgrid.deadletter"
UTILITY_EVENTS = "evgrid.utility.events"


def topic_name(name: str, prefix: str = "") -> str:
    """The broker-side name of topic ``name`` under ``prefix`` (EVGRID_TOPIC_PREFIX)."""
    if name not in TOPICS:
        raise KeyError(f"unknown topic {name}")
    return f"{prefix}{name}"
