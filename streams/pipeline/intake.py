"""The order fetched input records are applied in, and when they may be acknowledged. Pure.

A feeder's runtime aligns its topics on event time itself (:mod:`streams.pipeline.feeder`), so the order
*across* topics does not change what it emits; only the order *within* a partition matters. That leaves
room to serve the control path first: :class:`Intake` hands out charger telemetry, registrations, grid
signals and incentive responses ahead of meter readings fetched with them. A plug-in then does not wait
behind the burst of readings every meter sends at an interval end, and neither does the plan at that end.
How far meters may fall behind is bounded (``max_bulk`` readings waiting), which bounds the telemetry a
runtime holds for its meters to catch up during a fast replay.

:class:`AckSchedule` holds what was applied until the checkpoint that covers it, which is when the input
offsets may be committed.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterable
from typing import Generic, Protocol, TypeVar

__all__ = ["AckSchedule", "Intake", "Position", "QuietPartitions"]


class Position(Protocol):
    """Where a fetched record sits: its topic, partition and offset."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


M = TypeVar("M", bound=Position)
T = TypeVar("T")


class Intake(Generic[M]):
    """Fetched records waiting to be applied: records that jump the queue, then control, then bulk (meter) records.

    Parameters
    ----------
    bulk_topics : collection of str
        Topics whose records wait behind the others (the meter readings).
    max_bulk : int
        :meth:`wants_more` is False while this many bulk records wait.
    chunk : int
        At most this many bulk records per :meth:`take`.
    control_chunk : int
        At most this many control records per :meth:`take`. Control records can be costly (a plug-in or an
        interval boundary re-plans a feeder), and what a chunk produces is sent when the chunk is done.
    control_run : int
        After ``control_run * control_chunk`` control records applied in a row, one bulk chunk goes if any waits:
        a stream whose control records never run dry (a replay) still applies its meters, and telemetry held for
        them is released.
    key : callable, optional
        The feeder a record belongs to. Records of one key keep their order whatever jumps.
    jumps : callable, optional
        Whether a control record goes ahead of the control records of other keys (a plug-in while the worker
        re-plans every feeder at an interval boundary). The control records of its key queued before it go
        with it, and so do those that come after it while any of them waits.

    Examples
    --------
    >>> from types import SimpleNamespace as R
    >>> intake = Intake({"meters"}, max_bulk=2, chunk=2, control_chunk=1)
    >>> intake.add(7, [R(topic="meters", n=1), R(topic="meters", n=2), R(topic="chargers", n=3)])
    >>> [r.n for r in intake.take()], intake.wants_more()
    ([3], False)
    >>> [r.n for r in intake.take()], len(intake)
    ([1, 2], 0)

    A plug-in on feeder B jumps the queued records of feeder A, after B's own earlier record:

    >>> intake = Intake({"meters"}, key=lambda r: r.f, jumps=lambda r: r.plug)
    >>> intake.add(7, [R(topic="t", f=f, plug=p, n=n) for f, p, n in [("A", 0, 1), ("B", 0, 2), ("A", 0, 3)]])
    >>> intake.add(7, [R(topic="t", f="B", plug=1, n=4)])
    >>> [r.n for r in intake.take()], [r.n for r in intake.take()]
    ([2, 4], [1, 3])
    """

    def __init__(self, bulk_topics: Collection[str], max_bulk: int = 40_000, chunk: int = 2_000,
                 control_chunk: int = 200, control_run: int = 10, key: Callable[[M], Hashable] | None = None,
                 jumps: Callable[[M], bool] | None = None) -> None:
        self.bulk_topics = frozenset(bulk_topics)
        self.max_bulk, self.chunk, self.control_chunk, self.control_run = max_bulk, chunk, control_chunk, control_run
        self.key, self.jumps = key, jumps
        self._run = 0  # control records applied since the last bulk chunk
        self.generation = -1  # the consumer generation of the records waiting (-1: none added yet)
        self._first: deque[M] = deque()  # records of the keys that jumped
        self._first_keys: dict[Hashable, int] = {}  # key -> its records in _first
        self._control: deque[M] = deque()
        self._bulk: deque[M] = deque()
        self._taken_from: deque[M] | None = None

    def __len__(self) -> int:
        return len(self._first) + len(self._control) + len(self._bulk)

    def add(self, generation: int, records: Iterable[M]) -> None:
        """Queue a fetch's records (partition order kept) of consumer ``generation``.

        Records of an older generation still waiting are dropped: after a rebalance the consumer re-fetches
        everything from the committed offsets.
        """
        if generation != self.generation:
            self.clear()
            self.generation = generation
        bulk, control, bulk_topics, jumps = self._bulk, self._control, self.bulk_topics, self.jumps
        for r in records:
            if r.topic in bulk_topics:
                bulk.append(r)
            elif jumps is None or self.key is None:
                control.append(r)
            else:
                k = self.key(r)
                if k in self._first_keys or jumps(r):
                    self._jump(k)
                    self._first.append(r)
                    self._first_keys[k] += 1
                else:
                    control.append(r)

    def _jump(self, k: Hashable) -> None:
        """Move the queued control records of key ``k`` to the end of the first lane (order kept)."""
        if k in self._first_keys:
            return  # its queued records are there already
        assert self.key is not None
        key = self.key
        moved = [r for r in self._control if key(r) == k]
        if moved:
            kept = [r for r in self._control if key(r) != k]
            self._control.clear()
            self._control.extend(kept)
            self._first.extend(moved)
        self._first_keys[k] = len(moved)

    def wants_more(self) -> bool:
        """Whether fetching ahead is allowed: fewer than ``max_bulk`` bulk records wait."""
        return len(self._bulk) < self.max_bulk

    def take(self) -> list[M]:
        """The next records to apply: the first lane, then control records (at most ``control_chunk``), else bulk.

        A bulk chunk also goes once ``control_run`` full control chunks' worth of records were applied since the
        last one, whichever lane they came from (counted in records: a chunk cut short by a time slice counts
        for what was applied).
        """
        if (self._first or self._control) and not (self._bulk and self._run >= self.control_run * self.control_chunk):
            queue, n = self._first if self._first else self._control, self.control_chunk
        else:
            queue, n = self._bulk, self.chunk
            self._run = 0
        taken = [queue.popleft() for _ in range(min(n, len(queue)))]
        if queue is not self._bulk:
            self._run += len(taken)
        if queue is self._first:
            self._count_first(taken, -1)
        self._taken_from = queue
        return taken

    def put_back(self, records: list[M]) -> None:
        """Return the unapplied end of the last :meth:`take` (a slice ran out of time): it is taken first again."""
        if not records:
            return
        queue = self._taken_from
        assert queue is not None, "put_back without take"
        queue.extendleft(reversed(records))
        if queue is not self._bulk:
            self._run -= len(records)
        if queue is self._first:
            self._count_first(records, +1)

    def _count_first(self, records: list[M], sign: int) -> None:
        assert self.key is not None
        for r in records:
            k = self.key(r)
            n = self._first_keys.get(k, 0) + sign
            if n:
                self._first_keys[k] = n
            else:
                del self._first_keys[k]

    def ahead_of_waiting(self) -> Callable[[M], bool]:
        """Whether an applied record has an earlier offset of its partition still waiting (as of this call): it
        jumped that record, and must not be acknowledged before it (offsets are committed up to the first one
        not applied). The ``hold`` of :meth:`AckSchedule.checkpointed`. Bulk records keep partition order."""
        low: dict[tuple[str, int], int] = {}
        for queue in (self._first, self._control):
            for r in queue:
                tp = (r.topic, r.partition)
                if r.offset < low.get(tp, r.offset + 1):
                    low[tp] = r.offset
        return lambda r: low.get((r.topic, r.partition), r.offset) < r.offset

    def waiting(self) -> set[tuple[str, int]]:
        """``(topic, partition)`` of every record waiting."""
        return {(r.topic, r.partition) for q in (self._first, self._control, self._bulk) for r in q}

    def clear(self) -> None:
        """Drop every waiting record."""
        self._first.clear()
        self._first_keys.clear()
        self._control.clear()
        self._bulk.clear()


