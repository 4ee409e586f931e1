"""The worker's scheduling loop: fetched input applied in time slices, outputs sent, checkpoints, acknowledgements.

:class:`WorkerLoop` holds no Kafka client: it is driven through a :class:`WorkerPort` (the next fetched batch, a send,
a checkpoint write, an acknowledgement) that the faust app (:mod:`streams.agents.app`) implements and a unit test
fakes. Its guarantees, in the order a checkpoint runs:

1. every output sent so far is confirmed by the broker (a checkpoint whose outputs are lost would lose them);
2. the feeder states are written and confirmed;
3. only then are the input records they cover acknowledged (offsets may be committed), less those that must be
   read again after a restart: records that jumped an earlier offset of their partition still waiting, and every
   offset of a partition from the lowest telemetry record a feeder holds for its meters on.

A send or a write that fails raises out of the checkpoint: nothing is acknowledged, and the worker stops (a restart
reads the inputs again from the last commit). Input is applied in slices of at most :data:`SLICE_SECONDS`, control
records first (:class:`~streams.pipeline.intake.Intake`); a slice and a checkpoint never interleave (one lock).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from streams.contracts.topics import CHARGER_TELEMETRY, DEADLETTER, METER_READINGS
from streams.ingest.validate import RawMessage
from streams.pipeline.intake import AckSchedule, Intake, Position, QuietPartitions
from streams.pipeline.worker import Emit, FeederWorker, StateLoader

__all__ = ["SLICE_SECONDS", "Batch", "Feeders", "Fetched", "WorkerLoop", "WorkerPort"]

SLICE_SECONDS = 0.1
"""Longest stretch of input applied without yielding: fetches, sends and jumps (a plug-in) are that late at most."""


class Fetched(Position, Protocol):
    """An input record as fetched (``timestamp`` in seconds, as faust gives it)."""

    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> float | None: ...


M = TypeVar("M", bound=Fetched)
M_co = TypeVar("M_co", bound=Fetched, covariant=True)


class Batch(Protocol[M_co]):
    """The records of one fetch, in partition order, and the consumer generation they were fetched in."""

    @property
    def generation(self) -> int: ...
    @property
    def messages(self) -> Sequence[M_co]: ...


class WorkerPort(Protocol[M]):
    """What the loop needs of the broker side."""

    async def next_batch(self) -> Batch[M] | None:
        """Wait for the next fetched batch (None: the input ended)."""

    def ready_batch(self) -> Batch[M] | None:
        """A batch fetched already, without waiting (None: none)."""

    async def usable(self, generation: int) -> bool:
        """Whether records of consumer ``generation`` may be applied now (False once a rebalance moved on)."""

    async def send(self, topic: str, key: bytes, value: bytes) -> Awaitable[Any]:
        """Hand an output (logical ``topic``) to the producer; the result resolves once the broker has it."""

    async def checkpoint(self, key: bytes, partition: int, blob: bytes) -> Awaitable[Any]:
        """Write a feeder's state (readable through :meth:`load` at once); resolves once the broker has it."""

    def load(self, key: bytes) -> bytes | None:
        """The state last written under ``key`` (None: none)."""

    def acknowledge(self, records: Sequence[M]) -> None:
        """The records' offsets may be committed."""

    async def drained_partitions(self) -> set[tuple[str, int]]:
        """(logical topic, partition) of the meter, telemetry and registry partitions read to their end."""


class Feeders(Protocol):
    """What the loop needs of the feeders (:class:`~streams.pipeline.worker.FeederWorker`)."""

    drained: set[tuple[str, int]] | None

    def process(self, msgs: Iterable[RawMessage], load: StateLoader, checkpoint: bool = True,
                until: float | None = None) -> Emit: ...
    def checkpoint(self, partitions: Collection[int] | None = None) -> Emit: ...
    def tick(self, force: bool = False, checkpoint: bool = True) -> Emit: ...
    def process_weather(self, msgs: Iterable[RawMessage], observe: bool = True) -> Emit: ...
    def held_total(self) -> int: ...
    def unapplied(self) -> dict[tuple[str, int], int]: ...
    def connection_change(self, key: bytes | None, value: bytes | None) -> bool: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...


