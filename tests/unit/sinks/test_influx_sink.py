"""InfluxSink buffer policy with injected writers (no server): never blocks, drops oldest, catches up."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from streams.settings import Settings
from streams.sinks.influx import InfluxSink, WriteRejected
from streams.sinks.metrics import make_point

pytestmark = pytest.mark.timeout(30)


class FakeWriter:
    """Records batches; fails while ``down`` is set; blocks while ``gate`` is cleared."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.down = False
        self.reject = False
        self.attempts = 0
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.closed = False

    def __call__(self, lines: list[str]) -> None:
        self.attempts += 1
        self.entered.set()
        self.gate.wait()
        if self.down:
            raise ConnectionError("influxdb down")
        if self.reject:
            raise WriteRejected("HTTP 400: field type conflict")
        self.batches.append(list(lines))

    def close(self) -> None:
        self.closed = True

    @property
    def lines(self) -> list[str]:
        return [line for b in self.batches for line in b]


def _lines(start: int, n: int) -> list[str]:
    return [f"m v={i}i {i}" for i in range(start, start + n)]


@pytest.fixture
def writer() -> FakeWriter:
    return FakeWriter()


@pytest.fixture
def sink(writer: FakeWriter) -> Iterator[InfluxSink]:
    s = InfluxSink(writer, buffer_points=10, batch_points=4, flush_seconds=0.02, retry_max_seconds=0.05,
                   stats_seconds=None)
    yield s
    s.close(timeout=2)


def test_writes_in_batches_in_order(sink: InfluxSink, writer: FakeWriter) -> None:
    sink.write(_lines(0, 9))
    assert sink.flush(5)
    assert writer.lines == _lines(0, 9)
    assert all(len(b) <= 4 for b in writer.batches)
    assert sink.stats.written == 9 and sink.stats.buffered == 0 and sink.stats.dropped == 0


def test_write_returns_while_the_writer_hangs(sink: InfluxSink, writer: FakeWriter) -> None:
    writer.gate.clear()
    sink.write(_lines(0, 1))
    assert writer.entered.wait(5)  # the background thread is stuck inside the writer now
    for k in range(10):  # a blocking write() would hang here and the test would time out
        sink.write(_lines(100 + 10 * k, 10))
    stats = sink.stats
    assert stats.buffered == 10  # bounded: 1 in flight + 9 newest
    assert stats.dropped == 91
    writer.gate.set()
    assert sink.flush(5)
    assert writer.lines == _lines(0, 1) + _lines(191, 9)


def test_drops_oldest_while_down_and_catches_up(sink: InfluxSink, writer: FakeWriter) -> None:
    writer.down = True
    sink.write(_lines(0, 6))
    assert not sink.flush(0.3)  # cannot drain while down; must not raise either
    sink.write(_lines(6, 9))  # 15 points into a buffer of 10
    assert sink.stats.dropped == 5
    assert sink.stats.write_errors >= 1 and "influxdb down" in (sink.stats.last_error or "")
    writer.down = False
    assert sink.flush(5)
    assert writer.lines == _lines(5, 10)  # the oldest five are gone, the rest in order
    assert sink.stats.written == 10 and sink.stats.buffered == 0


def test_rejected_batch_is_counted_not_retried(sink: InfluxSink, writer: FakeWriter) -> None:
    writer.reject = True
    sink.write(_lines(0, 3))
    assert sink.flush(5)
    attempts = writer.attempts
    assert sink.stats.rejected == 3 and sink.stats.written == 0
    writer.reject = False
    sink.write(_lines(3, 2))
    assert sink.flush(5)
    assert writer.lines == _lines(3, 2)
    assert writer.attempts == attempts + 1


def test_flush_waits_for_the_points_given_so_far_not_for_later_ones() -> None:
    def slow(lines: list[str]) -> None:  # slower than the feed below: the buffer never empties
        time.sleep(0.02)

    s = InfluxSink(slow, batch_points=10, flush_seconds=0.01, stats_seconds=None)
    stop = threading.Event()

    def feed() -> None:  # a running control path
        i = 0
        while not stop.is_set():
            s.write(_lines(i, 1))
            i += 1
            time.sleep(0.0005)

    t = threading.Thread(target=feed)
    t.start()
    try:
        time.sleep(0.1)
        given = s.stats.written + s.stats.buffered
        assert s.flush(10)
        assert s.stats.written >= given
        assert s.stats.buffered > 0  # later points still waiting: flush did not wait for them
    finally:
        stop.set()
        t.join()
        s.close(timeout=0.1)


def test_metric_points_and_none_are_accepted(sink: InfluxSink, writer: FakeWriter) -> None:
    sink.write([make_point("feeder", 1_700_000_000_000, {"feeder": "f1"}, {"load_kw": 1.5}), None])
    assert sink.flush(5)
    assert writer.lines == ["feeder,feeder=f1 load_kw=1.5 1700000000000"]


def test_self_metric_reports_dropped_points(writer: FakeWriter) -> None:
    now = [1_700_000_000.0]
    s = InfluxSink(writer, buffer_points=5, batch_points=100, flush_seconds=0.02, retry_max_seconds=0.05,
                   stats_seconds=60.0, worker="w1", clock=lambda: now[0])
    try:
        writer.down = True
        s.write(_lines(0, 8))
        assert not s.flush(0.2)
        writer.down = False
        now[0] += 61.0  # the next cycle enqueues the sink's own point
        deadline = time.monotonic() + 5
        while not (stats_lines := [line for line in writer.lines if line.startswith("sink,")]):
            assert time.monotonic() < deadline, writer.lines
            time.sleep(0.01)
        assert "dropped_points=3i" in stats_lines[-1] and "worker=w1" in stats_lines[-1]
    finally:
        s.close(timeout=2)


def test_close_drains_writes_final_stats_and_closes_writer(writer: FakeWriter) -> None:
    s = InfluxSink(writer, buffer_points=100, batch_points=10, flush_seconds=10.0, stats_seconds=3600.0)
    s.write(_lines(0, 3))
    assert s.close(timeout=5)
    assert writer.lines[:3] == _lines(0, 3)
    assert writer.lines[-1].startswith("sink,worker=evgrid ")
    assert writer.closed
    s.write(_lines(3, 2))  # after close: counted, not buffered
    assert s.stats.dropped == 2 and s.stats.buffered == 0


def test_close_gives_up_when_influxdb_stays_down(writer: FakeWriter) -> None:
    s = InfluxSink(writer, buffer_points=100, batch_points=10, flush_seconds=0.02, retry_max_seconds=0.05,
                   stats_seconds=None)
    writer.down = True
    s.write(_lines(0, 3))
    assert s.close(timeout=0.3) is False
    assert s.stats.buffered == 3 and s.stats.written == 0


def test_from_settings_uses_the_monitoring_settings(writer: FakeWriter) -> None:
    settings = Settings(influx_buffer_points=7, influx_batch_points=3, influx_flush_seconds=0.01,
                        influx_stats_seconds=1000.0)
    s = InfluxSink.from_settings(settings, worker="w9", writer=writer)
    try:
        writer.down = True
        s.write(_lines(0, 12))
        assert s.stats.dropped == 5
        writer.down = False
        assert s.flush(5)
        assert all(len(b) <= 3 for b in writer.batches)
    finally:
        s.close(timeout=2)


def test_rejects_bad_bounds(writer: FakeWriter) -> None:
    with pytest.raises(ValueError):
        InfluxSink(writer, buffer_points=0)
