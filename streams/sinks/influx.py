"""A monitoring sink that never blocks its caller: bounded buffer, background batched writes to InfluxDB.

:class:`InfluxSink` takes points (:class:`~streams.sinks.metrics.MetricPoint` or line-protocol strings with
millisecond timestamps) into a bounded in-memory buffer and returns at once. A background thread writes
batches through a *writer* function; by default :class:`InfluxWriter` (influxdb-client, v2 write API, which
InfluxDB 1.8 serves at ``/api/v2/write`` with bucket ``database/retention-policy``, and 2.x/3.x natively).

When InfluxDB is slow or down the buffer fills; beyond ``buffer_points`` the OLDEST points are dropped and
counted (:attr:`SinkStats.dropped`). Failed batches go back to the front of the buffer and are retried with
exponential backoff, so the sink catches up when InfluxDB returns. A batch InfluxDB rejects as malformed
(HTTP 400/413/422) is dropped and counted as ``rejected`` rather than retried forever. Every
``stats_seconds`` the sink writes its own counters (measurement ``sink``), so dropped points are visible in
Grafana once writes succeed again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from streams.settings import Settings
from streams.sinks.metrics import MetricPoint, sink_point

__all__ = ["InfluxSink", "InfluxWriter", "SinkStats", "WriteFailed", "WriteRejected", "Writer"]

log = logging.getLogger(__name__)

Writer = Callable[[list[str]], None]
"""Writes a batch of line-protocol lines (ms precision); raises on failure (:class:`WriteRejected` = permanent)."""

PERMANENT_STATUS = frozenset({400, 413, 422})
INITIAL_BACKOFF_S = 0.25


class WriteFailed(Exception):
    """A write that may succeed later (server error, unknown database, auth); the batch is retried."""


class WriteRejected(Exception):
    """The server refused the batch's content; retrying cannot help (the batch is dropped and counted)."""


@dataclass(frozen=True)
class SinkStats:
    """Counters of an :class:`InfluxSink`, cumulative since it was created.

    Attributes
    ----------
    buffered : int
        Points waiting in the buffer (including a batch being written).
    written : int
        Points InfluxDB accepted.
    dropped : int
        Oldest points discarded because the buffer was full.
    rejected : int
        Points in batches InfluxDB refused as malformed.
    write_errors : int
        Failed write attempts (each retried later).
    last_error : str or None
        Text of the most recent failure.
    """

    buffered: int
    written: int
    dropped: int
    rejected: int
    write_errors: int
    last_error: str | None


class InfluxWriter:
    """Default :data:`Writer`: influxdb-client's synchronous v2 write API with millisecond precision.

    Parameters
    ----------
    url : str
        InfluxDB URL, e.g. ``http://127.0.0.1:8086``.
    bucket : str
        Bucket; ``database/retention-policy`` on InfluxDB 1.8.
    token : str
        Token; ``user:password`` on 1.8 with auth enabled, empty when auth is off.
    org : str
        Organisation (ignored by 1.8).
    timeout_ms : int
        HTTP timeout per write, milliseconds.
    """

    def __init__(self, url: str, bucket: str, token: str = "", org: str = "evgrid", timeout_ms: int = 5_000) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.bucket = bucket
        self.org = org
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=timeout_ms)
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def __call__(self, lines: list[str]) -> None:
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._api.write(bucket=self.bucket, org=self.org, record=lines,
                            write_precision=cast(WritePrecision, WritePrecision.MS))
        except ApiException as exc:
            detail = f"HTTP {exc.status}: {str(exc.body or exc.reason or '').strip():.300}"
            if exc.status in PERMANENT_STATUS:
                raise WriteRejected(detail) from exc
            raise WriteFailed(detail) from exc

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._api.close()
        self._client.close()


