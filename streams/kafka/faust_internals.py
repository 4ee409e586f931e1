"""faust's private internals, quarantined: whole-batch delivery of chosen topics inside a faust app.

This is the one module that reaches into faust's (and aiokafka's) private consumer and table internals. Each
private name it touches is declared in :data:`PRIVATE_METHODS` / :data:`PRIVATE_ATTRIBUTES`;
``tests/unit/kafka/test_kafka_faust_internals.py`` checks that faust still has them with the same parameters
and that nothing here touches an undeclared one, so a faust upgrade that renames one fails there, loudly.

faust delivers every record as its own event: per record the fetch loop starts two tasks
(``wait_first(callback, suspend_flow)``), the conductor takes an async lock, and the stream creates,
buffers and acks an :class:`~faust.Event`. On a loaded 2-core machine that machinery alone caps an agent
at about 10,000 records/s, below what the pipeline code behind it sustains.

:class:`BatchingApp` keeps faust's consumer group, fetcher, flow control, offset tracking, commits and table
changelogs, and changes one thing: records of the topics given to :meth:`BatchingApp.batch_topic` skip the
per-record path and reach a bounded in-memory channel as one :class:`FetchedBatch` per fetch (partition order
kept). An agent reads that channel; it owns acknowledgement: it calls :meth:`BatchingApp.ack` once the effects
of the records are checkpointed, and only acknowledged offsets are committed. Other topics keep faust's path.

A batch belongs to the consumer generation it was fetched in. After a rebalance faust seeks every partition
back to its committed offset, so what a batch of an older generation still holds comes again: the reader
drops it (:meth:`BatchingApp.usable` says when), and waits while a rebalance is under way. Within one
generation the records applied are therefore, for each feeder, a prefix of its records in each partition
(the reader may apply one feeder's records ahead of another's, never out of order), which is what
offset-based de-duplication of the replayed records needs. faust commits up to the first offset not
acknowledged, so the reader acknowledges a record only once every earlier one of its partition is applied.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP, ChannelT, Message
from faust.types.tuples import ConsumerMessage

__all__ = [
    "FETCH_MAX_WAIT_MS",
    "PRIVATE_ATTRIBUTES",
    "PRIVATE_METHODS",
    "BatchConsumer",
    "BatchingApp",
    "FetchedBatch",
    "changelog_sent",
]

PRIVATE_METHODS: dict[str, dict[str, tuple[str, ...]]] = {
    "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread": {"_create_worker_consumer": ("self", "transport"),
                                                               "_ensure_consumer": ("self",)},
    "faust.transport.drivers.aiokafka.Consumer": {
        "_new_consumer_thread": ("self",),
        "_wait_next_records": ("self", "timeout"),
        "_drain_messages": ("self", "fetcher"),
        "_get_active_partitions": ("self",),
        "_getmany": ("self", "active_partitions", "timeout"),
        "_to_message": ("self", "tp", "record"),
        "_add_gap": ("self", "tp", "offset_from", "offset_to"),
    },
    "faust.App": {
        "_new_consumer": ("self",),
        "_on_partitions_revoked": ("self", "revoked"),
        "_on_partitions_assigned": ("self", "assigned", "generation_id"),
    },
    "faust.tables.base.Collection": {"_on_changelog_sent": ("self", "fut")},
}
"""The private methods of faust this module overrides or calls: ``{class: {method: parameter names}}``."""

PRIVATE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "aiokafka consumer": ("_fetch_max_wait_ms", "_subscription"),
    "faust consumer": ("_stopped", "_commit_every", "_n_acked", "_read_offset", "_buffered_partitions", "_thread"),
    "faust fetcher": ("_stopped",),
    "channel queue (asyncio.Queue)": ("_queue",),
}
"""Private attributes of faust's (and aiokafka's) objects this module reads or sets."""

FETCH_MAX_WAIT_MS = 100
"""How long the broker may hold a fetch request that finds no new records (faust hard-codes 1,500 ms).

aiokafka leaves partitions whose fetched records are not yet handed out out of the next fetch request, and
sends no other request to that broker while one is in flight. When the partitions left in the request are
quiet (meters between interval ends), the broker holds it the full wait, and the busy telemetry partitions
are not fetched meanwhile: a plug-in waited up to 1.5 s. Empty fetches every 100 ms cost the broker little.
"""

@dataclass(frozen=True)
class FetchedBatch:
    """The records of one fetch for the batch topics, in partition order, and the generation they belong to."""

    generation: int
    messages: list[Message]


class ShortWaitConsumerThread(AIOKafkaConsumerThread):
    """faust's aiokafka consumer thread, with fetch requests held at most :data:`FETCH_MAX_WAIT_MS` by the broker."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts its fetcher
        return consumer


