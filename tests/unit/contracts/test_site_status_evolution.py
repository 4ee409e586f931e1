"""SiteRegistration v1 → v2 (issue 21): a site registered before the interconnection lifecycle keeps working."""

from __future__ import annotations

import json

from streams.contracts.codec import default_codec
from streams.contracts.models import SiteRegistration, decode_record
from streams.dispatch.site_rules import site_rules

CODEC = default_codec()
V1 = {"site_id": "S1", "feeder_id": "F1", "interconnection_class": "parallel_exporting", "export_limit_kw": 5.0,
      "import_limit_kw": None, "site_meter_id": None, "registered_at": 1_767_571_200_000, "active": True}


def test_a_v1_site_reads_as_approved_with_no_date_and_any_pathway() -> None:
    rec = decode_record(CODEC, CODEC.encode("SiteRegistration", V1, version="v1"))
    assert isinstance(rec, SiteRegistration)
    assert (rec.interconnection_status, rec.status_since, rec.inverter_location) == ("approved", None, None)
    rules = site_rules("S1", rec, [])
    assert (rules.interconnection_class, rules.export_limit_kw) == ("parallel_exporting", 5.0)  # as before


def test_the_reading_of_a_v1_site_and_of_an_unknown_status_are_documented() -> None:
    schema = json.loads(CODEC.latest["SiteRegistration"].path.read_text())
    field = next(f for f in schema["fields"] if f["name"] == "interconnection_status")
    assert field["default"] == "approved" and "schema v1" in field["doc"] and "reads as approved" in field["doc"]
    assert field["type"]["default"] == "suspended"  # a symbol a reader does not know: the safe reading


def test_a_status_written_by_a_newer_writer_reads_as_suspended_by_an_older_reader() -> None:
    import io

    from fastavro import parse_schema, schemaless_reader, schemaless_writer

    schema = json.loads(CODEC.latest["SiteRegistration"].path.read_text())
    newer = json.loads(json.dumps(schema))
    status = next(f for f in newer["fields"] if f["name"] == "interconnection_status")
    status["type"]["symbols"].append("energized_pending_review")
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(newer), {**V1, "interconnection_status": "energized_pending_review"})
    buf.seek(0)
    got = schemaless_reader(buf, parse_schema(newer), parse_schema(schema))
    assert got["interconnection_status"] == "suspended"