class AckSchedule(Generic[T]):
    """Applied records held, per input partition, until the checkpoint of that partition's feeders.

    Each partition is checkpointed every ``every_s`` seconds, but at most ``ceil(partitions / every_s)`` of
    them per second, oldest first: the checkpoints of a worker's partitions spread over the period instead of
    stalling it all at once (pickling 100 busy feeders takes about half a second).

    Parameters
    ----------
    every_s : float
        Seconds between two checkpoints of a partition (the caller's monotonic clock).
    now : float
        The clock when the schedule starts.
    partition : callable
        The input partition of a record (all input topics are partitioned alike, by feeder).

    Examples
    --------
    >>> s = AckSchedule(2.0, now=100.0, partition=lambda r: r[0])
    >>> s.applied([(0, "a"), (1, "b"), (0, "c")])
    >>> s.due(101.0), s.due(102.0)
    ([], [0])
    >>> s.checkpointed(102.0, [0]), s.due(103.0)
    ([(0, 'a'), (0, 'c')], [1])
    """

    def __init__(self, every_s: float, now: float, partition: Callable[[T], int]) -> None:
        self.every_s = every_s
        self.partition = partition
        self.started = now
        self.last: dict[int, float] = {}
        self._pending: dict[int, list[T]] = {}

    def applied(self, records: Iterable[T]) -> None:
        """``records`` were applied; their effects are in the next checkpoint of their partition."""
        pending, part = self._pending, self.partition
        for r in records:
            p = part(r)
            if p not in pending:
                pending[p] = []
                self.last.setdefault(p, self.started)
            pending[p].append(r)

    def due(self, now: float) -> list[int]:
        """The partitions to checkpoint at ``now`` (a call about once a second), oldest checkpoint first."""
        late = sorted((t, p) for p, t in self.last.items() if now - t >= self.every_s)
        return [p for _, p in late[:math.ceil(len(self.last) / max(self.every_s, 1.0))]]

    def checkpointed(self, now: float, partitions: Iterable[int] | None = None,
                     hold: Callable[[T], bool] | None = None) -> list[T]:
        """The feeders of ``partitions`` (None: all, and forget the partitions) are checkpointed: the records covered.

        Acknowledge them once the checkpoint is written. Call it in the same step as taking the checkpoint,
        with no record applied in between. Records for which ``hold`` is true (an earlier offset of their
        partition is not applied yet) wait for a later checkpoint; with ``partitions=None`` they are dropped
        (never acknowledged: they are read again, and skipped, after the partitions move).
        """
        if partitions is None:  # e.g. before partitions move: what comes next may be other partitions
            done = [r for recs in self._pending.values() for r in recs]
            self._pending.clear()
            self.last.clear()
            self.started = now  # partitions seen from now on count from here
            return done if hold is None else [r for r in done if not hold(r)]
        done = []
        for p in partitions:
            for r in self._pending.pop(p, []):
                if hold is not None and hold(r):
                    self._pending.setdefault(p, []).append(r)
                else:
                    done.append(r)
            self.last[p] = now
        return done