class BatchConsumer(AIOKafkaConsumer):
    """faust's aiokafka consumer; records of ``batch_topics`` go to ``batch_channel`` one fetched list at a time."""

    batch_topics: frozenset[str] = frozenset()
    batch_channel: ChannelT | None = None
    bulk_topics: frozenset[str] = frozenset()
    bulk_wanted: Callable[[], bool] = staticmethod(lambda: True)
    control_wanted: Callable[[], bool] = staticmethod(lambda: True)
    _control_turn_taken = False

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return ShortWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _wait_next_records(self, timeout: float) -> tuple[Any, set[TP] | None]:  # pragma: no cover - Fetcher
        """Records already fetched for the control (non-bulk) partitions first; bulk records only when wanted.

        aiokafka hands out buffered records partition by partition, so without this the records fetched for a
        busy meter partition (a whole interval's readings) would go out before a plug-in fetched after them.
        A control-only fetch is never made twice in a row while bulk records are wanted, so a replay whose
        control topics never run dry still reads its meters.
        """
        if not self.bulk_topics:
            return await super()._wait_next_records(timeout)
        if not self.flow_active:
            await self.wait(self.can_resume_flow)  # type: ignore[arg-type]
        active = self._get_active_partitions()
        control = {tp for tp in active if tp.topic not in self.bulk_topics}
        wanted = self.bulk_wanted()
        if not self.control_wanted():  # control records read far ahead wait in memory for the meters: read only those
            bulk = active - control
            if not wanted or not bulk:
                await asyncio.sleep(0.05)
                return {}, active
            return await self._getmany(bulk, timeout), active
        if wanted and self._control_turn_taken:
            self._control_turn_taken = False
            return await super()._wait_next_records(timeout)
        records = await self._getmany(control, 0.0 if wanted else 0.05) if control else {}
        self._control_turn_taken = bool(records)
        if records or not wanted:
            if not control:
                await asyncio.sleep(0.05)
            return records, active
        return await super()._wait_next_records(timeout)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - runs in faust's Fetcher
        if self.batch_channel is None:
            return await super()._drain_messages(fetcher)
        consumer_stopped = cast(Any, self)._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                await asyncio.sleep(0)
                records, active = await self._wait_next_records(1.0)
                if records and not self.should_stop:
                    if self.flow_active:
                        await self._deliver(records, active)
                    else:  # records fetched across a rebalance: faust's getmany seeks back the same way
                        await self.perform_seek()
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def _deliver(self, records: Any, active: set[TP] | None) -> None:
        """One fetch: batch topics to the channel as one list, other topics per record through faust."""
        generation = self.app.consumer_generation_id
        batch: list[Message] = []
        for tp, recs in records.items():
            if not recs or not (active is None or tp in active or tp in self._buffered_partitions):
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            if tp.topic not in self.batch_topics:
                for rec in recs:  # faust's own path (weather ...)
                    if not self.flow_active or self.app.consumer_generation_id != generation:
                        return
                    await self.wait_first(self.callback(self._to_message(tp, rec)), self.suspend_flow.wait())
                    self._read_offset[tp] = rec.offset
                continue
            last = self._read_offset[tp]
            if last is not None and recs[0].offset - last > 1:
                await self._add_gap(tp, last + 1, recs[0].offset - 1)  # e.g. compacted or aborted offsets
            if recs[-1].offset - recs[0].offset + 1 != len(recs):
                for prev, rec in itertools.pairwise(recs):
                    if rec.offset - prev.offset > 1:
                        await self._add_gap(tp, prev.offset + 1, rec.offset - 1)
            batch.extend(
                ConsumerMessage(rec.topic, rec.partition, rec.offset,
                                rec.timestamp / 1000.0 if rec.timestamp is not None else cast(float, None),
                                rec.timestamp_type, rec.headers, rec.key, rec.value, rec.checksum,
                                rec.serialized_key_size, rec.serialized_value_size, tp, generation_id=generation)
                for rec in recs
            )
            self._read_offset[tp] = recs[-1].offset
        if batch and self.app.consumer_generation_id == generation:
            await self.wait_first(cast(Any, self.batch_channel).put(FetchedBatch(generation, batch)),
                                  self.suspend_flow.wait())


