"""The single-object codec: framing, fingerprints, schema evolution, clear rejections."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contracts.codec import MAGIC, AvroCodec, DecodeError, default_codec

CODEC = default_codec()

METER = {"meter_id": "m1", "feeder_id": "f1", "timestamp": 1_700_000_000_000, "active_power_kw": 2.5}


def test_header_is_magic_plus_little_endian_crc64_fingerprint() -> None:
    data = CODEC.encode("MeterReading", METER)
    assert data[:2] == MAGIC
    entry = CODEC.latest["MeterReading"]
    assert data[2:10] == entry.fingerprint
    # Avro spec test vector: the fingerprint of the primitive schema "int" is 0x7275d51a3f395c8f.
    from fastavro.schema import fingerprint

    assert bytes.fromhex(fingerprint('"int"', "CRC-64-AVRO")) == struct.pack("<Q", 0x7275D51A3F395C8F)


def test_round_trip_every_latest_schema_with_minimal_record() -> None:
    name, record = CODEC.decode(CODEC.encode("MeterReading", METER))
    assert name == "MeterReading"
    assert record == {**METER, "reactive_power_kvar": None, "voltage_v": None, "quality": "good", "site_id": None}


@pytest.mark.parametrize(
    "name", sorted({e.name for entries in CODEC.versions.values() for e in entries if e.version != "latest"})
)
def test_newest_reader_reads_every_older_version(name: str) -> None:
    """Schema evolution: records written with any frozen older version decode in the newest shape."""
    latest_fields = {f["name"] for f in CODEC.latest[name].parsed["fields"]}
    for entry in CODEC.versions[name]:
        sample = _sample_record(entry.parsed)
        decoded_name, record = CODEC.decode(CODEC.encode(name, sample, version=entry.version))
        assert decoded_name == name
        assert set(record) == latest_fields
        for key, value in sample.items():
            assert record[key] == value
        for field in CODEC.latest[name].parsed["fields"]:
            if field["name"] not in sample:
                assert record[field["name"]] == field["default"]


def test_every_older_version_is_backward_compatible_with_the_newest() -> None:
    """Each new field of a newer version has a default, so old writers stay readable."""
    for name, entries in CODEC.versions.items():
        latest = {f["name"]: f for f in CODEC.latest[name].parsed["fields"]}
        for entry in entries:
            old = {f["name"] for f in entry.parsed["fields"]}
            for field_name, field in latest.items():
                if field_name not in old:
                    assert "default" in field, f"{name}.{field_name} added without a default"


def test_unknown_fingerprint_is_rejected_clearly() -> None:
    data = bytearray(CODEC.encode("MeterReading", METER))
    data[2:10] = b"\x00" * 8
    with pytest.raises(DecodeError) as err:
        CODEC.decode(bytes(data))
    assert err.value.code == "unknown_schema"
    assert "0000000000000000" in err.value.reason


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "truncated"),
        (b"\xc3\x01\x00", "truncated"),
        (b"{\"meter_id\": \"m1\"}", "bad_magic"),
    ],
)
def test_garbage_is_rejected_with_a_reason_code(data: bytes, code: str) -> None:
    with pytest.raises(DecodeError) as err:
        CODEC.decode(data)
    assert err.value.code == code


def test_truncated_body_and_trailing_bytes() -> None:
    data = CODEC.encode("MeterReading", METER)
    with pytest.raises(DecodeError) as err:
        CODEC.decode(data[:-3])
    assert err.value.code in {"truncated", "corrupt"}
    with pytest.raises(DecodeError) as err:
        CODEC.decode(data + b"\x00")
    assert err.value.code == "corrupt"


def test_wrong_record_type_for_topic() -> None:
    data = CODEC.encode("MeterReading", METER)
    with pytest.raises(DecodeError) as err:
        CODEC.decode(data, expected="ChargerTelemetry")
    assert err.value.code == "wrong_record_type"


@given(st.binary(max_size=200))
def test_random_bytes_are_refused_at_the_header_with_its_reason(data: bytes) -> None:
    with pytest.raises(DecodeError) as err:
        CODEC.decode(data)
    expected = "truncated" if len(data) < 10 else "bad_magic" if data[:2] != MAGIC else "unknown_schema"
    assert err.value.code == expected and err.value.reason


ENTRIES = sorted(((e.name, e.version) for entries in CODEC.versions.values() for e in entries), key=str)


@st.composite
def _edited(draw: st.DrawFn, body: bytes) -> bytes:
    """A valid body with a few byte edits: flip, overwrite, cut, insert."""
    b = bytearray(body)
    for op, at, byte in draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, len(body)), st.integers(0, 255)),
                                      min_size=1, max_size=3)):
        at = min(at, len(b))
        if op == 0 and at < len(b):
            b[at] ^= 1 << (byte % 8)
        elif op == 1 and at < len(b):
            b[at] = byte
        elif op == 2:
            del b[at:]
        else:
            b[at:at] = bytes([byte])
    return bytes(b)


@settings(max_examples=400)
@given(data=st.data())
def test_every_schema_header_before_a_hostile_body_decodes_or_says_why(data: st.DataObject) -> None:
    """Behind the valid header of every version of every schema, the body decoder runs: a record in the newest
    shape of that schema, or ``truncated`` / ``corrupt`` (never another exception)."""
    name, version = data.draw(st.sampled_from(ENTRIES))
    entry = next(e for e in CODEC.versions[name] if e.version == version)
    sample = CODEC.encode(name, _sample_record(entry.parsed), version=version)
    body = data.draw(st.one_of(st.binary(max_size=120), _edited(sample[10:])))
    try:
        decoded, record = CODEC.decode(sample[:10] + body)
    except DecodeError as err:
        assert err.code in {"truncated", "corrupt"}, err.code
        assert name in err.reason
        return
    assert decoded == name and set(record) == {f["name"] for f in CODEC.latest[name].parsed["fields"]}


def test_schema_dir_without_schemas_fails_loudly(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        AvroCodec(tmp_path)


def test_every_field_documents_its_meaning_and_unit() -> None:
    """Schemas are the contract for other languages: every record and field has a doc."""
    for path in sorted(CODEC.schema_dir.glob("*.avsc")):
        schema = json.loads(path.read_text())
        assert schema.get("doc"), path.name
        for field in _all_fields(schema):
            assert field.get("doc"), f"{path.name}: {field['name']} has no doc"


def _all_fields(schema: dict) -> list[dict]:
    out = []
    for field in schema.get("fields", []):
        out.append(field)
        ftype = field["type"]
        if isinstance(ftype, dict) and ftype.get("type") == "array" and isinstance(ftype["items"], dict):
            out.extend(_all_fields(ftype["items"]))
    return out


def _sample_record(schema: dict) -> dict:
    values = {"string": "x", "long": 1_700_000_000_000, "int": 1, "double": 1.5, "boolean": True, "bytes": b"v"}
    out = {}
    for field in schema["fields"]:
        ftype = field["type"]
        if isinstance(ftype, list):
            ftype = next(t for t in ftype if t != "null")
        if isinstance(ftype, dict) and ftype.get("type") == "enum":
            out[field["name"]] = ftype["symbols"][-1]
        elif isinstance(ftype, str) and ftype in values:
            out[field["name"]] = values[ftype]
        elif isinstance(ftype, dict) and ftype.get("type") == "array":
            items = ftype["items"]
            out[field["name"]] = [_sample_record(items)] if isinstance(items, dict) else [values[items]] * 3
        elif isinstance(ftype, str) and ftype.endswith("QualityFlag"):
            out[field["name"]] = "suspect"
        else:
            raise AssertionError(f"extend _sample_record for {ftype}")
    return out