class QuietPartitions:
    """Which partitions have stopped: read to their end, nothing of theirs waiting, for ``quiet_s`` in a row.

    Parameters
    ----------
    quiet_s : float
        Seconds (the caller's monotonic clock) a partition must stay read to its end.

    Examples
    --------
    >>> q = QuietPartitions(30.0)
    >>> q.update({("meters", 0), ("meters", 1)}, waiting={("meters", 1)}, now=100.0)
    set()
    >>> q.update({("meters", 0), ("meters", 1)}, waiting=set(), now=130.0)
    {('meters', 0)}
    >>> q.update({("meters", 1)}, waiting=set(), now=161.0)  # meters 0 got new records: it starts again
    {('meters', 1)}
    """

    def __init__(self, quiet_s: float) -> None:
        self.quiet_s = quiet_s
        self._since: dict[tuple[str, int], float] = {}

    def restart(self, partitions: Collection[tuple[str, int]]) -> None:
        """``partitions`` delivered records: their quiet time starts again at the next :meth:`update`."""
        for tp in partitions:
            self._since.pop(tp, None)

    def update(self, drained: Collection[tuple[str, int]], waiting: Collection[tuple[str, int]],
               now: float) -> set[tuple[str, int]]:
        """``drained``: partitions read to their end now; ``waiting``: those with records not applied yet.
        Returns the partitions quiet for ``quiet_s``."""
        since = self._since
        for tp in [tp for tp in since if tp not in drained or tp in waiting]:
            del since[tp]
        for tp in drained:
            if tp not in waiting:
                since.setdefault(tp, now)
        return {tp for tp, t in since.items() if now - t >= self.quiet_s}
