"""Pydantic models mirroring the Avro schemas, with physical validation.

Field names, types and defaults match ``schemas/*.avsc`` exactly (a unit test checks it); the models add
what Avro cannot say: finite numbers, SoC within 0-100 %, non-negative ratings, power within the
charger's limits, sane timestamps, windows that end after they start.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from streams.contracts.codec import AvroCodec, DecodeError

__all__ = [
    "MAX_ID_CHARS",
    "MODELS",
    "ChargerRegistration",
    "ChargerSetpoint",
    "ChargerTelemetry",
    "DeadLetter",
    "DemandForecast",
    "Flexibility",
    "FlexibilityPoint",
    "ForecastPoint",
    "GridSignal",
    "IncentiveEvent",
    "IncentiveResponse",
    "MeterReading",
    "Record",
    "SchedulePoint",
    "Settlement",
    "SiteRegistration",
    "UtilityEvent",
    "WeatherObservation",
    "decode_record",
    "describe_validation_error",
    "encode_record",
]

MIN_TS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_TS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
POWER_TOLERANCE = 1.05  # measured power may exceed the rating by metering error

MAX_ID_CHARS = 128
"""Identifiers (every field named ``*_id``) have at most this many characters, all printable: an id is a key,
and every record built from it must fit in a Kafka message."""

EpochMs = Field(ge=MIN_TS, lt=MAX_TS, description="UTC epoch milliseconds")


class Record(BaseModel):
    """Base of every contract model: immutable, no unknown fields, no NaN or infinity, bounded printable ids."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @model_validator(mode="after")
    def _ids_are_bounded_and_printable(self) -> Record:
        for name in type(self).model_fields:
            if not name.endswith("_id"):
                continue
            value = getattr(self, name)
            if isinstance(value, str) and (len(value) > MAX_ID_CHARS or not value.isprintable()):
                raise ValueError(f"{name} must be at most {MAX_ID_CHARS} printable characters "
                                 f"(got {len(value)} characters{'' if value.isprintable() else ', not printable'})")
        return self

    def to_avro(self) -> dict[str, Any]:
        """The record as the dict fastavro writes."""
        return self.model_dump()


class MeterReading(Record):
    meter_id: str = Field(min_length=1)
    feeder_id: str = Field(min_length=1)
    timestamp: int = EpochMs
    active_power_kw: float = Field(ge=-100_000.0, le=100_000.0)
    reactive_power_kvar: float | None = None
    voltage_v: float | None = Field(default=None, ge=0.0, le=1_000_000.0)
    quality: Literal["good", "estimated", "suspect"] = "good"
    site_id: str | None = None


class ChargerTelemetry(Record):
    charger_id: str = Field(min_length=1)
    feeder_id: str = Field(min_length=1)
    timestamp: int = EpochMs
    connected: bool
    session_id: str | None = None
    power_kw: float
    soc_pct: float | None = Field(default=None, ge=0.0, le=100.0)
    battery_capacity_kwh: float | None = Field(default=None, gt=0.0, le=10_000.0)
    max_charge_kw: float = Field(ge=0.0, le=10_000.0)
    max_discharge_kw: float = Field(default=0.0, ge=0.0, le=10_000.0)
    departure_time: int | None = Field(default=None, ge=MIN_TS, lt=MAX_TS)
    requested_energy_kwh: float | None = Field(default=None, ge=0.0, le=10_000.0)
    target_soc_pct: float | None = Field(default=None, ge=0.0, le=100.0)
    energy_delivered_kwh: float | None = None
    reserve_soc_pct: float | None = Field(default=None, ge=0.0, le=100.0)
    grid_state: Literal["grid_connected", "islanded"] = "grid_connected"
    setpoint_sequence: int | None = None
    setpoint_answer: Literal["accepted", "rejected", "error", "timeout"] | None = None

    @model_validator(mode="after")
    def _power_within_limits(self) -> ChargerTelemetry:
        if self.power_kw > self.max_charge_kw * POWER_TOLERANCE + 0.1:
            raise ValueError(f"power_kw {self.power_kw} is above max_charge_kw {self.max_charge_kw}")
        if -self.power_kw > self.max_discharge_kw * POWER_TOLERANCE + 0.1:
            raise ValueError(f"power_kw {self.power_kw} discharges beyond max_discharge_kw {self.max_discharge_kw}")
        return self


