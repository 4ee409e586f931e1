"""WorkerLoop driven through a fake port: outputs confirmed before a checkpoint, a checkpoint confirmed before any
acknowledgement, held telemetry read again after a restart, the fetch switch for control topics, quiet streams."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contracts.codec import default_codec
from streams.contracts.models import MeterReading, encode_record
from streams.contracts.topics import (
    CHARGER_REGISTRY,
    CHARGER_TELEMETRY,
    DEADLETTER,
    METER_READINGS,
    SETPOINTS,
    TOPICS,
    topic_name,
)
from streams.ingest.validate import RawMessage
from streams.pipeline.loop import WorkerLoop
from streams.pipeline.worker import STATE_KEY, Emit, FeederWorker, StateLoader
from streams.settings import Settings, pipeline_config
from tests.fixtures.feeder_records import HOUR, T0, reg, tel

PREFIX = "unit."
TOPIC_NAMES = {topic_name(t, PREFIX): t for t in TOPICS}
CODEC = default_codec()
SETTINGS = Settings(interval_minutes=15, grace_seconds=300, align_idle_seconds=30)
ALL_READ = {(METER_READINGS, 0), (CHARGER_TELEMETRY, 0), (CHARGER_REGISTRY, 0)}


@dataclass(frozen=True)
class Rec:
    """A fetched record as the port hands it out (physical topic name, timestamp in seconds)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None


@dataclass(frozen=True)
class FakeBatch:
    generation: int
    messages: list[Rec]


class FakePort:
    """A broker in memory. Every send and checkpoint write returns a future the broker resolves at once, or
    (``confirm=False``) when the test calls :meth:`confirm`; ``log`` records the order things happened in."""

    def __init__(self, table: dict[bytes, bytes] | None = None, confirm: bool = True) -> None:
        self.batches: deque[FakeBatch] = deque()
        self.ready: deque[FakeBatch] = deque()
        self.generation = 1
        self.table = table if table is not None else {}
        self.auto_confirm = confirm
        self.pending: list[asyncio.Future[None]] = []
        self.log: list[tuple[str, Any]] = []
        self.outputs: list[tuple[str, bytes, bytes]] = []
        self.acked: list[Rec] = []
        self.drained: set[tuple[str, int]] = set()

    def fetch(self, *records: Rec) -> None:
        self.batches.append(FakeBatch(self.generation, list(records)))

    def _future(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.auto_confirm:
            fut.set_result(None)
        else:
            self.pending.append(fut)
        return fut

    def confirm(self, error: Exception | None = None) -> None:
        """The broker writes (or, with ``error``, fails to write) everything sent so far."""
        for fut in self.pending:
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)
        self.log.append(("confirmed" if error is None else "failed", len(self.pending)))
        self.pending = []

    async def next_batch(self) -> FakeBatch | None:
        return self.batches.popleft() if self.batches else None

    def ready_batch(self) -> FakeBatch | None:
        return self.ready.popleft() if self.ready else None

    async def usable(self, generation: int) -> bool:
        return generation == self.generation

    async def send(self, topic: str, key: bytes, value: bytes) -> Awaitable[None]:
        self.outputs.append((topic, key, value))
        self.log.append(("send", topic))
        return self._future()

    async def checkpoint(self, key: bytes, partition: int, blob: bytes) -> Awaitable[None]:
        self.table[key] = blob
        self.log.append(("checkpoint", key))
        return self._future()

    def load(self, key: bytes) -> bytes | None:
        return self.table.get(key)

    def acknowledge(self, records: Sequence[Rec]) -> None:
        self.acked += records
        self.log.append(("ack", len(records)))

    async def drained_partitions(self) -> set[tuple[str, int]]:
        return set(self.drained)

    def committed(self, logical: str, partition: int = 0) -> int:
        """The offset a restart reads from: faust commits up to the first offset not acknowledged."""
        offsets = {r.offset for r in self.acked if (r.topic, r.partition) == (topic_name(logical, PREFIX), partition)}
        n = 0
        while n in offsets:
            n += 1
        return n


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def worker() -> FeederWorker:
    return FeederWorker(pipeline_config(SETTINGS), clock=lambda: T0 + 30 * 24 * HOUR)


