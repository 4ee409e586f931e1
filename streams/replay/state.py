"""Resumable recording into a directory: chunk files per topic-partition plus a JSON state (pure file I/O).

Layout of a recording directory::

    DIR/state.json                         next offset per topic-partition, committed chunks
    DIR/<topic>/<partition>/part-000001.avro

Commit protocol (so a re-run continues and never duplicates): chunks are written as ``*.avro.tmp`` and
closed; then ``state.json`` (new offsets + chunk names) is replaced atomically; then the chunks are renamed.
On open, a chunk named in the state whose final file is missing is completed from its ``.tmp``; any other
``.tmp`` is an uncommitted leftover and is deleted (its records are consumed again).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from streams.replay.files import HistoryRecord, HistoryWriter

__all__ = ["RecordingState", "chunk_streams"]

STATE_FILE = "state.json"


class RecordingState:
    """The state of one recording directory.

    Attributes
    ----------
    next_offsets
        ``{topic: {partition: next offset to read}}`` (topics without prefix).
    chunks
        Committed chunk paths relative to the directory, in commit order.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.next_offsets: dict[str, dict[int, int]] = {}
        self.chunks: list[str] = []
        self.seq = 0
        path = self.dir / STATE_FILE
        if path.exists():
            raw = json.loads(path.read_text())
            self.next_offsets = {t: {int(p): int(o) for p, o in parts.items()}
                                 for t, parts in raw.get("next_offsets", {}).items()}
            self.chunks = list(raw.get("chunks", []))
            self.seq = int(raw.get("seq", 0))
        self._recover()

    def _recover(self) -> None:
        listed = set(self.chunks)
        for rel in self.chunks:
            final = self.dir / rel
            tmp = final.with_name(final.name + ".tmp")
            if not final.exists() and tmp.exists():
                os.replace(tmp, final)
        for tmp in self.dir.rglob("*.avro.tmp"):
            if str(tmp.relative_to(self.dir))[: -len(".tmp")] not in listed:
                tmp.unlink()

    def next_offset(self, topic: str, partition: int) -> int | None:
        """Where to resume ``topic``/``partition``; None if never started."""
        return self.next_offsets.get(topic, {}).get(partition)

    def commit(self, batches: Mapping[tuple[str, int], Iterable[HistoryRecord]],
               positions: Mapping[tuple[str, int], int], metadata: Mapping[str, str] | None = None) -> int:
        """Write one chunk per non-empty ``(topic, partition)`` batch and advance the offsets.

        Parameters
        ----------
        batches
            Records per topic-partition, in consumption order.
        positions
            New next offsets (also for partitions without records, e.g. the start position).

        Returns
        -------
        int
            Records written.
        """
        written, new_chunks = 0, []
        for (topic, partition), records in batches.items():
            recs = list(records)
            if not recs:
                continue
            self.seq += 1
            rel = f"{topic}/{partition}/part-{self.seq:06d}.avro"
            final = self.dir / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            with HistoryWriter(final.with_name(final.name + ".tmp"), metadata={"evgrid.source": "record",
                                                                                **(metadata or {})}) as w:
                written += w.write_many(recs)
            new_chunks.append(rel)
        for (topic, partition), off in positions.items():
            self.next_offsets.setdefault(topic, {})[partition] = off
        self.chunks.extend(new_chunks)
        self._write_state()
        for rel in new_chunks:
            final = self.dir / rel
            os.replace(final.with_name(final.name + ".tmp"), final)
        return written

    def _write_state(self) -> None:
        data: dict[str, Any] = {
            "version": 1, "seq": self.seq, "chunks": self.chunks,
            "next_offsets": {t: {str(p): o for p, o in sorted(parts.items())}
                             for t, parts in sorted(self.next_offsets.items())},
        }
        tmp = self.dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.dir / STATE_FILE)


def chunk_streams(paths: Iterable[str | os.PathLike[str]]) -> list[list[Path]]:
    """Group replay inputs into streams to chain (each stream is read in order, streams are merged).

    A recording directory (one holding ``state.json``) gives one stream per topic-partition: its
    committed chunks in commit order. Another directory gives one stream per ``*.avro`` file under it;
    a file is one stream.
    """
    streams: list[list[Path]] = []
    for p in map(Path, paths):
        state_path = p / STATE_FILE
        if p.is_dir() and state_path.exists():
            chunks = json.loads(state_path.read_text()).get("chunks", [])
            by_tp: dict[str, list[Path]] = {}
            for rel in chunks:
                by_tp.setdefault(rel.rsplit("/", 1)[0], []).append(p / rel)
            streams.extend(by_tp[k] for k in sorted(by_tp))
        elif p.is_dir():
            streams.extend([q] for q in sorted(p.rglob("*.avro")) if q.is_file())
        else:
            streams.append([p])
    return streams