class ChargerRegistration(Record):
    charger_id: str = Field(min_length=1)
    feeder_id: str = Field(min_length=1)
    site_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    bidirectional: bool
    inverter_location: Literal["onboard", "offboard"]
    interconnection_class: Literal["non_parallel", "parallel_non_exporting", "parallel_exporting"]
    export_limit_kw: float = Field(default=0.0, ge=0.0, le=10_000.0)
    v2g_enrolled: bool = False
    max_charge_kw: float = Field(ge=0.0, le=10_000.0)
    max_discharge_kw: float = Field(default=0.0, ge=0.0, le=10_000.0)
    site_import_limit_kw: float | None = Field(default=None, ge=0.0)
    asset_type: Literal["ev_charger", "stationary_battery"] = "ev_charger"
    registered_at: int = EpochMs
    active: bool = True
    battery_capacity_kwh: float | None = Field(default=None, gt=0.0, le=1_000_000.0)
    min_soc_pct: float | None = Field(default=None, ge=0.0, le=100.0)
    max_soc_pct: float | None = Field(default=None, ge=0.0, le=100.0)
    round_trip_efficiency: float | None = Field(default=None, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _discharge_needs_bidirectional(self) -> ChargerRegistration:
        if self.max_discharge_kw > 0 and not self.bidirectional:
            raise ValueError("max_discharge_kw > 0 on a unidirectional charger")
        return self

    @property
    def may_export(self) -> bool:
        """Only parallel_exporting sites enrolled in V2G may push power into the grid."""
        return self.bidirectional and self.v2g_enrolled and self.interconnection_class == "parallel_exporting"


class SiteRegistration(Record):
    site_id: str = Field(min_length=1)
    feeder_id: str = Field(min_length=1)
    interconnection_class: Literal["non_parallel", "parallel_non_exporting", "parallel_exporting"]
    export_limit_kw: float = Field(default=0.0, ge=0.0, le=10_000.0)
    import_limit_kw: float | None = Field(default=None, ge=0.0)
    site_meter_id: str | None = None
    registered_at: int = EpochMs
    active: bool = True
    interconnection_status: Literal["approved", "applied", "backup_only", "suspended", "withdrawn"] = "approved"
    status_since: int | None = Field(default=None, ge=MIN_TS, lt=MAX_TS)
    inverter_location: Literal["onboard", "offboard"] | None = None


class WeatherObservation(Record):
    station_id: str = Field(min_length=1)
    timestamp: int = EpochMs
    forecast_for: int | None = Field(default=None, ge=MIN_TS, lt=MAX_TS)
    air_temperature_c: float = Field(ge=-90.0, le=65.0)
    ghi_wm2: float = Field(ge=0.0, le=1_500.0)
    wind_speed_ms: float | None = Field(default=None, ge=0.0, le=120.0)
    cloud_cover_pct: float | None = Field(default=None, ge=0.0, le=100.0)


class GridSignal(Record):
    signal_id: str = Field(min_length=1)
    feeder_id: str = Field(min_length=1)
    site_id: str | None = None
    issued_at: int = EpochMs
    valid_from: int = EpochMs
    valid_until: int = EpochMs
    import_limit_kw: float | None = Field(default=None, ge=0.0)
    export_limit_kw: float | None = Field(default=None, ge=0.0)
    price_per_kwh: float | None = Field(default=None, ge=-100.0, le=100.0)
    currency: str = "USD"
    dr_event_id: str | None = None
    demand_charge_per_kw: float | None = Field(default=None, ge=0.0, le=10_000.0)

    @model_validator(mode="after")
    def _window(self) -> GridSignal:
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self


class ForecastPoint(Record):
    step: int = Field(ge=1)
    start: int
    kw: float
    lower_kw: float
    upper_kw: float


class DemandForecast(Record):
    feeder_id: str
    issued_at: int
    step_ms: int = Field(gt=0)
    model_id: str
    coverage: float = Field(ge=0.0, le=1.0)
    reporting_share: float = Field(ge=0.0, le=1.0)
    points: list[ForecastPoint]


class SchedulePoint(Record):
    start: int
    kw: float


SetpointReason = Literal[
    "optimal", "fallback_heuristic", "stale_telemetry", "infeasible_request", "unplugged", "backup_mode",
    "clipped_by_safety",
]


class ChargerSetpoint(Record):
    charger_id: str
    feeder_id: str
    session_id: str | None = None
    sequence: int = Field(ge=0)
    setpoint_kw: float
    valid_from: int
    valid_until: int
    fallback_kw: float = Field(ge=0.0)
    schedule: list[SchedulePoint] = Field(default_factory=list)
    reason: SetpointReason
    plan_id: str
    issued_at: int
    message: str | None = None


class IncentiveEvent(Record):
    offer_id: str
    feeder_id: str
    charger_id: str
    customer_id: str
    session_id: str | None = None
    action: Literal["delay_charging", "export", "absorb_surplus"]
    window_start: int
    window_end: int
    expected_kwh: float = Field(ge=0.0)
    compensation: float = Field(ge=0.0)
    currency: str = "USD"
    expires_at: int
    issued_at: int
    reason: str


class IncentiveResponse(Record):
    offer_id: str = Field(min_length=1)
    feeder_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    accepted: bool
    responded_at: int = EpochMs


class Settlement(Record):
    settlement_id: str
    offer_id: str | None = None
    feeder_id: str
    charger_id: str
    customer_id: str
    period_start: int
    period_end: int
    exported_kwh: float = Field(ge=0.0)
    price_per_kwh: float
    amount: float
    currency: str = "USD"
    export_basis: Literal["charger_telemetry", "site_meter", "commanded"] = "charger_telemetry"
    self_consumed_kwh: float = Field(default=0.0, ge=0.0)


class DeadLetter(Record):
    source_topic: str
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes | None = None
    reason_code: str
    reason: str
    record_timestamp: int | None = None
    rejected_at: int
    worker: str


class FlexibilityPoint(Record):
    start: int
    baseline_kw: float
    up_kw: float = Field(ge=0.0)
    down_kw: float = Field(ge=0.0)
    energy_up_kwh: float = Field(ge=0.0)
    energy_down_kwh: float = Field(ge=0.0)


class Flexibility(Record):
    feeder_id: str
    issued_at: int
    step_ms: int = Field(gt=0)
    points: list[FlexibilityPoint]


class UtilityEvent(Record):
    event_id: str = Field(min_length=1)
    kind: Literal["status_change", "pathway_refused", "backup_started", "backup_ended"]
    feeder_id: str = Field(min_length=1)
    site_id: str | None = None
    charger_id: str | None = None
    at: int = EpochMs
    status: str | None = None
    previous_status: str | None = None
    effective_class: str | None = None
    duration_s: float | None = Field(default=None, ge=0.0)
    message: str


MODELS: dict[str, type[Record]] = {
    cls.__name__: cls
    for cls in (
        MeterReading, ChargerTelemetry, ChargerRegistration, SiteRegistration, WeatherObservation, GridSignal,
        DemandForecast,
        ChargerSetpoint, IncentiveEvent, IncentiveResponse, Settlement, DeadLetter, Flexibility, UtilityEvent,
    )
}


def describe_validation_error(exc: ValidationError) -> str:
    """One line a human can act on, e.g. ``soc_pct: 140.0 is not <= 100``."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "record"
        msg = err["msg"].removeprefix("Value error, ")
        ctx = err.get("ctx") or {}
        if err["type"] in ("less_than_equal", "greater_than_equal", "less_than", "greater_than"):
            op = {"less_than_equal": "<=", "greater_than_equal": ">=", "less_than": "<", "greater_than": ">"}
            bound = next(iter(ctx.values()), "?")
            msg = f"{err['input']!r} is not {op[err['type']]} {bound}"
        elif err["type"] == "finite_number":
            msg = f"{err['input']!r} is not a finite number"
        parts.append(f"{loc}: {msg}" if loc != "record" else msg)
    return "; ".join(parts)


def decode_record(codec: AvroCodec, data: bytes, expected: str | None = None) -> Record:
    """Decode and validate one message; raises :class:`DecodeError` (code ``invalid_value`` on bad physics)."""
    name, raw = codec.decode(data, expected)
    try:
        return MODELS[name].model_validate(raw)
    except ValidationError as exc:
        raise DecodeError(_error_code(exc), f"{name} {describe_validation_error(exc)}") from exc


_TIME_FIELDS = {"timestamp", "departure_time", "forecast_for", "issued_at", "valid_from", "registered_at",
                "responded_at"}


def _error_code(exc: ValidationError) -> str:
    """``out_of_window`` when only event times are outside 2000-2100, else ``invalid_value``."""
    errors = exc.errors(include_url=False)
    only_time = all(e["loc"] and e["loc"][0] in _TIME_FIELDS and e["type"].startswith(("greater", "less"))
                    for e in errors)
    return "out_of_window" if only_time else "invalid_value"


def encode_record(codec: AvroCodec, record: Record) -> bytes:
    """Encode a model with the newest schema of its record type."""
    return codec.encode(type(record).__name__, record.to_avro())