def make_loop(feeders: Any, port: FakePort, clock: Clock, max_held: int = 20_000,
              quiet_s: float = 30.0) -> WorkerLoop[Rec]:
    return WorkerLoop(feeders, port, TOPIC_NAMES, checkpoint_seconds=5.0, max_meter_records=40_000,
                      max_held_telemetry=max_held, quiet_seconds=quiet_s, clock=clock)


def rec(logical: str, offset: int, value: bytes, ts_ms: int = T0, partition: int = 0) -> Rec:
    return Rec(topic_name(logical, PREFIX), partition, offset, b"F1", value, ts_ms / 1000)


def meter(offset: int, ts_ms: int) -> Rec:
    return rec(METER_READINGS, offset, encode_record(CODEC, MeterReading(
        meter_id="F1-M1", feeder_id="F1", timestamp=ts_ms, active_power_kw=2.0)), ts_ms)


def registration() -> Rec:
    return rec(CHARGER_REGISTRY, 0, encode_record(CODEC, reg("C1")))


def telemetry(offset: int, ts_ms: int) -> Rec:
    return rec(CHARGER_TELEMETRY, offset, encode_record(CODEC, tel(ts_ms)), ts_ms)


HELD = [telemetry(i, T0 + HOUR + i * 60_000) for i in range(4)]
"""An hour ahead of the meters: held until the meter stream catches up or stops."""


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_checkpoint_waits_until_every_output_sent_before_it_is_confirmed() -> None:
    async def scenario() -> None:
        port, clock = FakePort(confirm=False), Clock()
        loop = make_loop(worker(), port, clock)
        port.fetch(meter(0, T0), meter(1, T0 + 900_000), rec(METER_READINGS, 2, b"\x00not avro"))
        await loop.run()
        assert ("send", DEADLETTER) in port.log and not port.acked
        clock.now += 5.0
        tick = asyncio.create_task(loop.tick())
        await settle()
        assert not [e for e in port.log if e[0] == "checkpoint"], "no state written before its outputs are"
        port.confirm()
        await settle()
        assert ("checkpoint", STATE_KEY + b"F1") in port.log, "written once the outputs are confirmed"
        port.confirm()
        await tick
        assert [r.offset for r in port.acked] == [0, 1, 2]

    asyncio.run(scenario())


def test_input_is_acknowledged_only_once_its_checkpoint_is_confirmed() -> None:
    async def scenario() -> None:
        port, clock = FakePort(confirm=False), Clock()
        loop = make_loop(worker(), port, clock)
        port.fetch(meter(0, T0), meter(1, T0 + 900_000))
        await loop.run()
        port.confirm()  # the slice's outputs (forecasts, if any)
        clock.now += 5.0
        tick = asyncio.create_task(loop.tick())
        await settle()
        assert ("checkpoint", STATE_KEY + b"F1") in port.log and port.pending, "written, not yet confirmed"
        assert not port.acked
        port.confirm()
        await tick
        kinds = [e[0] for e in port.log]
        assert [r.offset for r in port.acked] == [0, 1]
        assert kinds.index("ack") > len(kinds) - 1 - kinds[::-1].index("confirmed")

    asyncio.run(scenario())


def test_a_send_that_fails_acknowledges_nothing_and_raises_out_of_the_checkpoint() -> None:
    async def scenario() -> None:
        port, clock = FakePort(confirm=False), Clock()
        loop = make_loop(worker(), port, clock)
        port.fetch(meter(0, T0), rec(METER_READINGS, 1, b"\x00not avro"))
        await loop.run()
        port.confirm(error=RuntimeError("broker: not enough replicas"))
        clock.now += 5.0
        with pytest.raises(RuntimeError, match="not enough replicas"):
            await loop.tick()
        assert not port.acked
        assert not [e for e in port.log if e[0] == "checkpoint"], "nothing written after a lost output either"

    asyncio.run(scenario())


async def held_telemetry_run(port: FakePort, clock: Clock) -> FeederWorker:
    w = worker()
    loop = make_loop(w, port, clock)
    port.fetch(registration(), meter(0, T0), *HELD)
    await loop.run()
    clock.now += 5.0
    await loop.tick()
    assert w.held_total() == 4
    return w


