"""Record Kafka topics into a resumable recording directory (confluent-kafka, no consumer group offsets).

Partitions are assigned explicitly; the recording directory's ``state.json`` (see
:mod:`streams.replay.state`) is the only offset store, so re-running continues where the last committed
chunk ended and never duplicates.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.kafka.clients import KafkaError, KafkaException, TopicPartition, new_consumer
from streams.replay.files import HistoryRecord
from streams.replay.state import RecordingState
from streams.settings import Settings

__all__ = ["RecordSummary", "record_topics"]


@dataclass
class RecordSummary:
    """What one ``record`` run captured."""

    records: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    reached_end: bool = False
    """True when every partition reached the end offset seen at start (``until_end``)."""
    start_offsets: dict[str, dict[int, int]] = field(default_factory=dict)
    end_offsets: dict[str, dict[int, int]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    """Topics skipped because they do not exist (``missing_ok``)."""


def record_topics(topics: Sequence[str], out_dir: str | Path, settings: Settings, *, prefix: str | None = None,
                  from_beginning: bool = False, until_end: bool = False, max_seconds: float | None = None,
                  idle_seconds: float | None = None, progress: Callable[[int, int | None], None] | None = None,
                  missing_ok: bool = False) -> RecordSummary:
    """Capture ``topics`` (names without prefix) to ``out_dir``.

    Parameters
    ----------
    from_beginning
        On a partition's first recording, start at its earliest offset (default: at its end, i.e. only
        new records). Resumed partitions always continue from the recorded state.
    until_end
        Stop once every partition has reached the end offset it had when this run started.
    max_seconds, idle_seconds
        Stop after this long, or after this long without a record (None = no limit). Ctrl-C also stops
        cleanly; whatever was consumed is committed.
    progress
        Called as ``progress(records_just_consumed, total_expected_or_None)``.
    missing_ok
        Skip topics that do not exist (otherwise ``KafkaException``); skipped ones are in ``summary.missing``.
    """
    prefix = settings.topic_prefix if prefix is None else prefix
    state = RecordingState(out_dir)
    consumer = new_consumer(settings, {
        "group.id": f"evgrid-record-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
        "enable.auto.offset.store": False, "enable.partition.eof": True, "fetch.max.bytes": 52_428_800,
        "max.partition.fetch.bytes": 10_485_760})
    summary = RecordSummary()
    try:
        meta = consumer.list_topics(timeout=30)
        assign: list[TopicPartition] = []
        targets: dict[tuple[str, int], int] = {}
        positions: dict[tuple[str, int], int] = {}
        for topic in topics:
            full = prefix + topic
            tmeta = meta.topics.get(full)
            if tmeta is None or tmeta.error is not None:
                if missing_ok:
                    summary.missing.append(topic)
                    continue
                raise KafkaException(f"topic {full} not found")
            for p in sorted(tmeta.partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(full, p), timeout=30)
                start = state.next_offset(topic, p)
                if start is None:
                    start = low if from_beginning else high
                start = max(start, low)  # retention may have deleted what we had not read yet
                positions[(topic, p)] = start
                targets[(topic, p)] = high
                summary.start_offsets.setdefault(topic, {})[p] = start
                assign.append(TopicPartition(full, p, start))
        state.commit({}, positions)
        pending = {tp for tp in positions if not (until_end and positions[tp] >= targets[tp])}
        expected = sum(max(0, targets[tp] - positions[tp]) for tp in positions) if until_end else None
        if progress is not None:
            progress(0, expected)
        if until_end and not pending:
            summary.reached_end = True
            return summary
        consumer.assign(assign)
        batches: dict[tuple[str, int], list[HistoryRecord]] = {}
        buffered = 0
        started = last_commit = last_record = time.monotonic()
        plen = len(prefix)
        try:
            while True:
                now = time.monotonic()
                if max_seconds is not None and now - started >= max_seconds:
                    break
                if idle_seconds is not None and now - last_record >= idle_seconds:
                    break
                msgs: list[Any] = consumer.consume(num_messages=10_000, timeout=0.5)
                got = 0
                for m in msgs:
                    err = m.error()
                    topic = m.topic()[plen:]
                    tp = (topic, m.partition())
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            if until_end and m.offset() >= targets[tp]:
                                pending.discard(tp)
                            continue
                        raise KafkaException(err)
                    off = m.offset()
                    if until_end and off >= targets[tp]:
                        pending.discard(tp)
                        continue
                    _, ts = m.timestamp()
                    hdrs = m.headers()
                    rec = HistoryRecord(topic, m.key(), m.value(), ts, tp[1], off,
                                        tuple((k, v) for k, v in hdrs) if hdrs else ())
                    batches.setdefault(tp, []).append(rec)
                    positions[tp] = off + 1
                    got += 1
                    if until_end and off + 1 >= targets[tp]:
                        pending.discard(tp)
                if got:
                    buffered += got
                    last_record = time.monotonic()
                    summary.records += got
                    if progress is not None:
                        progress(got, expected)
                if buffered and (buffered >= settings.record_commit_records
                                 or time.monotonic() - last_commit >= settings.record_commit_seconds):
                    _commit(state, batches, positions, summary)
                    buffered, last_commit = 0, time.monotonic()
                if until_end and not pending:
                    summary.reached_end = True
                    break
        except KeyboardInterrupt:
            pass
        _commit(state, batches, positions, summary)
        summary.seconds = time.monotonic() - started
    finally:
        consumer.close()
    summary.end_offsets = {t: dict(parts) for t, parts in state.next_offsets.items()}
    return summary


def _commit(state: RecordingState, batches: dict[tuple[str, int], list[HistoryRecord]],
            positions: dict[tuple[str, int], int], summary: RecordSummary) -> None:
    for (topic, _), recs in batches.items():
        summary.per_topic[topic] = summary.per_topic.get(topic, 0) + len(recs)
    state.commit(batches, positions)
    batches.clear()
