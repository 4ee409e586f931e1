"""Faults on the real broker with real worker processes: a worker killed while another takes over and then
rejoins, the broker restarted under a running worker, and a backlog caught up without stale plans."""

from __future__ import annotations

import time
import uuid

import pytest

from streams.contracts.codec import default_codec
from streams.contracts.models import ChargerSetpoint, decode_record
from streams.contracts.topics import FORECASTS, INCENTIVES, SETPOINTS, WEATHER
from streams.kafka.admin import create_topics, delete_topics
from streams.kafka.clients import consume_all
from streams.settings import Settings
from streams.simulate import SimConfig, simulate
from tests.fixtures.streams import outputs, produce_messages

pytestmark = [pytest.mark.integration]

OUTPUTS = (FORECASTS, SETPOINTS, INCENTIVES)


_produce = produce_messages


def _outputs(s: Settings) -> dict[str, set[str]]:
    return outputs(s, OUTPUTS)


def _processed(procs) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    stats = [p.stats() for p in procs]
    done = sum(sum(st.get("accepted", {}).values()) + sum(st.get("rejected", {}).values()) for st in stats)
    return done, sum(st.get("held_telemetry", 0) for st in stats)


def _namespace(bootstrap: str, **kw: object) -> Settings:
    s = Settings(bootstrap_servers=bootstrap, topic_prefix=f"flt-{uuid.uuid4().hex[:8]}.", topic_retention_ms=-1,
                 **kw)  # type: ignore[arg-type]
    create_topics(s)
    return s


def _stream(hours: float, feeders: int = 4, seed: int = 9) -> list:  # type: ignore[type-arg]
    now = int(time.time() // 900 * 900 * 1000)
    cfg = SimConfig(feeders=feeders, homes=6, chargers=4, hours=hours, seed=seed,
                    start_ms=now - int((hours + 1) * 3_600_000))
    return [m for m in simulate(cfg) if m.topic != WEATHER]


@pytest.mark.timeout(600)
def test_worker_killed_while_another_takes_over_then_rejoins(kafka_bootstrap: str, start_worker) -> None:
    msgs = _stream(10)
    ref = _namespace(kafka_bootstrap)
    env = {"EVGRID_BOOTSTRAP_SERVERS": kafka_bootstrap, "EVGRID_MONITOR_ENABLED": "false"}
    try:
        single = start_worker({**env, "EVGRID_TOPIC_PREFIX": ref.topic_prefix}, name="ref")
        _produce(ref, msgs)
        single.wait_for(lambda st: sum(st["accepted"].values()) + sum(st["rejected"].values()) >= len(msgs)
                        and st["held_telemetry"] == 0, timeout=240, what="reference run")
        time.sleep(3)
        expected = _outputs(ref)
    finally:
        delete_topics(ref)

    s = _namespace(kafka_bootstrap)
    try:
        wenv = {**env, "EVGRID_TOPIC_PREFIX": s.topic_prefix}
        a, b = start_worker(wenv, name="a"), start_worker(wenv, name="b")
        for w in (a, b):
            w.wait_for(lambda st: True, timeout=120, what="worker up")
        time.sleep(3)
        half = len(msgs) // 2
        _produce(s, msgs[:half])
        for w in (a, b):
            w.wait_for(lambda st: sum(st["accepted"].values()) > 0, timeout=120, what="both own partitions")
        b.stop(kill=True)  # a takes over b's partitions from the changelog
        _produce(s, msgs[half:])
        before = sum(a.stats()["accepted"].values())
        a.wait_for(lambda st: sum(st["accepted"].values()) > before + 200, timeout=240, what="a took over")
        b2 = start_worker(wenv, name="b2")  # b comes back: the partitions rebalance again
        deadline = time.monotonic() + 300
        got: dict[str, set[str]] = {}
        while time.monotonic() < deadline:
            got = _outputs(s)
            if got == expected:
                break
            time.sleep(3)
        assert b2.stats(), "the rejoined worker ran"
        assert got[FORECASTS] == expected[FORECASTS]
        assert got[SETPOINTS] == expected[SETPOINTS]
        assert got == expected, "after de-duplication the outputs equal the run without the crash"
    finally:
        delete_topics(s)


@pytest.mark.timeout(400)
def test_worker_reconnects_after_broker_restart(private_kafka, start_worker) -> None:
    s = _namespace(private_kafka.bootstrap)
    msgs = _stream(4, feeders=2)
    half = len(msgs) // 2
    w = start_worker({"EVGRID_BOOTSTRAP_SERVERS": s.bootstrap_servers, "EVGRID_TOPIC_PREFIX": s.topic_prefix,
                      "EVGRID_MONITOR_ENABLED": "false"})
    _produce(s, msgs[:half])
    w.wait_for(lambda st: sum(st["accepted"].values()) + sum(st["rejected"].values()) >= half, timeout=180,
               what="first half")
    private_kafka.kill()
    time.sleep(3)
    private_kafka.start()
    _produce(s, msgs[half:])
    stats = w.wait_for(lambda st: sum(st["accepted"].values()) + sum(st["rejected"].values()) >= len(msgs),
                       timeout=240, what="second half after the broker restart")
    assert sum(stats["rejected"].values()) == 0
    assert sum(stats["accepted"].values()) == len(msgs), "nothing lost or applied twice"


@pytest.mark.timeout(300)
def test_backlog_is_caught_up_without_plans_for_intervals_already_over(kafka_bootstrap: str, start_worker) -> None:
    """A worker started on an hour of backlog skips plans for intervals over (counter) and plans the live ones."""
    s = _namespace(kafka_bootstrap, interval_minutes=5)
    now_ms = int(time.time() * 1000)
    cfg = SimConfig(feeders=2, homes=4, chargers=6, hours=1.2, seed=3, start_ms=now_ms - 70 * 60_000,
                    plug_in_probability=1.0)
    msgs = [m for m in simulate(cfg) if m.topic != WEATHER and m.timestamp <= now_ms]
    _produce(s, msgs)
    started = int(time.time() * 1000)
    w = start_worker({"EVGRID_BOOTSTRAP_SERVERS": kafka_bootstrap, "EVGRID_TOPIC_PREFIX": s.topic_prefix,
                      "EVGRID_INTERVAL_MINUTES": "5", "EVGRID_MAX_PLAN_LAG_SECONDS": "60",
                      "EVGRID_MONITOR_ENABLED": "false"})
    stats = w.wait_for(lambda st: sum(st["accepted"].values()) >= len(msgs) and st["held_telemetry"] == 0,
                       timeout=180, what="backlog caught up")
    assert stats["skipped_stale_plans"] >= 2 * 8, "about an hour of 5-minute plans per feeder skipped"
    codec = default_codec()
    setpoints = [decode_record(codec, m.value()) for m in consume_all(s, [s.topic_prefix + SETPOINTS], timeout=30)]
    planned = [sp for sp in setpoints if isinstance(sp, ChargerSetpoint)]
    stale = [sp for sp in planned if sp.issued_at + 5 * 60_000 < started - 60_000 - 120_000]
    assert not stale, f"{len(stale)} setpoints for intervals already over"
    delete_topics(s)