def test_held_telemetry_offsets_are_never_acknowledged() -> None:
    async def scenario() -> None:
        port, clock = FakePort(), Clock()
        await held_telemetry_run(port, clock)
        assert ("checkpoint", STATE_KEY + b"F1") in port.log
        assert {(TOPIC_NAMES[r.topic], r.offset) for r in port.acked} == {(CHARGER_REGISTRY, 0), (METER_READINGS, 0)}
        assert port.committed(CHARGER_TELEMETRY) == 0

    asyncio.run(scenario())


def _setpoints(port: FakePort) -> list[tuple[bytes, bytes]]:
    return [(k, v) for t, k, v in port.outputs if t == SETPOINTS]


def test_a_restart_from_the_checkpoint_reads_the_held_telemetry_again_and_plans_as_without_one() -> None:
    async def scenario() -> None:
        clock = Clock()
        whole = FakePort()  # no restart: the held telemetry is released when the streams stop
        loop = make_loop(worker(), whole, clock, quiet_s=0.0)
        whole.fetch(registration(), meter(0, T0), *HELD)
        await loop.run()
        whole.drained = ALL_READ
        await loop.tick()
        assert _setpoints(whole), "the released telemetry plans"

        first = FakePort()
        await held_telemetry_run(first, clock)  # killed after its checkpoint
        again = FakePort(table=dict(first.table))
        restarted = worker()
        loop = make_loop(restarted, again, clock, quiet_s=0.0)
        again.fetch(*HELD[first.committed(CHARGER_TELEMETRY):])  # the consumer reads from the committed offsets
        await loop.run()
        assert restarted.held_total() == 4 and restarted.skipped_replayed == 0
        again.drained = ALL_READ
        await loop.tick()
        assert _setpoints(again) == _setpoints(whole)

    asyncio.run(scenario())


def test_control_topics_are_not_fetched_while_the_feeders_hold_the_most_telemetry() -> None:
    async def scenario() -> None:
        port, clock, w = FakePort(), Clock(), worker()
        loop = make_loop(w, port, clock, max_held=4, quiet_s=0.0)
        port.fetch(registration(), meter(0, T0), *HELD[:3])
        await loop.run()
        assert w.held_total() == 3 and loop.control_wanted()
        port.fetch(HELD[3])
        await loop.run()
        assert w.held_total() == 4 and not loop.control_wanted()
        port.drained = ALL_READ
        await loop.tick()
        assert w.held_total() == 0 and loop.control_wanted()

    asyncio.run(scenario())


def test_held_telemetry_is_released_once_the_streams_stay_read_to_their_end_for_the_quiet_time() -> None:
    async def scenario() -> None:
        port, clock, w = FakePort(), Clock(), worker()
        loop = make_loop(w, port, clock, quiet_s=30.0)
        port.fetch(registration(), meter(0, T0), *HELD)
        await loop.run()
        port.drained = ALL_READ
        await loop.tick()
        clock.now += 29.0
        await loop.tick()
        assert w.held_total() == 4 and not _setpoints(port), "read to the end, but not for 30 s yet"
        port.drained = ALL_READ - {(METER_READINGS, 0)}  # new meter readings: the wait starts again
        clock.now += 1.0
        await loop.tick()
        port.drained = ALL_READ
        clock.now += 1.0
        await loop.tick()  # read to its end again from here
        clock.now += 29.0
        await loop.tick()
        assert w.held_total() == 4
        clock.now += 1.0
        await loop.tick()
        assert w.held_total() == 0 and _setpoints(port)

    asyncio.run(scenario())


class ScriptedFeeders:
    """Feeders that apply as many records per slice as the script says (at least one, as a slice does); a
    telemetry record whose value is ``b"plug"`` plugs a car in (jumps other feeders' records)."""

    drained: set[tuple[str, int]] | None = None

    def __init__(self, slices: Iterable[int]) -> None:
        self.slices: Iterator[int] = iter(slices)
        self.applied: set[tuple[int, int]] = set()

    def process(self, msgs: Iterable[RawMessage], load: StateLoader, checkpoint: bool = True,
                until: float | None = None) -> Emit:
        msgs = list(msgs)
        n = min(len(msgs), max(1, next(self.slices, len(msgs))))
        self.applied.update((m.partition, m.offset) for m in msgs[:n])
        return Emit(taken=n)

    def checkpoint(self, partitions: Collection[int] | None = None) -> Emit:
        return Emit()

    def tick(self, force: bool = False, checkpoint: bool = True) -> Emit:
        return Emit()

    def process_weather(self, msgs: Iterable[RawMessage], observe: bool = True) -> Emit:
        return Emit()

    def held_total(self) -> int:
        return 0

    def unapplied(self) -> dict[tuple[str, int], int]:
        return {}

    def connection_change(self, key: bytes | None, value: bytes | None) -> bool:
        return value == b"plug"

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass


