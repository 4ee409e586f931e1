"""Resumable recording state: two-phase chunk commit, crash recovery, stream grouping."""

from __future__ import annotations

import json
import os
from pathlib import Path

from streams.replay.files import HistoryRecord, merge_history, read_history, write_history
from streams.replay.state import RecordingState, chunk_streams


def _recs(topic: str, partition: int, offsets: range) -> list[HistoryRecord]:
    return [HistoryRecord(topic, b"k", f"{topic}:{partition}:{o}".encode(), 1000 + o, partition, o) for o in offsets]


def test_commit_and_resume(tmp_path: Path) -> None:
    st = RecordingState(tmp_path)
    assert st.next_offset("a", 0) is None
    st.commit({("a", 0): _recs("a", 0, range(0, 3)), ("a", 1): []}, {("a", 0): 3, ("a", 1): 7})
    st.commit({("a", 0): _recs("a", 0, range(3, 5))}, {("a", 0): 5})
    again = RecordingState(tmp_path)
    assert again.next_offset("a", 0) == 5 and again.next_offset("a", 1) == 7
    assert again.chunks == ["a/0/part-000001.avro", "a/0/part-000002.avro"]
    streams = chunk_streams([tmp_path])
    assert [[p.name for p in s] for s in streams] == [["part-000001.avro", "part-000002.avro"]]
    assert [r.offset for r in merge_history(streams)] == [0, 1, 2, 3, 4]
    assert not list(tmp_path.rglob("*.tmp"))


def test_uncommitted_chunk_is_discarded(tmp_path: Path) -> None:
    st = RecordingState(tmp_path)
    st.commit({("a", 0): _recs("a", 0, range(2))}, {("a", 0): 2})
    # a crash while writing the next chunk: .tmp exists but state.json does not name it
    orphan = tmp_path / "a" / "0" / "part-000002.avro.tmp"
    write_history(orphan, _recs("a", 0, range(2, 4)))
    again = RecordingState(tmp_path)
    assert not orphan.exists()
    assert again.next_offset("a", 0) == 2  # those records are read again, once


def test_chunk_named_in_state_is_completed(tmp_path: Path) -> None:
    st = RecordingState(tmp_path)
    st.commit({("a", 0): _recs("a", 0, range(2))}, {("a", 0): 2})
    # a crash after state.json was replaced but before the rename
    final = tmp_path / "a" / "0" / "part-000001.avro"
    os.replace(final, final.with_name(final.name + ".tmp"))
    RecordingState(tmp_path)
    assert final.exists()
    assert [r.offset for r in read_history(final)] == [0, 1]


def test_state_file_is_plain_json(tmp_path: Path) -> None:
    st = RecordingState(tmp_path)
    st.commit({("evgrid.weather", 0): _recs("evgrid.weather", 0, range(1))}, {("evgrid.weather", 0): 1})
    data = json.loads((tmp_path / "state.json").read_text())
    assert data["next_offsets"] == {"evgrid.weather": {"0": 1}}


def test_chunk_streams_for_files_and_plain_dirs(tmp_path: Path) -> None:
    d = tmp_path / "imports"
    d.mkdir()
    write_history(d / "b.avro", [])
    write_history(d / "a.avro", [])
    single = tmp_path / "x.avro"
    write_history(single, [])
    assert chunk_streams([d, single]) == [[d / "a.avro"], [d / "b.avro"], [single]]
