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

from collections import deque
from collections.abc import Collection, Iterable, Sequence
from typing import Generic, Protocol, TypeVar

__all__ = ["AckSchedule", "Intake"]


class _Fetched(Protocol):
    @property
    def topic(self) -> str: ...


M = TypeVar("M", bound=_Fetched)
T = TypeVar("T")


class Intake(Generic[M]):
    """Fetched records waiting to be applied, control records ahead of bulk (meter) records.

    Parameters
    ----------
    bulk_topics : collection of str
        Topics whose records wait behind the others (the meter readings).
    max_bulk : int
        :meth:`wants_more` is False while this many bulk records wait.
    chunk : int
        At most this many records per :meth:`take`.

    Examples
    --------
    >>> from types import SimpleNamespace as R
    >>> intake = Intake({"meters"}, max_bulk=2, chunk=2)
    >>> intake.add(7, [R(topic="meters", n=1), R(topic="meters", n=2), R(topic="chargers", n=3)])
    >>> [r.n for r in intake.take()], intake.wants_more()
    ([3], False)
    >>> [r.n for r in intake.take()], len(intake)
    ([1, 2], 0)
    """

    def __init__(self, bulk_topics: Collection[str], max_bulk: int = 40_000, chunk: int = 2_000) -> None:
        self.bulk_topics = frozenset(bulk_topics)
        self.max_bulk, self.chunk = max_bulk, chunk
        self.generation: int | None = None
        self._urgent: deque[M] = deque()
        self._bulk: deque[M] = deque()

    def __len__(self) -> int:
        return len(self._urgent) + len(self._bulk)

    def add(self, generation: int, records: Iterable[M]) -> None:
        """Queue a fetch's records (partition order kept) of consumer ``generation``.

        Records of an older generation still waiting are dropped: after a rebalance the consumer re-fetches
        everything from the committed offsets.
        """
        if generation != self.generation:
            self.clear()
            self.generation = generation
        bulk, urgent, bulk_topics = self._bulk, self._urgent, self.bulk_topics
        for r in records:
            (bulk if r.topic in bulk_topics else urgent).append(r)

    def wants_more(self) -> bool:
        """Whether fetching ahead is allowed: fewer than ``max_bulk`` bulk records wait."""
        return len(self._bulk) < self.max_bulk

    def take(self) -> list[M]:
        """The next records to apply: waiting control records first, else bulk records (at most ``chunk``)."""
        queue = self._urgent or self._bulk
        return [queue.popleft() for _ in range(min(self.chunk, len(queue)))]

    def clear(self) -> None:
        """Drop every waiting record."""
        self._urgent.clear()
        self._bulk.clear()


class AckSchedule(Generic[T]):
    """Applied records held until the next checkpoint, which is due every ``every_s`` seconds.

    Parameters
    ----------
    every_s : float
        Seconds between checkpoints (the caller's monotonic clock).
    now : float
        The clock when the schedule starts.

    Examples
    --------
    >>> s = AckSchedule(5.0, now=100.0)
    >>> s.applied(["a", "b"])
    >>> s.due(104.0), s.due(105.0)
    (False, True)
    >>> s.checkpointed(105.0), s.due(109.0)
    (['a', 'b'], False)
    """

    def __init__(self, every_s: float, now: float) -> None:
        self.every_s = every_s
        self.last = now
        self._pending: list[T] = []

    def applied(self, records: Sequence[T]) -> None:
        """``records`` were applied; their effects are in the next checkpoint."""
        self._pending.extend(records)

    def due(self, now: float) -> bool:
        """Whether a checkpoint is due at ``now``."""
        return now - self.last >= self.every_s

    def checkpointed(self, now: float) -> list[T]:
        """A checkpoint is taken at ``now``: the records it covers, to acknowledge once it is written.

        Call it in the same step as taking the checkpoint, with no record applied in between.
        """
        done, self._pending = self._pending, []
        self.last = now
        return done