class ScriptedBroker(FakePort):
    """Telemetry partitions 0 and 1 written to as the script goes. Between two slices of the loop (when it asks
    whether its records are usable) the next step runs: records produced and fetched, a tick one second later, or
    a rebalance (everything checkpointed, then re-fetched from the committed offsets in a new generation)."""

    def __init__(self, steps: list[tuple[str, int, list[tuple[str, bool]]]], clock: Clock,
                 feeders: ScriptedFeeders) -> None:
        super().__init__()
        self.steps, self.clock, self.feeders = deque(steps), clock, feeders
        self.topic = topic_name(CHARGER_TELEMETRY, PREFIX)
        self.logs: list[list[Rec]] = [[], []]
        self.loop: WorkerLoop[Rec] | None = None

    async def step(self) -> None:
        kind, partition, recs = self.steps.popleft()
        assert self.loop is not None
        if kind == "produce":
            log = self.logs[partition]
            new = [Rec(self.topic, partition, len(log) + i, f.encode(), b"plug" if plug else b"")
                   for i, (f, plug) in enumerate(recs)]
            log += new
            self.ready.append(FakeBatch(self.generation, new))
        elif kind == "tick":
            self.clock.now += 1.0
            await self.loop.tick()
        else:
            await self.loop.revoked()
            self.generation += 1
            self.ready.clear()
            for p, log in enumerate(self.logs):
                if rest := log[self.committed(CHARGER_TELEMETRY, p):]:
                    self.ready.append(FakeBatch(self.generation, rest))
            self.loop.assigned()

    async def next_batch(self) -> FakeBatch | None:
        while not self.ready and self.steps:
            await self.step()
        return self.ready_batch()

    async def usable(self, generation: int) -> bool:
        if self.steps:
            await self.step()
        return generation == self.generation

    def acknowledge(self, records: Sequence[Rec]) -> None:
        assert {(r.partition, r.offset) for r in records} <= self.feeders.applied, "acknowledged, never applied"
        super().acknowledge(records)
        for p in (0, 1):
            offsets = sorted(r.offset for r in self.acked if r.partition == p)
            assert offsets == list(range(len(offsets))), "a commit would skip a record not applied"


STEPS = st.lists(st.one_of(
    st.tuples(st.just("produce"), st.integers(0, 1),
              st.lists(st.tuples(st.sampled_from("ABC"), st.booleans()), min_size=1, max_size=8)),
    st.tuples(st.just("tick"), st.just(0), st.just([])),
    st.tuples(st.just("rebalance"), st.just(0), st.just([]))), max_size=30)


@settings(deadline=None)
@given(STEPS, st.lists(st.integers(1, 4), max_size=40))
def test_acknowledged_offsets_never_skip_a_record_that_was_jumped(
        steps: list[tuple[str, int, list[tuple[str, bool]]]], slices: list[int]) -> None:
    """Offsets are committed up to the first gap in what was acknowledged, so records applied ahead of others
    (plug-ins jump other feeders' records; slices apply a few records at a time) are held back until those are
    applied too: what the loop acknowledges is a prefix of every partition, and in the end all of it."""
    async def scenario() -> None:
        clock, feeders = Clock(), ScriptedFeeders(slices)
        broker = ScriptedBroker(steps, clock, feeders)
        loop = broker.loop = WorkerLoop(feeders, broker, TOPIC_NAMES, checkpoint_seconds=1.0,
                                        max_meter_records=40_000, max_held_telemetry=20_000, quiet_seconds=30.0,
                                        clock=clock)
        await loop.run()
        clock.now += 1.0
        await loop.revoked()  # checkpoints everything
        for p in (0, 1):
            assert sorted(r.offset for r in broker.acked if r.partition == p) == list(range(len(broker.logs[p])))

    asyncio.run(scenario())


