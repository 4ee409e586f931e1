"""Recorded-history files: Avro object container files of Kafka records (schema embedded, compressed).

Each record holds the topic name *without* prefix, partition and offset (``-1`` for imported records),
key and value bytes (the value is the original single-object-encoded Avro message, untouched), the event
timestamp (the Kafka record timestamp, UTC epoch ms) and the headers. Files are read in file order;
:func:`merge_history` merges several files by timestamp.

>>> import io
>>> buf = io.BytesIO()
>>> write_history(buf, [HistoryRecord("evgrid.weather", b"s1", b"v", 1_000)])
1
>>> _ = buf.seek(0)
>>> [r.timestamp for r in read_history(buf)]
[1000]
"""

from __future__ import annotations

import functools
import heapq
import io
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, NamedTuple

from fastavro import parse_schema, reader
from fastavro.write import Writer

__all__ = [
    "FORMAT_TAG",
    "HISTORY_SCHEMA",
    "HistoryRecord",
    "HistoryWriter",
    "Source",
    "default_file_codec",
    "iter_history_dicts",
    "merge_history",
    "read_history",
    "read_metadata",
    "write_history",
]

FORMAT_TAG = "evgrid.history/1"
"""Value of the ``evgrid.format`` metadata key in every history file."""

HISTORY_SCHEMA: Any = parse_schema(
    {
        "type": "record",
        "name": "HistoryRecord",
        "namespace": "evgrid.replay",
        "doc": "One Kafka record as recorded or imported for replay.",
        "fields": [
            {"name": "topic", "type": "string", "doc": "Topic name without the EVGRID_TOPIC_PREFIX."},
            {"name": "partition", "type": "int", "doc": "Source partition; -1 when imported."},
            {"name": "offset", "type": "long", "doc": "Source offset; -1 when imported."},
            {"name": "timestamp", "type": "long", "doc": "Kafka record timestamp = event time, UTC epoch ms."},
            {"name": "key", "type": ["null", "bytes"], "default": None},
            {"name": "value", "type": ["null", "bytes"], "default": None,
             "doc": "The original message bytes (Avro single-object encoding); null = tombstone."},
            {"name": "headers", "type": {"type": "array", "items": {
                "type": "record", "name": "Header",
                "fields": [{"name": "key", "type": "string"}, {"name": "value", "type": ["null", "bytes"]}],
            }}, "default": []},
        ],
    }
)


class HistoryRecord(NamedTuple):
    """One recorded or imported Kafka record."""

    topic: str
    key: bytes | None
    value: bytes | None
    timestamp: int
    partition: int = -1
    offset: int = -1
    headers: tuple[tuple[str, bytes | None], ...] = ()

    def to_avro(self) -> dict[str, Any]:
        """The dict written to the container file."""
        return {
            "topic": self.topic, "partition": self.partition, "offset": self.offset,
            "timestamp": self.timestamp, "key": self.key, "value": self.value,
            "headers": [{"key": k, "value": v} for k, v in self.headers],
        }

    @classmethod
    def from_avro(cls, d: Mapping[str, Any]) -> HistoryRecord:
        """Inverse of :meth:`to_avro`."""
        hdrs = d["headers"]
        return cls(d["topic"], d["key"], d["value"], d["timestamp"], d["partition"], d["offset"],
                   tuple((h["key"], h["value"]) for h in hdrs) if hdrs else ())


@functools.cache
def default_file_codec() -> str:
    """``zstandard`` if fastavro can write it here (it needs its own choice of zstd library), otherwise ``deflate``."""
    try:
        probe = Writer(io.BytesIO(), parse_schema({"type": "record", "name": "probe", "fields": []}), codec="zstandard")
        probe.write({})
        probe.flush()
    except ValueError:
        return "deflate"
    return "zstandard"


