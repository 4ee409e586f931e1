"""InfluxSink against real InfluxDB 1.8: exact round trip, and a private influxd frozen, stopped and restarted.

The outage test never touches the shared InfluxDB: it starts its own influxd (the binary ``infra/install.sh``
builds, the config of ``infra/influxdb/`` rendered with free ports and a data dir under ``tmp_path``).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

import pytest

from streams.contracts.models import ChargerSetpoint
from streams.sinks.influx import InfluxSink, InfluxWriter
from streams.sinks.metrics import make_point, setpoint_points
from tests.fixtures.private_influx import PrivateInflux, wait_until

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000


def query(url: str, q: str, db: str = "") -> dict[str, Any]:
    params = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ms"})
    method = "GET" if q.lstrip().upper().startswith(("SELECT", "SHOW")) else "POST"
    with urllib.request.urlopen(urllib.request.Request(f"{url}/query?{params}", method=method), timeout=10) as r:
        result: dict[str, Any] = json.load(r)["results"][0]
    assert "error" not in result, result
    return result


def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for s in result.get("series", []):
        for v in s["values"]:
            out.append({**s.get("tags", {}), **dict(zip(s["columns"], v, strict=True))})
    return out


# --- shared InfluxDB: exact round trip ---------------------------------------------------------------


@pytest.mark.timeout(60)
def test_points_round_trip_exactly_through_the_v2_write_api(influx_url: str) -> None:
    db = f"evgrid_it_{uuid.uuid4().hex[:10]}"
    query(influx_url, f'CREATE DATABASE "{db}"')
    try:
        sink = InfluxSink(InfluxWriter(influx_url, f"{db}/autogen"), flush_seconds=0.05, stats_seconds=None)
        points = [make_point("feeder", T0 + i * 900_000, {"feeder": "feeder 1,north=x"},
                             {"load_kw": 100.0 + i / 3, "meters_reporting": 40 + i}) for i in range(50)]
        points.append(make_point("incentives", T0, {"feeder": "f\\2"}, {"offered": 3, "compensation": 1.25}))
        sink.write(points)
        assert sink.flush(20)
        assert sink.close()
        assert sink.stats.written == 51 and sink.stats.dropped == 0 and sink.stats.rejected == 0
        got = rows(query(influx_url, 'SELECT * FROM "feeder" GROUP BY "feeder"', db))
        assert [(r["time"], r["feeder"], r["load_kw"], r["meters_reporting"]) for r in got] == [
            (T0 + i * 900_000, "feeder 1,north=x", 100.0 + i / 3, 40 + i) for i in range(50)]
        (inc,) = rows(query(influx_url, 'SELECT * FROM "incentives" GROUP BY "feeder"', db))
        assert (inc["feeder"], inc["offered"], inc["compensation"]) == ("f\\2", 3, 1.25)
    finally:
        query(influx_url, f'DROP DATABASE "{db}"')


# --- private influxd: freeze, stop, restart ------------------------------------------------------------




class ControlLoop:
    """Stands in for the control path: emits one setpoint every few ms and hands its metric to the sink."""

    def __init__(self, sink: InfluxSink) -> None:
        self.sink = sink
        self.emitted = 0
        self.slowest_write_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = T0 + self.emitted * 1000
            sp = ChargerSetpoint(charger_id="c1", feeder_id="f1", sequence=self.emitted, setpoint_kw=7.0,
                                 valid_from=t, valid_until=t + 60_000, fallback_kw=0.0, plan_id="p", issued_at=t,
                                 reason="optimal")
            started = time.monotonic()
            self.sink.write(setpoint_points("f1", t, [sp]))
            self.slowest_write_s = max(self.slowest_write_s, time.monotonic() - started)
            self.emitted += 1
            time.sleep(0.002)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.mark.timeout(180)
def test_sink_survives_a_frozen_then_stopped_influxdb_and_catches_up(private_influx: PrivateInflux) -> None:
    url = private_influx.url
    query(url, 'CREATE DATABASE "evgrid"')
    sink = InfluxSink(InfluxWriter(url, "evgrid/autogen", timeout_ms=1_000), buffer_points=300,
                      batch_points=100, flush_seconds=0.05, retry_max_seconds=0.5, stats_seconds=0.3,
                      worker="outage-test")
    loop = ControlLoop(sink)
    loop.start()
    try:
        wait_until(lambda: loop.emitted >= 100, 20, "first setpoints")
        assert sink.flush(20)
        assert sink.stats.dropped == 0

        # slow: the server is frozen, writes hang until their timeout; the control path must not notice
        private_influx.freeze(True)
        before = loop.emitted
        wait_until(lambda: loop.emitted >= before + 500, 30, "setpoints while InfluxDB is frozen")
        wait_until(lambda: sink.stats.dropped > 0, 30, "drops while frozen")
        assert sink.stats.buffered <= 300
        private_influx.freeze(False)

        # down: the server is stopped; writes fail fast and the buffer keeps only the newest points
        private_influx.stop()
        errors, dropped, before = sink.stats.write_errors, sink.stats.dropped, loop.emitted
        wait_until(lambda: loop.emitted >= before + 800, 30, "setpoints while InfluxDB is down")
        wait_until(lambda: sink.stats.write_errors > errors, 30, "failed writes while down")
        assert sink.stats.dropped >= dropped + 800 - 300
        assert not sink.flush(0.3)

        # back: restart on the same data dir; the sink catches up by itself
        private_influx.start()
        loop.stop()
        emitted = loop.emitted
        assert sink.flush(60), sink.stats
        final = sink.stats
        assert final.buffered == 0 and final.rejected == 0
    finally:
        loop.stop()
        sink.close(timeout=10)

    stored = rows(query(url, 'SELECT "count" FROM "setpoints"', "evgrid"))
    times = {r["time"] for r in stored}
    assert T0 + (emitted - 1) * 1000 in times  # the newest setpoint written during the outage arrived
    assert T0 in times  # and the ones written before it
    assert emitted - final.dropped <= len(times) < emitted  # only dropped points are missing
    sink_rows = rows(query(url, 'SELECT last("dropped_points") FROM "sink" WHERE "worker" = \'outage-test\'',
                           "evgrid"))
    assert sink_rows and sink_rows[0]["last"] > 0  # the dropped-point counter is visible in InfluxDB
    # the control path never waited for InfluxDB: no write() call took anywhere near the 1 s write timeout
    assert loop.slowest_write_s < 0.5, loop.slowest_write_s
