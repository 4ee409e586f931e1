"""A downstream consumer of evgrid setpoints that does not import evgrid: confluent-kafka + fastavro only.

It reads ``<prefix>evgrid.setpoints``, decodes each value (Avro single-object encoding: ``C3 01``, the 8-byte
little-endian CRC-64-AVRO fingerprint of the writer schema, the Avro body) with the writer schema found by
fingerprint among the ``.avsc`` files, resolved to the newest version, keeps the newest setpoint per charger
(by ``sequence``) and prints one JSON line per applied setpoint, then the power each charger should apply at
the latest event time seen.

    python examples/python/consume_setpoints.py --schemas schemas --prefix "" --bootstrap 127.0.0.1:9092
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError
from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint, to_parsing_canonical_form

MAGIC = b"\xc3\x01"
SCHEDULE_HOURS = 4.0  # EVGRID_SETPOINT_SCHEDULE_HOURS of the producing deployment


def load_schemas(folder: Path) -> tuple[dict[bytes, Any], dict[str, Any]]:
    """Writer schemas by fingerprint (every version) and the newest schema by record name."""
    by_fp: dict[bytes, Any] = {}
    newest: dict[str, Any] = {}
    for path in sorted(folder.glob("*.avsc")) + sorted(folder.glob("versions/*/v*.avsc")):
        schema = parse_schema(json.loads(path.read_text()), _write_hint=False)
        fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))
        by_fp.setdefault(fp, schema)
        if path.parent == folder:
            newest[str(schema["name"]).split(".")[-1]] = schema
    return by_fp, newest


def decode(value: bytes, by_fp: dict[bytes, Any], newest: dict[str, Any]) -> dict[str, Any]:
    if value[:2] != MAGIC or len(value) < 10:
        raise ValueError("not Avro single-object encoded")
    writer = by_fp.get(value[2:10])
    if writer is None:
        raise ValueError(f"unknown schema fingerprint {value[2:10].hex()} (update the .avsc files)")
    reader = newest[str(writer["name"]).split(".")[-1]]
    return dict(schemaless_reader(io.BytesIO(value[10:]), writer, reader))  # type: ignore[arg-type]


def power_at(sp: dict[str, Any], t_ms: int, schedule_ms: int) -> float:
    """kW a charger applies at event time ``t_ms`` under setpoint ``sp`` (+ charge, - discharge)."""
    if t_ms < sp["valid_from"]:
        raise ValueError("not valid yet")
    if t_ms < sp["valid_until"]:
        return float(sp["setpoint_kw"])
    current = None
    if t_ms < sp["valid_from"] + schedule_ms:
        for point in sp["schedule"]:  # ordered by start; each lasts until the next one
            if point["start"] <= t_ms:
                current = point["kw"]
    return float(current if current is not None else sp["fallback_kw"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--prefix", default="", help="EVGRID_TOPIC_PREFIX of the producing deployment")
    ap.add_argument("--schemas", type=Path, default=Path("schemas"))
    ap.add_argument("--group", default="example-setpoint-consumer")
    ap.add_argument("--max-messages", type=int, default=0, help="stop after this many (0 = run forever)")
    ap.add_argument("--idle-seconds", type=float, default=10.0, help="stop after this long without messages")
    args = ap.parse_args()

    by_fp, newest = load_schemas(args.schemas)
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([f"{args.prefix}evgrid.setpoints"])
    latest: dict[str, dict[str, Any]] = {}  # charger_id -> newest applied setpoint
    seen = stale = 0
    idle = 0.0
    try:
        while not args.max_messages or seen < args.max_messages:
            msg = consumer.poll(1.0)
            if msg is None:
                idle += 1.0
                if idle >= args.idle_seconds:
                    break
                continue
            idle = 0.0
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise SystemExit(f"kafka error: {msg.error()}")
            seen += 1
            if msg.value() is None:  # a tombstone: the charger has no setpoint, it applies its own fallback
                latest.pop(msg.key().decode(), None)
                continue
            sp = decode(msg.value(), by_fp, newest)
            assert msg.key().decode() == sp["charger_id"]  # key = charger_id, so one charger = one partition
            last = latest.get(sp["charger_id"])
            if last is not None and sp["sequence"] <= last["sequence"]:
                stale += 1  # a replayed or duplicate setpoint: keep the newer one already applied
                continue
            latest[sp["charger_id"]] = sp
            print(json.dumps({"charger_id": sp["charger_id"], "sequence": sp["sequence"],
                              "setpoint_kw": sp["setpoint_kw"], "valid_from": sp["valid_from"],
                              "valid_until": sp["valid_until"], "fallback_kw": sp["fallback_kw"],
                              "schedule_points": len(sp["schedule"]), "reason": sp["reason"]}))
    finally:
        consumer.close()
    now = max((sp["valid_from"] for sp in latest.values()), default=0)
    summary = {"messages": seen, "ignored_older_sequence": stale, "chargers": len(latest), "event_time_ms": now,
               "power_kw": {c: power_at(sp, now, int(SCHEDULE_HOURS * 3_600_000))
                            for c, sp in sorted(latest.items()) if sp["valid_from"] <= now}}
    print(json.dumps({"summary": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