class HistoryWriter:
    """Incremental writer of one history file (use as a context manager).

    Parameters
    ----------
    fo
        A path (created/truncated) or a binary file object opened for writing.
    codec
        Avro block codec; default :func:`default_file_codec`.
    metadata
        Extra string metadata stored in the file header (``evgrid.format`` is always set).
    """

    def __init__(self, fo: str | os.PathLike[str] | IO[bytes], codec: str | None = None,
                 metadata: Mapping[str, str] | None = None) -> None:
        self._own = not hasattr(fo, "write")
        self._fo: IO[bytes] = open(fo, "wb") if self._own else fo  # type: ignore[arg-type,assignment]  # noqa: SIM115
        codec = codec or default_file_codec()
        meta = {"evgrid.format": FORMAT_TAG, **(metadata or {})}
        level = 1 if codec == "deflate" else None
        self._writer = Writer(self._fo, HISTORY_SCHEMA, codec=codec, sync_interval=256_000, metadata=meta,
                              compression_level=level)
        self.count = 0

    def write(self, record: HistoryRecord) -> None:
        """Append one record."""
        self._writer.write(record.to_avro())
        self.count += 1

    def write_many(self, records: Iterable[HistoryRecord]) -> int:
        """Append records; returns how many."""
        n = 0
        for r in records:
            self._writer.write(r.to_avro())
            n += 1
        self.count += n
        return n

    def close(self) -> None:
        """Flush the last block (and close the file if this writer opened it)."""
        self._writer.flush()
        if self._own:
            self._fo.close()
        else:
            self._fo.flush()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_history(fo: str | os.PathLike[str] | IO[bytes], records: Iterable[HistoryRecord],
                  codec: str | None = None, metadata: Mapping[str, str] | None = None) -> int:
    """Write ``records`` to a new history file; returns the number written."""
    with HistoryWriter(fo, codec, metadata) as w:
        return w.write_many(records)


def _open(fo: str | os.PathLike[str] | IO[bytes]) -> tuple[IO[bytes], bool]:
    if hasattr(fo, "read"):
        return fo, False  # type: ignore[return-value]
    return open(fo, "rb"), True


def iter_history_dicts(fo: str | os.PathLike[str] | IO[bytes]) -> Iterator[dict[str, Any]]:
    """The raw Avro dicts of one file in file order (the fast path used by the replayer)."""
    f, own = _open(fo)
    try:
        avro = reader(f)
        if avro.metadata.get("evgrid.format") != FORMAT_TAG:
            raise ValueError(f"{getattr(f, 'name', fo)} is not an evgrid history file")
        yield from avro  # type: ignore[misc]
    finally:
        if own:
            f.close()


def read_history(fo: str | os.PathLike[str] | IO[bytes]) -> Iterator[HistoryRecord]:
    """The records of one history file, in file order."""
    for d in iter_history_dicts(fo):
        yield HistoryRecord.from_avro(d)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The header metadata of a history file (``evgrid.format``, codec, source, ...)."""
    with open(path, "rb") as f:
        return {k: v for k, v in reader(f).metadata.items() if not k.startswith("avro.schema")}


Source = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def _chain(source: Source, raw: bool) -> Iterator[Any]:
    files = [source] if isinstance(source, str | os.PathLike) else list(source)
    for f in files:
        yield from (iter_history_dicts(f) if raw else read_history(f))


def merge_history(sources: Sequence[Source], raw: bool = False) -> Iterator[Any]:
    """K-way merge of several streams by timestamp.

    Each source is one file or a sequence of files read one after the other (a *stream*, e.g. the
    chunks of one recorded topic-partition, see :func:`streams.replay.state.chunk_streams`). Ties are broken
    by the order of ``sources``. Within one stream, stream order is always kept (even where timestamps
    step backwards), so every key whose records are all in one stream keeps its order: ``evgrid record``
    keeps each topic-partition in one stream and importers write one stream per file.

    Parameters
    ----------
    sources
        Files or chains of files.
    raw
        Yield the raw Avro dicts (fast path) instead of :class:`HistoryRecord`.
    """
    iters: list[Iterator[Any]] = [_chain(s, raw) for s in sources]
    if len(iters) == 1:
        yield from iters[0]
        return
    if raw:
        yield from heapq.merge(*iters, key=lambda d: d["timestamp"])
    else:
        yield from heapq.merge(*iters, key=lambda r: r.timestamp)
