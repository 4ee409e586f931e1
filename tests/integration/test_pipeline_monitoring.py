"""The running pipeline (``evgrid worker`` + ``evgrid monitor``) fills every dashboard panel from simulated data,
and keeps producing setpoints while its InfluxDB is down (a private influxd), catching up after a restart.

Panel queries are executed the way ``test_dashboards`` does (macros substituted, ``$feeder`` each simulated
feeder and "All"), but here the data comes from the real processes, not from a hand-made sample.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("grafana_foundation_sdk", reason="dev dependency grafana-foundation-sdk is not installed")

from test_dashboards import _panels, _relative, _variable_values, influxql, non_null_values, substitute

from streams.contracts.codec import default_codec
from streams.contracts.models import (
    GridSignal,
    IncentiveEvent,
    IncentiveResponse,
    SiteRegistration,
    decode_record,
    encode_record,
)
from streams.contracts.topics import (
    CHARGER_REGISTRY,
    GRID_SIGNALS,
    INCENTIVE_RESPONSES,
    INCENTIVES,
    METER_READINGS,
    SETPOINTS,
)
from streams.kafka.clients import consume_all, make_producer, produce_records
from streams.settings import Settings
from streams.simulate import SimConfig
from streams.simulate.produce import run_simulation
from streams.sinks.provisioning import dashboard_json
from tests.fixtures.private_influx import PrivateInflux

pytestmark = [pytest.mark.integration]

HOUR_MS = 3_600_000
FEEDERS = ("F001", "F002")
IMPORT_LIMIT_KW = 3.0  # far below home load + charging: plans cut requests, so the dispatcher makes offers


class MonitorProcess:
    """An ``evgrid monitor`` subprocess; its sink counters come from its stats file."""

    def __init__(self, env: dict[str, str], data_dir: Path, log: Path) -> None:
        self.data_dir, self.log = data_dir, log
        full_env = {**os.environ, **env, "EVGRID_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
        with open(log, "ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from streams.cli import app; app()", "monitor", "--loglevel", "warn"],
                env=full_env, stdout=fh, stderr=subprocess.STDOUT)

    def stats(self) -> dict[str, Any]:
        files = sorted(self.data_dir.glob(f"*/monitor-stats-{self.proc.pid}.json"))
        return json.loads(files[0].read_text()) if files else {}

    def alive(self) -> None:
        assert self.proc.poll() is None, f"monitor exited; log:\n{self.log.read_text()[-3000:]}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def start_monitor(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], MonitorProcess]]:
    procs: list[MonitorProcess] = []

    def start(env: dict[str, str]) -> MonitorProcess:
        m = MonitorProcess(env, tmp_path / "worker-data", tmp_path / "monitor.log")
        procs.append(m)
        return m

    yield start
    for m in procs:
        m.stop()


@pytest.fixture
def influx_db(influx_url: str) -> Iterator[str]:
    """A database of this test's own on the shared InfluxDB (dropped afterwards)."""
    db = f"evgrid_it_{uuid.uuid4().hex[:10]}"
    influxql(influx_url, "", f'CREATE DATABASE "{db}"')
    try:
        yield db
    finally:
        influxql(influx_url, "", f'DROP DATABASE "{db}"')


def _env(s: Settings, url: str, db: str, **extra: str) -> dict[str, str]:
    return {"EVGRID_BOOTSTRAP_SERVERS": s.bootstrap_servers, "EVGRID_TOPIC_PREFIX": s.topic_prefix,
            "EVGRID_INFLUX_URL": url, "EVGRID_INFLUX_BUCKET": f"{db}/autogen", "EVGRID_INFLUX_FLUSH_SECONDS": "0.5",
            "EVGRID_INFLUX_STATS_SECONDS": "1", "EVGRID_MONITOR_PIPELINE_SECONDS": "1",
            # a 2-hour naive season, so a few hours of event time score forecasts against the baseline
            "EVGRID_METRICS_NAIVE_SEASON_HOURS": "2", **extra}