def changelog_sent(table: Any) -> Callable[[Any], None]:
    """The callback faust's ``table`` runs when a changelog record it sent is written (for a checkpoint sent by hand
    to ``table.changelog_topic``)."""
    return cast(Callable[[Any], None], table._on_changelog_sent)


class BatchingApp(faust.App):
    """A faust app whose consumer can hand whole fetched batches of some topics to one channel."""

    def batch_topic(self, topic: faust.TopicT, maxsize: int = 4, bulk_topics: Iterable[str] = (),
                    bulk_wanted: Callable[[], bool] = lambda: True,
                    control_wanted: Callable[[], bool] = lambda: True) -> ChannelT:
        """Subscribe ``topic`` and return the channel its records arrive on, as ``list[Message]`` per fetch.

        ``maxsize`` bounds the batches waiting (backpressure reaches the fetcher). Records of ``bulk_topics``
        are handed out after those of the other topics already fetched, and only while ``bulk_wanted()``; the
        other topics are fetched only while ``control_wanted()`` (they stay in Kafka meanwhile). The reader must
        call :meth:`ack` for each record once it is safe to commit.
        """
        self.topics.add(topic)  # subscribed and acking-enabled like an agent's topic
        channel = self.channel(maxsize=maxsize)
        consumer = cast(BatchConsumer, self.consumer)
        consumer.batch_topics = frozenset(topic.topics)
        consumer.batch_channel = channel
        consumer.bulk_topics = frozenset(bulk_topics)
        consumer.bulk_wanted = bulk_wanted
        consumer.control_wanted = control_wanted
        self._batch_channel = channel
        return channel

    def ack(self, messages: Iterable[Message]) -> None:
        """Mark ``messages`` processed: their offsets may now be committed."""
        ack = self.consumer.ack
        for message in messages:
            ack(message)

    async def usable(self, generation: int) -> bool:
        """Whether records fetched in consumer ``generation`` may be applied now (waits while a rebalance is under way).

        False once the generation has moved on: faust re-fetches them from the committed offsets, so the reader
        drops what it still holds of that generation. Ask before each part of a batch applied.
        """
        while self.rebalancing and self.consumer_generation_id == generation:
            await asyncio.sleep(0.05)
        return self.consumer_generation_id == generation

    async def drained_partitions(self, topics: Mapping[str, str]) -> set[tuple[str, int]]:
        """``(topics[name], partition)`` of the assigned partitions of the topics named whose every record available
        has been fetched and handed to the reader (its position is at the high watermark), less those with records
        still waiting in the batch channel."""
        consumer = self.consumer
        waiting: set[tuple[str, int]] = set()
        channel = getattr(self, "_batch_channel", None)
        if channel is not None:
            for batch in list(channel.queue._queue):
                waiting.update((m.topic, m.partition) for m in batch.messages)
        out: set[tuple[str, int]] = set()
        for tp in consumer.assignment():
            logical = topics.get(tp.topic)
            if logical is None or (tp.topic, tp.partition) in waiting:
                continue
            try:
                high, position = consumer.highwater(tp), self.fetch_position(tp)
            except Exception:  # moving in a rebalance: not known to be read to its end
                continue
            if high is not None and position is not None and position >= high:
                out.add((logical, tp.partition))
        return out

    def fetch_position(self, tp: TP) -> int | None:
        """The offset the consumer fetches ``tp`` from next, or None while it has none (e.g. being reset).

        Read from the consumer thread's state without waiting, as faust reads ``highwater``: aiokafka's
        ``position()`` waits until there is one, and a call into the consumer thread can take over a second
        when that thread is busy decoding a large fetch. A tick that timed out on it counted the partition as
        not read to its end, which restarted the partition's quiet period (:class:`.QuietPartitions`).
        """
        kafka = cast(Any, self.consumer)._thread._ensure_consumer()
        subscription = kafka._subscription.subscription
        if subscription is None or subscription.assignment is None:
            return None
        state = subscription.assignment.state_value(tp)
        return state.position if state is not None and state.has_valid_position else None

    @staticmethod
    def ready_batch(stream: Any) -> FetchedBatch | None:
        """The next batch already waiting on the channel ``stream`` iterates (an agent's stream), or None."""
        queue = stream.channel.queue
        return None if queue.empty() else cast(FetchedBatch, queue.get_nowait())

    def _new_consumer(self) -> BatchConsumer:
        return BatchConsumer(
            self.transport, callback=self.topics.on_message, on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned, beacon=self.beacon, loop=self.loop,
        )
