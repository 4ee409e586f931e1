"""Pydantic models mirror the schemas and add physical validation."""

from __future__ import annotations

import math

import pytest

from streams.contracts.codec import DecodeError, default_codec
from streams.contracts.models import (
    MODELS,
    ChargerRegistration,
    ChargerTelemetry,
    decode_record,
    encode_record,
)

CODEC = default_codec()
TS = 1_700_000_000_000


def _avro_fields(name: str) -> dict[str, object]:
    return {f["name"]: f for f in CODEC.latest[name].parsed["fields"]}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_fields_match_schema_fields(name: str) -> None:
    assert set(MODELS[name].model_fields) == set(_avro_fields(name))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_defaults_match_schema_defaults(name: str) -> None:
    for field_name, field in _avro_fields(name).items():
        mfield = MODELS[name].model_fields[field_name]
        if "default" in field:
            default = mfield.get_default(call_default_factory=True)
            assert default == field["default"], f"{name}.{field_name}"
        else:
            assert mfield.is_required(), f"{name}.{field_name} is required in Avro but not in the model"


def telemetry(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "charger_id": "c1", "feeder_id": "f1", "timestamp": TS, "connected": True, "power_kw": 7.0,
        "max_charge_kw": 7.2, "max_discharge_kw": 0.0, "soc_pct": 50.0,
    }
    base.update(kw)
    return base


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"soc_pct": 140.0}, "soc_pct: 140.0 is not <= 100"),
        ({"power_kw": math.nan}, "power_kw: nan is not a finite number"),
        ({"power_kw": math.inf}, "power_kw: inf is not a finite number"),
        ({"power_kw": 50.0}, "above max_charge_kw"),
        ({"power_kw": -5.0}, "discharges beyond max_discharge_kw"),
        ({"battery_capacity_kwh": -60.0}, "battery_capacity_kwh"),
    ],
)
def test_physical_validation_gives_a_readable_reason(change: dict[str, object], fragment: str) -> None:
    data = CODEC.encode("ChargerTelemetry", telemetry(**change))
    with pytest.raises(DecodeError) as err:
        decode_record(CODEC, data)
    assert err.value.code == "invalid_value"
    assert fragment in err.value.reason


@pytest.mark.parametrize("ts", [0, 4_102_444_800_000 + 1])
def test_timestamps_outside_2000_to_2100_are_out_of_window(ts: int) -> None:
    data = CODEC.encode("ChargerTelemetry", telemetry(timestamp=ts))
    with pytest.raises(DecodeError) as err:
        decode_record(CODEC, data)
    assert err.value.code == "out_of_window"
    assert f"timestamp: {ts} is not" in err.value.reason


def test_valid_record_round_trips_through_model() -> None:
    data = CODEC.encode("ChargerTelemetry", telemetry())
    record = decode_record(CODEC, data, "ChargerTelemetry")
    assert isinstance(record, ChargerTelemetry)
    assert encode_record(CODEC, record) == data


def test_export_permission_follows_interconnection_class() -> None:
    base = {
        "charger_id": "c", "feeder_id": "f", "site_id": "s", "customer_id": "u", "bidirectional": True,
        "inverter_location": "offboard", "export_limit_kw": 5.0, "v2g_enrolled": True, "max_charge_kw": 11.0,
        "max_discharge_kw": 11.0, "registered_at": TS,
    }
    assert ChargerRegistration(**base, interconnection_class="parallel_exporting").may_export
    assert not ChargerRegistration(**base, interconnection_class="parallel_non_exporting").may_export
    assert not ChargerRegistration(**base, interconnection_class="non_parallel").may_export
    with pytest.raises(ValueError, match="unidirectional"):
        ChargerRegistration(**{**base, "bidirectional": False}, interconnection_class="non_parallel")