def _floor_now_ms() -> int:
    return int(time.time() // 900 * 900 * 1000)


def _tight_limits(s: Settings, start_ms: int, end_ms: int) -> int:
    codec = default_codec()
    sigs = [GridSignal(signal_id=f"tight-{f}", feeder_id=f, issued_at=start_ms, valid_from=start_ms,
                       valid_until=end_ms, import_limit_kw=IMPORT_LIMIT_KW) for f in FEEDERS]
    msgs = [(g.feeder_id.encode(), encode_record(codec, g), start_ms, None) for g in sigs]
    assert produce_records(make_producer(s), s.topic_prefix + GRID_SIGNALS, msgs).failed == 0
    return len(msgs)


def _site_statuses(s: Settings, at_ms: int) -> int:
    """A suspended site per feeder: the worker tells the utility (the control room's notices panel)."""
    codec = default_codec()
    sites = [SiteRegistration(site_id=f"it-site-{f}", feeder_id=f, interconnection_class="parallel_exporting",
                              export_limit_kw=5.0, registered_at=at_ms, interconnection_status="suspended",
                              status_since=at_ms) for f in FEEDERS]
    msgs = [(x.feeder_id.encode(), encode_record(codec, x), at_ms, None) for x in sites]
    assert produce_records(make_producer(s), s.topic_prefix + CHARGER_REGISTRY, msgs).failed == 0
    return len(msgs)


def _processed(st: dict[str, Any]) -> int:
    return sum(st["accepted"].values()) + sum(st["rejected"].values()) + st.get("skipped_replayed", 0)


def _wait(cond: Callable[[], Any], timeout: float, what: str, check: Callable[[], None] = lambda: None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check()
        value = cond()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _scalar(url: str, db: str, q: str) -> Any:
    result = influxql(url, db, q)
    series = result.get("series", [])
    return series[0]["values"][0][1] if series else None


@pytest.mark.timeout(420)
def test_pipeline_fills_every_dashboard_panel(topic_namespace: Settings, start_worker: Any, start_monitor: Any,
                                              influx_url: str, influx_db: str) -> None:
    s, db = topic_namespace, influx_db
    end_ms = _floor_now_ms()
    # a whole day, not 8 h: offers need a connected, export-capable car in a window where the limit binds, and an
    # 8 h window ending at some hours of the day had none (the test failed at 15:45 UTC, passed at 14:30). Not
    # more than a day: the monitor keeps buckets 26 h behind the newest event time it saw on any topic, and a
    # setpoint read after its bucket was forgotten starts it afresh (30 h failed: 411 setpoints, fewer counted)
    cfg = SimConfig(feeders=len(FEEDERS), homes=8, chargers=6, hours=24, seed=11, bad_rate=0.05,
                    start_ms=end_ms - 24 * HOUR_MS)
    produced = _tight_limits(s, cfg.start_ms - HOUR_MS, end_ms + 6 * HOUR_MS)
    produced += _site_statuses(s, cfg.start_ms + 12 * HOUR_MS)
    sim = run_simulation(s, cfg, progress=False)
    assert sim.delivery.failed == 0
    produced += sum(sim.summary.per_topic.values())

    env = _env(s, influx_url, db)
    worker = start_worker(env)
    monitor = start_monitor(env)
    stats = worker.wait_for(lambda st: _processed(st) >= produced and st.get("held_telemetry", 0) == 0,
                              timeout=240, what="all input processed and applied")

    # drive the incentive panels: accept one offer the dispatcher made on each feeder
    codec = default_codec()
    offers = [decode_record(codec, m.value()) for m in consume_all(s, [s.topic_prefix + INCENTIVES], timeout=30)]
    first = {o.feeder_id: o for o in reversed(offers) if isinstance(o, IncentiveEvent)}
    assert first, "a 3 kW import limit makes the dispatcher offer incentives"  # (not necessarily on each feeder)
    responses = [IncentiveResponse(offer_id=o.offer_id, feeder_id=o.feeder_id, customer_id=o.customer_id,
                                   accepted=True, responded_at=o.issued_at + 60_000) for o in first.values()]
    assert produce_records(make_producer(s), s.topic_prefix + INCENTIVE_RESPONSES, [
        (r.feeder_id.encode(), encode_record(codec, r), r.responded_at, None) for r in responses]).failed == 0

    setpoints = consume_all(s, [s.topic_prefix + SETPOINTS], timeout=30)
    assert setpoints
    check = monitor.alive
    _wait(lambda: _scalar(influx_url, db, 'SELECT sum("accepted") FROM "incentives"') == len(responses), 120,
          "the accepted offer in InfluxDB", check)
    # every setpoint on the topic is counted once in the per-feeder buckets (re-written buckets overwrite)
    _wait(lambda: _scalar(influx_url, db, 'SELECT sum("offered") FROM "incentives"') == len(offers), 60,
          f"{len(offers)} offers counted in InfluxDB", check)
    _wait(lambda: _scalar(influx_url, db, 'SELECT sum("count") FROM "setpoints"') == len(setpoints), 120,
          f"{len(setpoints)} setpoints counted in InfluxDB", check)
    # the worker's dead-letter counts by reason arrive complete
    stats = worker.stats()
    by_reason: Counter[str] = Counter()
    for key, n in stats["rejected"].items():
        by_reason[key.split("/", 1)[1]] += n
    # (unknown_charger telemetry still held within its registration grace is not rejected yet)
    assert len(by_reason) >= 6 and sum(by_reason.values()) >= sum(sim.summary.bad_per_reason.values()) - 5

    def dead_in_influx() -> dict[str, int]:
        r = influxql(influx_url, db, 'SELECT sum("count") FROM "dead_letters" GROUP BY "reason"')
        return {x["tags"]["reason"]: x["values"][0][1] for x in r.get("series", [])}

    _wait(lambda: dead_in_influx() == dict(by_reason), 60, f"dead letters by reason {dict(by_reason)}", check)
    _wait(lambda: _scalar(influx_url, db, 'SELECT count("p95_ms") FROM "latency"'), 60, "setpoint latency", check)
    _wait(lambda: _scalar(influx_url, db, 'SELECT count("lag") FROM "consumer_lag"'), 60, "consumer lag", check)
    loads = influxql(influx_url, db, 'SELECT count("load_kw") FROM "feeder" GROUP BY "feeder"')["series"]
    assert {x["tags"]["feeder"]: x["values"][0][1] >= 28 for x in loads} == dict.fromkeys(FEEDERS, True)
    limit = _scalar(influx_url, db, 'SELECT max("import_limit_kw") FROM "feeder"')
    assert limit == IMPORT_LIMIT_KW  # the limit in force comes from the GridSignal on the input topic
    assert monitor.stats()["dropped"] == 0

    checked = _run_every_panel_query(influx_url, db)
    assert checked >= 30, checked


def _run_every_panel_query(url: str, db: str) -> int:
    now_ms = int(time.time() * 1000)
    checked = 0
    for name in ("control-room", "forecast-quality", "pipeline-health"):
        board = dashboard_json(name)
        values = _variable_values(url, db, board)
        if "feeder" in values:
            assert values["feeder"] == list(FEEDERS)
        from_ms, to_ms = _relative(board["time"]["from"], now_ms), _relative(board["time"]["to"], now_ms)
        for panel in _panels(board):
            for target in panel.get("targets", []):
                selections = [values]
                if "$feeder" in target["query"]:
                    selections += [{**values, "feeder": [f]} for f in values["feeder"]]
                for variables in selections:
                    q = substitute(target["query"], variables, from_ms, to_ms, "15m")
                    assert non_null_values(influxql(url, db, q)) > 0, f"{name}: {panel['title']!r} is empty: {q}"
                    checked += 1
    return checked


@pytest.mark.timeout(420)
def test_influxdb_outage_never_stops_setpoints(topic_namespace: Settings, start_worker: Any, start_monitor: Any,
                                               private_influx: PrivateInflux) -> None:
    s, url = topic_namespace, private_influx.url
    influxql(url, "", 'CREATE DATABASE "evgrid"')
    env = _env(s, url, "evgrid", EVGRID_INFLUX_BUFFER_POINTS="1000", EVGRID_INFLUX_BATCH_POINTS="500",
               EVGRID_INFLUX_TIMEOUT_MS="1000", EVGRID_INFLUX_RETRY_MAX_SECONDS="0.5")
    end_ms = _floor_now_ms()
    # ~300 points before the outage fit the 1,000-point buffer; the ~2,400 of the outage do not
    first = SimConfig(feeders=len(FEEDERS), homes=6, chargers=6, hours=2, seed=5, start_ms=end_ms - 8 * HOUR_MS)
    second = SimConfig(feeders=len(FEEDERS), homes=6, chargers=6, hours=6, seed=5, start_ms=end_ms - 6 * HOUR_MS)
    produced = sum(run_simulation(s, first, progress=False).summary.per_topic.values())
    worker = start_worker(env)
    monitor = start_monitor(env)
    worker.wait_for(lambda st: _processed(st) >= produced, timeout=180, what="first half processed")
    _wait(lambda: _scalar(url, "evgrid", 'SELECT count("load_kw") FROM "feeder"'), 60, "feeder points written",
          monitor.alive)
    before = len(consume_all(s, [s.topic_prefix + SETPOINTS], timeout=30))
    assert before > 0 and monitor.stats()["dropped"] == 0

    private_influx.stop()
    outage_ms = int(time.time() * 1000)
    produced += sum(run_simulation(s, second, progress=False).summary.per_topic.values())
    worker.wait_for(lambda st: _processed(st) >= produced, timeout=180, what="second half processed while down")
    during = len(consume_all(s, [s.topic_prefix + SETPOINTS], timeout=30))
    assert during > before, "setpoints keep flowing to evgrid.setpoints while InfluxDB is down"
    st = _wait(lambda: (m := monitor.stats()) and m["dropped"] > 0 and m["write_errors"] > 0 and m, 60,
               "the monitor buffering and dropping", monitor.alive)
    assert st["buffered"] <= 1000

    private_influx.start()
    restart_ms = int(time.time() * 1000)
    # the dropped-point counter becomes visible, and fresh points (written after the restart) arrive
    dropped = _wait(lambda: _scalar(url, "evgrid", 'SELECT max("dropped_points") FROM "sink" WHERE "worker" =~ '
                                                   '/^monitor/'), 60, "dropped counter in InfluxDB", monitor.alive)
    assert dropped > 0
    _wait(lambda: _scalar(url, "evgrid", f'SELECT count("events") FROM "throughput" WHERE time > {restart_ms}ms'),
          60, "writes resumed", monitor.alive)
    # per-feeder writes resume too: one more reading per feeder closes the intervals still open
    codec = default_codec()
    late = end_ms + 30 * 60_000
    flush = [(f.encode(), codec.encode("MeterReading", {"meter_id": f"{f}-FLUSH", "feeder_id": f, "timestamp": late,
                                                        "active_power_kw": 1.0}), late, None) for f in FEEDERS]
    assert produce_records(make_producer(s), s.topic_prefix + METER_READINGS, flush).failed == 0
    _wait(lambda: _scalar(url, "evgrid", f'SELECT count("load_kw") FROM "feeder" WHERE time >= {end_ms - HOUR_MS}ms'),
          60, "feeder points of intervals closed after the restart", monitor.alive)
    assert worker.proc.poll() is None and outage_ms < restart_ms
