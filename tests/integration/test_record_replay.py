"""Record → replay round trip on the real broker: lossless keys, values, timestamps, headers, per-key order."""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

from streams.contracts.sessions import read_acn_sessions
from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, WEATHER
from streams.kafka.clients import client_config, consume_all
from streams.replay.files import HistoryRecord, merge_history, write_history
from streams.replay.importers import acn_records
from streams.replay.recorder import record_topics
from streams.replay.replayer import replay_sources
from streams.replay.state import RecordingState, chunk_streams
from streams.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
ACN = REPO / "streams" / "simulate" / "data" / "acn" / "caltech_2019-03_sessions.csv"  # copy of ../shared/data/acn
TOPICS = [CHARGER_TELEMETRY, CHARGER_REGISTRY, WEATHER]

Seq = dict[tuple[str, bytes | None], list[tuple[bytes | None, int, tuple[tuple[str, bytes | None], ...]]]]


_PREFIXES: list[str] = []


def _prefix() -> str:
    """A unique topic namespace for this test (deleted afterwards)."""
    p = f"it-replay-{uuid.uuid4().hex[:10]}."
    _PREFIXES.append(p)
    return p


@pytest.fixture
def settings(kafka_bootstrap: str) -> Iterator[Settings]:
    s = Settings(bootstrap_servers=kafka_bootstrap, partitions=3)
    yield s
    admin = AdminClient(client_config(s))
    mine = [t for t in admin.list_topics(timeout=30).topics if t.startswith(tuple(_PREFIXES))]
    if mine:
        for f in admin.delete_topics(mine, request_timeout=30).values():
            f.result()
    _PREFIXES.clear()


@pytest.fixture(scope="module")
def history() -> list[HistoryRecord]:
    """ACN history (first days) plus weather records with headers and a null-key record."""
    if not ACN.exists():
        pytest.skip("shared ACN data not found")
    sessions = [s for s in read_acn_sessions(ACN) if s.arrival < 1_551_657_600_000]  # before 2019-03-04
    recs = acn_records(sessions, feeder_id="f-a")
    recs += acn_records([s for s in sessions if s.station_id < "CA-310"], feeder_id="f-b")
    extra = [HistoryRecord(WEATHER, b"ws1", f"w{i}".encode(), 1_551_400_000_000 + i * 60_000,
                           headers=(("source", b"test"), ("n", str(i).encode()))) for i in range(50)]
    extra.append(HistoryRecord(WEATHER, None, b"nokey", 1_551_400_000_000))
    # a late record: per-key order must keep it after its predecessor
    extra.append(HistoryRecord(WEATHER, b"ws1", b"late", 1_551_400_000_000 - 3_600_000))
    return sorted(recs + extra[:-1], key=lambda r: r.timestamp) + extra[-1:]


def _seq(records: Iterable[HistoryRecord]) -> Seq:
    out: Seq = defaultdict(list)
    for r in records:
        out[(r.topic, r.key)].append((r.value, r.timestamp, tuple(r.headers)))
    return out


def _consumed(settings: Settings, prefix: str, expected: int) -> list[HistoryRecord]:
    msgs = consume_all(settings, [prefix + t for t in TOPICS], timeout=90, expected=expected, idle=5)
    return [HistoryRecord(m.topic()[len(prefix):], m.key(), m.value(), m.timestamp()[1], m.partition(), m.offset(),
                          tuple(m.headers() or ())) for m in msgs]


def test_record_then_replay_is_lossless(settings: Settings, history: list[HistoryRecord], tmp_path: Path) -> None:
    src, dst = _prefix(), _prefix()
    write_history(tmp_path / "h.avro", history)
    sent = replay_sources([tmp_path / "h.avro"], settings, prefix=src)
    assert sent.records == len(history) and sent.errors == 0
    assert sent.min_event_ms == min(r.timestamp for r in history)

    rec = record_topics(TOPICS, tmp_path / "rec", settings, prefix=src, from_beginning=True, until_end=True)
    assert rec.reached_end and rec.records == len(history)
    recorded = list(merge_history(chunk_streams([tmp_path / "rec"])))
    assert _seq(recorded) == _seq(history)
    # partitions and offsets are recorded exactly: each partition's offsets 0..n-1
    per_tp: dict[tuple[str, int], list[int]] = defaultdict(list)
    for r in recorded:
        per_tp[(r.topic, r.partition)].append(r.offset)
    assert all(offs == list(range(len(offs))) for offs in per_tp.values())
    # the broker stored our event times
    assert _seq(_consumed(settings, src, len(history))) == _seq(history)

    again = replay_sources(chunk_streams([tmp_path / "rec"]), settings, prefix=dst)
    assert again.records == len(history)
    assert _seq(_consumed(settings, dst, len(history))) == _seq(history)


