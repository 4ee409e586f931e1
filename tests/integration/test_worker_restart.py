"""A worker SIGKILLed mid-stream and started again continues from its checkpointed state: no input skipped,
and the forecasts (deduplicated by feeder and issue time) equal those of an uninterrupted run, so the first
forecast after the restart comes from the trained model, not from a new one."""

from __future__ import annotations

import time

import pytest

from streams.contracts.codec import default_codec
from streams.contracts.models import DemandForecast, decode_record
from streams.contracts.topics import FORECASTS, WEATHER
from streams.ingest.validate import RawMessage
from streams.kafka.clients import consume_all
from streams.pipeline.worker import Emit, FeederWorker
from streams.settings import Settings, pipeline_config
from streams.simulate import SimConfig, simulate
from tests.fixtures.streams import produce_messages

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]


def _forecasts_offline(msgs, settings: Settings) -> dict[tuple[str, int], DemandForecast]:  # type: ignore[no-untyped-def]
    """The uninterrupted run: the same pure pipeline in one process, in per-key order."""
    worker = FeederWorker(pipeline_config(settings))
    emit = Emit()
    for i, m in enumerate(msgs):
        out = worker.process([RawMessage(m.topic, 0, i, m.key, m.value, m.timestamp)], lambda f: None)
        emit.messages.extend(out.messages)
    emit.messages.extend(worker.tick(force=True).messages)
    codec = default_codec()
    found = {}
    for topic, _key, value in emit.messages:
        if topic == FORECASTS:
            fc = decode_record(codec, value)
            found[(fc.feeder_id, fc.issued_at)] = fc  # type: ignore[attr-defined]
    return found


def test_killed_worker_resumes_with_trained_models(topic_namespace: Settings, start_worker) -> None:
    s = topic_namespace
    now = int(time.time() // 900 * 900 * 1000)
    cfg = SimConfig(feeders=2, homes=6, chargers=2, hours=30, seed=11, start_ms=now - 31 * 3_600_000)
    # Weather is global and consumed by its own agent, so its arrival order is not reproducible: leave it out.
    msgs = [m for m in simulate(cfg) if m.topic != WEATHER]
    expected = _forecasts_offline(msgs, s)
    assert len(expected) > 150

    produce_messages(s, msgs)

    env = {"EVGRID_BOOTSTRAP_SERVERS": s.bootstrap_servers, "EVGRID_TOPIC_PREFIX": s.topic_prefix}
    first = start_worker(env, name="first")
    half = len(msgs) // 2
    first.wait_for(lambda st: sum(st["accepted"].values()) >= half, timeout=240, what="half the stream")
    first.stop(kill=True)

    second = start_worker(env, name="second")
    got: dict[tuple[str, int], DemandForecast] = {}
    codec = default_codec()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and set(got) != set(expected):
        second.wait_for(lambda st: True, timeout=120, what="second worker running")
        for m in consume_all(s, [s.topic_prefix + FORECASTS], timeout=30):
            fc = decode_record(codec, m.value())
            got[(fc.feeder_id, fc.issued_at)] = fc  # type: ignore[attr-defined]
        time.sleep(2)
    missing = sorted(set(expected) - set(got))
    assert not missing and set(got) == set(expected), (
        f"every interval forecast once the stream is through: {len(missing)} of {len(expected)} missing "
        f"({missing[:3]} ... {missing[-3:]}); first run {first.stats()}; second run {second.stats()}")
    # (kills at chosen points, every output topic compared: tests/integration/test_kill_points.py)
    for key, fc in expected.items():
        assert got[key] == fc, f"forecast {key} differs from the uninterrupted run"