async def _nowhere(point: str) -> None:
    return None


class WorkerLoop(Generic[M]):
    """The feeders' input applied through ``port``: :meth:`run` (the input), :meth:`tick` (about once a second),
    :meth:`revoked` / :meth:`assigned` (a rebalance), :meth:`apply_weather` (the group's weather).

    Parameters
    ----------
    feeders : Feeders
        Applies records and makes the outputs and checkpoints.
    port : WorkerPort
        The broker side.
    topics : mapping
        Logical topic name of each topic name fetched records carry (the physical, prefixed name).
    checkpoint_seconds : float
        Seconds between two checkpoints of a partition's feeders (input is acknowledged at checkpoints).
    max_meter_records : int
        Meter readings fetched ahead at most (:meth:`bulk_wanted`).
    max_held_telemetry : int
        Telemetry records the feeders may hold for their meters before control topics stop being fetched
        (:meth:`control_wanted`).
    quiet_seconds : float
        How long a partition must stay read to its end before the feeders treat its stream as stopped.
    clock : callable
        A monotonic clock, seconds (the schedule of checkpoints and quiet partitions).
    failpoint : callable
        Awaited at named points (``emit``, ``delivery``, ``acked``: :mod:`streams.agents.failpoints`).
    ordered_dead_letters : bool
        Send a dead letter only once every output before it is written (EVGRID_ORDERED_DEAD_LETTERS).
    """

    def __init__(self, feeders: Feeders, port: WorkerPort[M], topics: Mapping[str, str], *,
                 checkpoint_seconds: float, max_meter_records: int, max_held_telemetry: int, quiet_seconds: float,
                 clock: Callable[[], float] = time.monotonic,
                 failpoint: Callable[[str], Awaitable[None]] = _nowhere, ordered_dead_letters: bool = False) -> None:
        self.feeders, self.port, self.clock, self.failpoint = feeders, port, clock, failpoint
        self.ordered_dead_letters = ordered_dead_letters
        self.max_held_telemetry = max_held_telemetry
        self.logical = dict(topics)
        physical = {logical: name for name, logical in self.logical.items()}
        meters, self._telemetry = physical.get(METER_READINGS, METER_READINGS), physical.get(CHARGER_TELEMETRY)
        feeders.drained = set()  # until the consumer says which partitions are read to their end
        # a plug-in goes ahead of other feeders' work (e.g. all re-planning at an interval boundary)
        self.intake: Intake[M] = Intake({meters}, max_meter_records, key=lambda m: m.key, jumps=self._jumps)
        self.acks: AckSchedule[M] = AckSchedule(checkpoint_seconds, clock(), lambda m: m.partition)
        self.quiet = QuietPartitions(quiet_seconds)  # a stream that stopped, not a producer's pause
        self.lock = asyncio.Lock()  # a checkpoint never runs while a slice's outputs are being sent
        self._sent: list[Awaitable[Any]] = []  # delivery futures of what was produced since the last checkpoint

    def _jumps(self, m: M) -> bool:
        return m.topic == self._telemetry and self.feeders.connection_change(m.key, m.value)

    def bulk_wanted(self) -> bool:
        """Whether meter readings may be fetched ahead (few enough wait)."""
        return self.intake.wants_more()

    def control_wanted(self) -> bool:
        """Whether control records may be fetched (the feeders hold fewer than the maximum of telemetry)."""
        return self.feeders.held_total() < self.max_held_telemetry

    async def run(self) -> None:
        """Apply every batch the port fetches, until it has no more."""
        intake, port = self.intake, self.port
        while (batch := await port.next_batch()) is not None:
            self._received(batch.messages)
            intake.add(batch.generation, batch.messages)
            while intake:
                while (more := port.ready_batch()) is not None:  # (meters are fetched while intake.wants_more)
                    self._received(more.messages)
                    intake.add(more.generation, more.messages)  # control records jump the meters waiting
                if not await port.usable(intake.generation):
                    intake.clear()  # a rebalance came between: the rest is fetched again
                    break
                async with self.lock:
                    await self._slice()

    def _received(self, records: Sequence[M]) -> None:
        """A meter or registry partition that delivers records has not stopped: it leaves the drained set at once
        (not at the next tick), so telemetry fetched with the meter readings that cover it is not released ahead of
        them. The telemetry partition itself stays as the last tick saw it: a lockstep round's marker is released
        with the round's records, not a tick later (a month of rounds without meters would wait a tick each)."""
        arrived = {(topic, m.partition) for m in records
                   if (topic := self.logical.get(m.topic, m.topic)) != CHARGER_TELEMETRY}
        self.quiet.restart(arrived)
        if self.feeders.drained:
            self.feeders.drained -= arrived

    async def _slice(self) -> None:
        intake, logical = self.intake, self.logical
        chunk = intake.take()
        out = self.feeders.process([FeederWorker.raw(logical.get(m.topic, m.topic), m) for m in chunk],
                                   self.port.load, checkpoint=False, until=time.perf_counter() + SLICE_SECONDS)
        intake.put_back(chunk[out.taken:])  # the slice ran out: new arrivals may jump the rest
        self.acks.applied(chunk[:out.taken])
        await self._emit(out)

    async def _emit(self, out: Emit) -> None:
        port, sent = self.port, self._sent
        for i, (logical, key, value) in enumerate(out.messages):
            if i == len(out.messages) // 2 and i:
                await self.failpoint("emit")
            if logical == DEADLETTER and self.ordered_dead_letters and sent:
                await self._delivered()  # the outputs before it are written first (clears ``sent``)
            sent.append(await port.send(logical, key, value))
        for feeder, partition, blob in out.checkpoints:
            sent.append(await port.checkpoint(feeder, partition, blob))

    async def _delivered(self) -> None:
        """Wait until every output and checkpoint sent so far is written by the broker; raises if one cannot be."""
        pending = self._sent[:]
        self._sent.clear()
        await asyncio.gather(*pending)

    async def checkpoint(self, partitions: list[int] | None = None) -> None:
        """Checkpoint the feeders of ``partitions`` (None: all) and acknowledge the input it covers. Hold the lock."""
        # records that jumped others, and records from the lowest one held for a meter stream on, wait
        waiting, unapplied, logical = self.intake.ahead_of_waiting(), self.feeders.unapplied(), self.logical

        def hold(m: M) -> bool:
            low = unapplied.get((logical.get(m.topic, m.topic), m.partition))
            return (low is not None and m.offset >= low) or waiting(m)

        done = self.acks.checkpointed(self.clock(), partitions, hold=hold)
        await self._delivered()  # the outputs first: a checkpoint in Kafka whose outputs are not would lose them
        await self._emit(self.feeders.checkpoint(partitions))  # covers exactly ``done``: nothing applied between
        if done:
            await self.failpoint("delivery")
        await self._delivered()  # then the checkpoint, and only then may the inputs be committed
        self.port.acknowledge(done)
        if done:
            await self.failpoint("acked")

    async def tick(self) -> None:
        """Tell the feeders which streams stopped (releasing telemetry held for them), and checkpoint the partitions
        due."""
        drained = await self.port.drained_partitions()
        async with self.lock:
            logical = self.logical
            waiting = {(logical.get(t, t), p) for t, p in self.intake.waiting()}
            self.feeders.drained = self.quiet.update(drained, waiting, self.clock())
            await self._emit(self.feeders.tick(checkpoint=False))
            if due := self.acks.due(self.clock()):
                await self.checkpoint(due)

    async def revoked(self) -> None:
        """Partitions are about to move: checkpoint everything (the tables are the truth afterwards)."""
        async with self.lock:
            await self.checkpoint()
            self.feeders.pause()  # no releases while partitions move

    def assigned(self) -> None:
        """Partitions were assigned (the feeders load from the tables as their records come)."""
        self.feeders.resume()

    async def apply_weather(self, msgs: Iterable[RawMessage]) -> None:
        """Count and dead-letter the group's weather (each record once per fleet; not applied here)."""
        await self._emit(self.feeders.process_weather(msgs, observe=False))