@pytest.mark.parametrize("ordered", [False, True])
def test_an_ordered_dead_letter_waits_until_the_outputs_before_it_are_written(ordered: bool) -> None:
    async def scenario() -> None:
        port, clock = FakePort(confirm=False), Clock()
        loop = WorkerLoop(worker(), port, TOPIC_NAMES, checkpoint_seconds=5.0, max_meter_records=40_000,
                          max_held_telemetry=20_000, quiet_seconds=30.0, clock=clock, ordered_dead_letters=ordered)
        port.fetch(meter(0, T0), meter(1, T0 + 900_000), rec(METER_READINGS, 2, b"\x00not avro"))
        run = asyncio.create_task(loop.run())
        await settle()
        sent = [t for e, t in port.log if e == "send"]
        assert sent and DEADLETTER not in sent[:-1]  # outputs first (a forecast), the dead letter last if at all
        assert (sent[-1] == DEADLETTER) is not ordered  # ordered: not sent while the outputs are unconfirmed
        port.confirm()
        await run
        dead = port.log.index(("send", DEADLETTER))
        assert (port.log.index(("confirmed", len(sent))) < dead) is ordered

    asyncio.run(scenario())


def test_records_applied_before_faust_calls_the_assignment_callback_keep_their_effects() -> None:
    """faust may hand out the new generation's records (its table recovery done) before it calls the assignment
    callback. What was applied then stays: held telemetry is not dropped with the runtimes, so its offsets are not
    acknowledged past and it plans once the streams stop (a kill-point CI run lost two dead letters this way)."""
    async def scenario() -> None:
        port, clock, w = FakePort(), Clock(), worker()
        loop = make_loop(w, port, clock, quiet_s=0.0)
        port.fetch(registration(), meter(0, T0))
        await loop.run()
        await loop.revoked()  # a rebalance starts: everything checkpointed, the runtimes let go
        port.generation = 2
        port.fetch(*HELD)  # the new generation's records arrive first ...
        await loop.run()
        assert w.held_total() == 4
        loop.assigned()  # ... and only then the assignment callback
        assert w.held_total() == 4
        clock.now += 10.0
        await loop.tick()  # a checkpoint is due
        assert port.committed(CHARGER_TELEMETRY) == 0, "held telemetry must be read again after a crash"
        port.drained = ALL_READ
        await loop.tick()
        assert w.held_total() == 0 and _setpoints(port)

    asyncio.run(scenario())


def test_telemetry_fetched_with_the_meter_readings_that_cover_it_waits_for_them_after_a_quiet_spell() -> None:
    # A broker backtest: the streams were quiet for a minute (the worker waiting for the warm-up), then telemetry
    # and the 21 days of meter readings before it came in one fetch. The drained set was only renewed at the next
    # tick, so the telemetry, applied before the readings, was released as if every stream had stopped
    covering = [meter(i, T0 + i * 5 * 60_000) for i in range(1, 16)]
    late = telemetry(0, T0 + HOUR)

    async def scenario(quiet_first: bool) -> FeederWorker:
        port, clock, w = FakePort(), Clock(), worker()
        loop = make_loop(w, port, clock, quiet_s=30.0)
        port.fetch(registration(), meter(0, T0))
        await loop.run()
        if quiet_first:
            port.drained = ALL_READ
            await loop.tick()
            clock.now += 31.0
            await loop.tick()
            assert w.drained == ALL_READ
            port.fetch(late, *covering)  # one fetch: the telemetry is applied first (control before bulk)
        else:
            port.fetch(*covering)
            await loop.run()
            port.fetch(late)
        await loop.run()
        assert w.held_total() == 0, "the covering readings release it"
        return w

    quiet, plain = asyncio.run(scenario(True)), asyncio.run(scenario(False))
    for w in (quiet, plain):
        assert w.runtimes[b"F1"].meter_clock == T0 + 15 * 5 * 60_000
    planned = [w.runtimes[b"F1"].dispatcher.plan_request for w in (quiet, plain)]
    assert planned[0] is not None and planned[0] == planned[1]
