"""Avro single-object encoding (``C3 01`` + CRC-64-AVRO fingerprint + body) resolved against ``schemas/``.

No schema registry is needed: every schema in ``schemas/`` (the newest version of each record, named
``<Record>.avsc``) and ``schemas/versions/<Record>/v*.avsc`` (frozen older versions) is registered by
fingerprint. A message is decoded with the schema it was written with and resolved to the newest
version of its record, so readers always see the newest shape.

>>> codec = default_codec()
>>> data = codec.encode("MeterReading", {"meter_id": "m1", "feeder_id": "f1", "timestamp": 0,
...                                      "active_power_kw": 1.5})
>>> data[:2].hex()
'c301'
>>> name, record = codec.decode(data)
>>> name, record["active_power_kw"], record["quality"]
('MeterReading', 1.5, 'good')
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

__all__ = ["MAGIC", "AvroCodec", "DecodeError", "SchemaEntry", "default_codec", "default_schema_dir"]

MAGIC = b"\xc3\x01"
HEADER_LEN = 10


class DecodeError(ValueError):
    """A message that cannot be decoded; ``code`` is the dead-letter reason code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class SchemaEntry:
    """One registered schema version."""

    name: str
    version: str
    fingerprint: bytes
    parsed: Any
    path: Path


def default_schema_dir() -> Path:
    """``$EVGRID_SCHEMA_DIR``, else the schemas packaged in an installed wheel (``streams/schemas``, read with
    ``importlib.resources``), else the repository's ``schemas/`` folder (a source checkout)."""
    env = os.environ.get("EVGRID_SCHEMA_DIR")
    if env:
        return Path(env)
    packaged = Path(str(resources.files("streams") / "schemas"))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "schemas"


def _fingerprint(parsed: Any) -> bytes:
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


class AvroCodec:
    """Encode and decode records of the schemas in one folder."""

    def __init__(self, schema_dir: Path | None = None) -> None:
        self.schema_dir = schema_dir or default_schema_dir()
        self.latest: dict[str, SchemaEntry] = {}
        self.by_fingerprint: dict[bytes, SchemaEntry] = {}
        self.versions: dict[str, list[SchemaEntry]] = {}
        for path in sorted(self.schema_dir.glob("*.avsc")):
            entry = self._load(path, "latest")
            self.latest[entry.name] = entry
        for path in sorted(self.schema_dir.glob("versions/*/v*.avsc")):
            self._load(path, path.stem)
        if not self.latest:
            raise FileNotFoundError(f"no *.avsc schemas in {self.schema_dir}")

    def _load(self, path: Path, version: str) -> SchemaEntry:
        raw = json.loads(path.read_text())
        plain: dict[str, Any] = parse_schema(raw, _write_hint=False)  # type: ignore[assignment]
        name = str(plain["name"]).split(".")[-1]
        # The hinted parse lets fastavro skip re-parsing the schema on every call.
        entry = SchemaEntry(name, version, _fingerprint(plain), parse_schema(raw), path)
        self.by_fingerprint.setdefault(entry.fingerprint, entry)
        self.versions.setdefault(name, []).append(entry)
        return entry

    def schema(self, name: str) -> Any:
        """The newest parsed schema of record ``name``."""
        return self.latest[name].parsed

    def encode(self, name: str, record: Mapping[str, Any], version: str = "latest") -> bytes:
        """Encode ``record`` with the newest (or a named older) version of schema ``name``."""
        entry = self.latest[name] if version == "latest" else self._version(name, version)
        buf = io.BytesIO()
        buf.write(MAGIC)
        buf.write(entry.fingerprint)
        schemaless_writer(buf, entry.parsed, record)
        return buf.getvalue()

    def _version(self, name: str, version: str) -> SchemaEntry:
        for entry in self.versions[name]:
            if entry.version == version:
                return entry
        raise KeyError(f"{name} has no version {version}")

    def decode(self, data: bytes, expected: str | None = None) -> tuple[str, dict[str, Any]]:
        """Decode one message to ``(record name, dict)`` in the newest shape of its record.

        Raises :class:`DecodeError` with code ``truncated``, ``bad_magic``, ``unknown_schema``,
        ``wrong_record_type`` or ``corrupt``.
        """
        if len(data) < HEADER_LEN:
            raise DecodeError("truncated", f"{len(data)} bytes is shorter than the 10-byte single-object header")
        if data[:2] != MAGIC:
            raise DecodeError("bad_magic", f"starts with {data[:2].hex()}, not Avro single-object magic c301")
        writer = self.by_fingerprint.get(data[2:HEADER_LEN])
        if writer is None:
            raise DecodeError("unknown_schema", f"unknown schema fingerprint {data[2:HEADER_LEN].hex()}")
        if expected is not None and writer.name != expected:
            raise DecodeError("wrong_record_type", f"got a {writer.name}, this topic carries {expected}")
        reader = self.latest[writer.name]
        buf = io.BytesIO(data)
        buf.seek(HEADER_LEN)
        try:
            if reader is writer or reader.fingerprint == writer.fingerprint:
                record = schemaless_reader(buf, writer.parsed, None)
            else:
                record = schemaless_reader(buf, writer.parsed, reader.parsed)
        except EOFError as exc:
            raise DecodeError("truncated", f"body ends early for {writer.name} ({len(data)} bytes)") from exc
        except Exception as exc:  # fastavro raises several types on garbage
            raise DecodeError("corrupt", f"cannot decode {writer.name} body: {type(exc).__name__}: {exc}") from exc
        if buf.tell() != len(data):
            raise DecodeError("corrupt", f"{len(data) - buf.tell()} trailing bytes after the {writer.name} body")
        if not isinstance(record, dict):
            raise DecodeError("corrupt", f"{writer.name} body is not a record")
        return writer.name, record


@lru_cache(maxsize=4)
def default_codec(schema_dir: str | None = None) -> AvroCodec:
    """A shared codec for ``schema_dir`` (default: :func:`default_schema_dir`)."""
    return AvroCodec(Path(schema_dir) if schema_dir else None)