class InfluxSink:
    """Non-blocking, bounded, batching point sink (see the module docstring for the policy).

    Parameters
    ----------
    writer : Writer
        Function that writes one batch of line-protocol lines (e.g. :class:`InfluxWriter`); it is called
        only from the sink's background thread. If it has a ``close()`` method, :meth:`close` calls it.
    buffer_points : int
        Most points held; beyond it the oldest are dropped (EVGRID_INFLUX_BUFFER_POINTS).
    batch_points : int
        Most points per write (EVGRID_INFLUX_BATCH_POINTS).
    flush_seconds : float
        Longest a point waits before a write is attempted (EVGRID_INFLUX_FLUSH_SECONDS).
    retry_max_seconds : float
        Upper bound of the exponential backoff after failed writes (EVGRID_INFLUX_RETRY_MAX_SECONDS).
    stats_seconds : float or None
        How often the sink enqueues its own ``sink`` point; ``None`` disables it.
    worker : str
        Tag ``worker`` of the sink's own point.
    clock : callable
        Wall clock in seconds (for the self-metric timestamp; injectable for tests).
    """

    def __init__(self, writer: Writer, *, buffer_points: int = 100_000, batch_points: int = 5_000,
                 flush_seconds: float = 1.0, retry_max_seconds: float = 10.0, stats_seconds: float | None = 10.0,
                 worker: str = "evgrid", clock: Callable[[], float] = time.time) -> None:
        if buffer_points < 1 or batch_points < 1:
            raise ValueError("buffer_points and batch_points must be >= 1")
        self._writer = writer
        self._max = buffer_points
        self._batch = batch_points
        self._flush_s = flush_seconds
        self._retry_max_s = max(retry_max_seconds, flush_seconds)
        self._stats_s = stats_seconds
        self.worker = worker
        self._clock = clock
        self._buf: deque[MetricPoint | str] = deque()
        self._cond = threading.Condition()
        self._inflight = 0
        self._entered = self._left = 0  # points taken into the buffer / gone from the sink (written, rejected, dropped)
        self._written = self._dropped = self._rejected = self._errors = 0
        self._last_error: str | None = None
        self._flush_requests = 0
        self._closing = False
        self._failing = False
        self._next_stats = clock() + (stats_seconds or 0.0)
        self._thread = threading.Thread(target=self._run, name=f"influx-sink-{worker}", daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, worker: str = "evgrid",
                      writer: Writer | None = None) -> InfluxSink:
        """A sink configured from :class:`~streams.settings.Settings` (EVGRID_INFLUX_*)."""
        s = settings or Settings()
        if writer is None:
            writer = InfluxWriter(s.influx_url, s.influx_bucket, s.influx_token.get_secret_value(), s.influx_org,
                                  s.influx_timeout_ms)
        return cls(writer, buffer_points=s.influx_buffer_points, batch_points=s.influx_batch_points,
                   flush_seconds=s.influx_flush_seconds, retry_max_seconds=s.influx_retry_max_seconds,
                   stats_seconds=s.influx_stats_seconds, worker=worker)

    # --- caller side: never blocks on I/O ----------------------------------------------------------

    def write(self, points: Iterable[MetricPoint | str | None]) -> None:
        """Enqueue points and return at once; the oldest points are dropped if the buffer overflows.

        ``None`` entries are skipped, so ``sink.write([feeder_point(...)])`` needs no check. Points written
        after :meth:`close` are dropped and counted.
        """
        items = [p for p in points if p is not None]
        if not items:
            return
        with self._cond:
            if self._closing and not self._thread.is_alive():
                self._dropped += len(items)
                return
            self._buf.extend(items)
            self._entered += len(items)
            self._trim()
            if len(self._buf) >= self._batch:
                self._cond.notify_all()

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Ask for an immediate write and wait until every point given so far is written (or given up).

        Points written meanwhile (a running control path) are not waited for.

        Returns
        -------
        bool
            ``True`` if those points left the sink within ``timeout`` seconds, ``False`` otherwise (e.g.
            InfluxDB down). Never raises because of InfluxDB.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flush_requests += 1
            self._cond.notify_all()
            target = self._entered
            while self._left < target:
                if not self._thread.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(0.05 if remaining is None else min(remaining, 0.05))
            return True

    def close(self, timeout: float = 10.0) -> bool:
        """Write the sink's final counters, try to drain for up to ``timeout`` s, stop the thread.

        Returns ``True`` if everything was written. Idempotent.
        """
        if self._stats_s is not None and not self._closing:
            self.write([self._stats_point()])
        drained = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(max(timeout, 1.0))
        close = getattr(self._writer, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # closing a dead connection must not raise into shutdown
                log.debug("influx writer close failed", exc_info=True)
        return drained

    @property
    def stats(self) -> SinkStats:
        """A consistent snapshot of the counters."""
        with self._cond:
            return SinkStats(len(self._buf) + self._inflight, self._written, self._dropped, self._rejected,
                             self._errors, self._last_error)

    def __enter__(self) -> InfluxSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- background thread -------------------------------------------------------------------------

    def _trim(self) -> None:
        overflow = len(self._buf) + self._inflight - self._max
        while overflow > 0 and self._buf:
            self._buf.popleft()
            self._dropped += 1
            self._left += 1
            overflow -= 1

    def _stats_point(self) -> MetricPoint | None:
        with self._cond:
            return sink_point(self.worker, int(self._clock() * 1000), dropped=self._dropped,
                              buffered=len(self._buf) + self._inflight, written=self._written,
                              rejected=self._rejected, write_errors=self._errors)

    def _run(self) -> None:
        backoff = 0.0
        served_flushes = 0
        while True:
            with self._cond:
                wait = backoff or self._flush_s
                deadline = time.monotonic() + wait
                while not self._closing:
                    flush_asked = self._flush_requests != served_flushes and not backoff
                    if flush_asked or (len(self._buf) >= self._batch and not backoff):
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._closing:
                    return
                served_flushes = self._flush_requests
                if self._stats_s is not None and self._clock() >= self._next_stats:
                    self._next_stats = self._clock() + self._stats_s
                    own = self._stats_point()
                    if own is not None:
                        self._buf.append(own)
                        self._entered += 1
                        self._trim()
                batch = [self._buf.popleft() for _ in range(min(self._batch, len(self._buf)))]
                self._inflight = len(batch)
            if not batch:
                backoff = 0.0
                self._done(0)
                continue
            backoff = self._write_batch(batch, backoff)

    def _write_batch(self, batch: list[MetricPoint | str], backoff: float) -> float:
        lines, bad = _render(batch)
        try:
            if lines:
                self._writer(lines)
        except WriteRejected as exc:
            log.warning("InfluxDB rejected %d points: %s", len(batch), exc)
            with self._cond:
                self._rejected += len(batch)
                self._left += len(batch)
                self._last_error = str(exc)
            self._done(0)
            return 0.0
        except Exception as exc:
            with self._cond:
                self._errors += 1
                self._last_error = f"{type(exc).__name__}: {exc}"[:500]
                self._buf.extendleft(reversed(batch))
                self._inflight = 0
                self._trim()
                self._cond.notify_all()
            if not self._failing:
                log.warning("InfluxDB write failed, buffering (%s)", self._last_error)
                self._failing = True
            return min(self._retry_max_s, backoff * 2 if backoff else INITIAL_BACKOFF_S)
        if self._failing:
            log.warning("InfluxDB writes resumed")
            self._failing = False
        with self._cond:
            self._written += len(lines)
            self._rejected += bad
            self._left += len(batch)
        self._done(0)
        return 0.0

    def _done(self, inflight: int) -> None:
        with self._cond:
            self._inflight = inflight
            self._cond.notify_all()


def _render(batch: list[Any]) -> tuple[list[str], int]:
    lines: list[str] = []
    bad = 0
    for item in batch:
        if isinstance(item, MetricPoint):
            lines.append(item.to_line())
        elif isinstance(item, str) and item:
            lines.append(item)
        else:
            bad += 1
    return lines, bad