def test_record_is_resumable_without_duplicates(settings: Settings, history: list[HistoryRecord],
                                               tmp_path: Path) -> None:
    src = _prefix()
    half = len(history) // 2
    write_history(tmp_path / "a.avro", history[:half])
    write_history(tmp_path / "b.avro", history[half:])
    out = tmp_path / "rec"
    replay_sources([tmp_path / "a.avro"], settings, prefix=src)
    first = record_topics(TOPICS, out, settings, prefix=src, from_beginning=True, until_end=True)
    assert first.records == half
    replay_sources([tmp_path / "b.avro"], settings, prefix=src)
    second = record_topics(TOPICS, out, settings, prefix=src, until_end=True)
    assert second.records == len(history) - half
    third = record_topics(TOPICS, out, settings, prefix=src, until_end=True)
    assert third.records == 0 and third.reached_end
    recorded = list(merge_history(chunk_streams([out])))
    assert len(recorded) == len(history)
    assert len({(r.topic, r.partition, r.offset) for r in recorded}) == len(history)
    assert _seq(recorded) == _seq(history)
    state = RecordingState(out)
    assert sum(state.next_offset(t, p) or 0 for t in TOPICS for p in range(3)) == len(history)


def test_record_without_from_beginning_takes_only_new_records(settings: Settings, tmp_path: Path) -> None:
    src = _prefix()
    old = [HistoryRecord(WEATHER, b"s", b"old", 1_551_400_000_000)]
    new = [HistoryRecord(WEATHER, b"s", f"new{i}".encode(), 1_551_400_060_000 + i) for i in range(3)]
    write_history(tmp_path / "old.avro", old)
    write_history(tmp_path / "new.avro", new)
    replay_sources([tmp_path / "old.avro"], settings, prefix=src)
    start = record_topics([WEATHER], tmp_path / "rec", settings, prefix=src, until_end=True)
    assert start.records == 0
    replay_sources([tmp_path / "new.avro"], settings, prefix=src)
    record_topics([WEATHER], tmp_path / "rec", settings, prefix=src, until_end=True)
    assert [r.value for r in merge_history(chunk_streams([tmp_path / "rec"]))] == [r.value for r in new]


def test_paced_replay_follows_event_time(settings: Settings, tmp_path: Path) -> None:
    recs = [HistoryRecord(WEATHER, b"s", str(i).encode(), 1_551_400_000_000 + i * 1_000) for i in range(11)]
    write_history(tmp_path / "p.avro", recs)
    t0 = time.monotonic()
    s = replay_sources([tmp_path / "p.avro"], settings, prefix=_prefix(), speed=10.0)
    # 10 s of event time at 10x cannot go out in less than 1 s of wall time
    assert s.records == 11 and time.monotonic() - t0 >= 0.95


def test_cli_import_and_replay(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.cli import app

    csv_path = tmp_path / "s.csv"
    csv_path.write_text("session_id,station_id,arrival_utc,departure_utc,requested_energy_kwh,max_power_kw\n"
                        "a,C1,2019-03-01T08:00:00Z,2019-03-01T09:00:00Z,3.5,7.2\n")
    runner = CliRunner()
    res = runner.invoke(app, ["import", "acn", str(csv_path), "--out", str(tmp_path / "s.avro"), "--step", "15m"])
    assert res.exit_code == 0, res.output
    # 1 registration + plug-in + 3 heartbeats + plug-out
    assert json.loads(res.stdout)["records"] == 6
    monkeypatch.setenv("EVGRID_BOOTSTRAP_SERVERS", settings.bootstrap_servers)
    prefix = _prefix()
    res = runner.invoke(app, ["replay", str(tmp_path / "s.avro"), "--prefix", prefix])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    assert summary["records"] == 6 and summary["prefix"] == prefix
    assert summary["event_time"] == ["2019-03-01T08:00:00Z", "2019-03-01T09:00:00Z"]
