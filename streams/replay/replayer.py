"""Replay history files into Kafka (confluent-kafka), fast or paced by event time.

Per-key order: the sources are merged by timestamp but every stream keeps its own order (see
:func:`streams.replay.files.merge_history`); records go out in that order per topic, keyed records are
partitioned by key (murmur2, as the Java and aiokafka clients do) and the producer is idempotent, so
per-partition (hence per-key) order survives retries. The Kafka record timestamp is the event time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from streams.kafka.admin import ensure_topics, replay_layout
from streams.kafka.clients import REPLAY_PRODUCER_TUNING, new_producer
from streams.replay.files import Source, merge_history
from streams.replay.pacing import EventPacer, ReplaySummary
from streams.settings import Settings

__all__ = ["replay_records", "replay_sources"]


class _Delivery:
    def __init__(self) -> None:
        self.errors = 0
        self.first_error: str | None = None

    def __call__(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.errors += 1
            if self.first_error is None:
                self.first_error = f"{msg.topic()}: {err}"


def _produce_full(produce: Any, name: str, d: dict[str, Any], ts: int, keep_partitions: bool) -> None:
    kwargs: dict[str, Any] = {"timestamp": ts}
    if d["headers"]:
        kwargs["headers"] = [(h["key"], h["value"]) for h in d["headers"]]
    if keep_partitions and d["partition"] >= 0:
        kwargs["partition"] = d["partition"]
    produce(name, d["value"], d["key"], **kwargs)


def replay_records(records: Iterable[dict[str, Any]], settings: Settings, *, prefix: str | None = None,
                   speed: float | None = None, keep_partitions: bool = False, create_topics: bool = True,
                   progress: Callable[[int], None] | None = None,
                   producer_config: dict[str, Any] | None = None) -> ReplaySummary:
    """Produce raw history dicts (``topic, key, value, timestamp, partition, headers``) in iteration order.

    Parameters
    ----------
    records
        Dicts as :func:`streams.replay.files.iter_history_dicts` yields them (topic without prefix).
    settings
        Connection settings; ``replay_linger_ms`` tunes batching.
    prefix
        Topic prefix of the target namespace (default ``settings.topic_prefix``).
    speed
        ``None`` = as fast as possible; ``X`` = event time advances X times faster than wall time.
    keep_partitions
        Send each record to its recorded partition (imported records, ``-1``, are key-partitioned).
    create_topics
        Create each topic missing under the prefix when its first record comes (unlimited retention,
        see :func:`streams.kafka.admin.replay_layout`).
    progress
        Called with the number of records queued since the last call (every few thousand records).
    producer_config
        Extra librdkafka settings over :data:`~streams.kafka.clients.REPLAY_PRODUCER_TUNING`.

    Raises
    ------
    RuntimeError
        If any record could not be delivered (after librdkafka's retries).
    """
    prefix = settings.topic_prefix if prefix is None else prefix
    conf = {**REPLAY_PRODUCER_TUNING, "linger.ms": settings.replay_linger_ms,
            "delivery.report.only.error": True, **(producer_config or {})}
    delivery = _Delivery()
    conf["on_delivery"] = delivery
    producer = new_producer(settings, conf)
    produce, poll = producer.produce, producer.poll
    pacer = EventPacer(speed)
    summary = ReplaySummary()
    counts: dict[str, int] = {}
    full: dict[str, str] = {}
    lo = hi = None
    every = max(1, settings.replay_batch_records)
    since = 0
    start = time.perf_counter()
    for d in records:
        ts = d["timestamp"]
        topic = d["topic"]
        name = full.get(topic)
        if name is None:
            name = full[topic] = prefix + topic
            if create_topics:
                ensure_topics(settings, replay_layout(settings, prefix), [topic])
        if speed:
            wait = pacer.delay(ts, time.perf_counter())
            if wait > 0:
                poll(0)
                time.sleep(wait)
        try:
            if d["headers"] or keep_partitions:
                _produce_full(produce, name, d, ts, keep_partitions)
            else:
                produce(name, d["value"], d["key"], timestamp=ts)
        except BufferError:  # local queue full: let deliveries drain, then retry this record
            while True:
                poll(0.05)
                try:
                    _produce_full(produce, name, d, ts, keep_partitions)
                    break
                except BufferError:
                    continue
        counts[topic] = counts.get(topic, 0) + 1
        if lo is None or hi is None:
            lo = hi = ts
            summary.first_event_ms = ts
        elif ts < lo:
            lo = ts
        elif ts > hi:
            hi = ts
        since += 1
        if since >= every:
            poll(0)
            if progress is not None:
                progress(since)
            since = 0
    if progress is not None and since:
        progress(since)
    remaining = producer.flush(120)
    summary.seconds = time.perf_counter() - start
    summary.per_topic = counts
    summary.records = sum(counts.values())
    summary.last_event_ms = ts if summary.records else None
    summary.min_event_ms, summary.max_event_ms = lo, hi
    summary.errors = delivery.errors + remaining
    if summary.errors:
        raise RuntimeError(f"{summary.errors} records not delivered; first error: {delivery.first_error}")
    return summary


def replay_sources(sources: Sequence[Source], settings: Settings, **kwargs: Any) -> ReplaySummary:
    """Merge history streams by timestamp and replay them (keyword options as :func:`replay_records`)."""
    return replay_records(merge_history(sources, raw=True), settings, **kwargs)
