"""A worker SIGKILLed at chosen points of its loop, then started again, emits what an uninterrupted run emits
(after de-duplication), and a record that makes the runtime raise is dead-lettered while every other record's
outputs stay as they were.

Points (``EVGRID_FAILPOINT``, :mod:`streams.agents.failpoints`): inside ``emit`` (half a chunk's outputs
sent), inside a checkpoint's delivery (sent, not confirmed, inputs not acknowledged), and after the
acknowledgement (faust commits meanwhile). Outputs are compared per topic as sets of records, dead letters by
source offset and reason.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from streams.contracts.codec import default_codec
from streams.contracts.models import DeadLetter, decode_record
from streams.contracts.topics import DEADLETTER, FORECASTS, INCENTIVES, SETPOINTS, SETTLEMENTS, WEATHER
from streams.kafka.admin import create_topics, delete_topics
from streams.kafka.clients import consume_all
from streams.settings import Settings
from streams.simulate import SimConfig, simulate
from tests.fixtures.streams import produce_messages, tail_flush

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

OUTPUTS = (FORECASTS, SETPOINTS, INCENTIVES, SETTLEMENTS, DEADLETTER)


def _stream() -> list[Any]:
    now = int(time.time() // 900 * 900 * 1000)
    cfg = SimConfig(feeders=3, homes=5, chargers=4, hours=6, seed=17, start_ms=now - 7 * 3_600_000,
                    plug_in_probability=1.0, bad_rate=0.02)
    msgs = [m for m in simulate(cfg) if m.topic != WEATHER]
    return msgs + tail_flush(msgs)


def _outputs(s: Settings) -> dict[str, set[str]]:
    codec = default_codec()
    out: dict[str, set[str]] = {t: set() for t in OUTPUTS}
    for m in consume_all(s, [s.topic_prefix + t for t in OUTPUTS], timeout=60, idle=1.0):
        rec = decode_record(codec, m.value())
        if isinstance(rec, DeadLetter):  # who rejected it, and when, differ between runs
            out[DEADLETTER].add(f"{rec.source_topic}/{rec.partition}/{rec.offset}/{rec.reason_code}")
        else:
            out[m.topic().removeprefix(s.topic_prefix)].add(rec.model_dump_json())
    return out


def _namespace(bootstrap: str) -> Settings:
    s = Settings(bootstrap_servers=bootstrap, topic_prefix=f"kp-{uuid.uuid4().hex[:8]}.", topic_retention_ms=-1)
    create_topics(s)
    return s


def _env(s: Settings, **extra: str) -> dict[str, str]:
    return {"EVGRID_BOOTSTRAP_SERVERS": s.bootstrap_servers, "EVGRID_TOPIC_PREFIX": s.topic_prefix,
            "EVGRID_MONITOR_ENABLED": "false", "EVGRID_CHECKPOINT_SECONDS": "1", **extra}


def _settled(s: Settings, want: dict[str, set[str]] | None, timeout: float = 240) -> dict[str, set[str]]:
    """The outputs once they equal ``want`` (or, without one, once they stop changing)."""
    deadline, last, got = time.monotonic() + timeout, None, _outputs(s)
    while time.monotonic() < deadline:
        if (want is not None and got == want) or (want is None and got == last and got[SETPOINTS]):
            return got
        time.sleep(3)
        last, got = got, _outputs(s)
    return got


@pytest.fixture(scope="module")
def reference(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Any], dict]:
    from tests.integration.conftest import WorkerProcess

    msgs = _stream()
    s = _namespace(kafka_bootstrap)
    tmp = tmp_path_factory.mktemp("kill-ref")
    w = WorkerProcess(_env(s), tmp / "data", tmp / "ref.log")
    try:
        produce_messages(s, msgs)
        w.wait_for(lambda st: sum(st["accepted"].values()) + sum(st["rejected"].values()) >= len(msgs)
                   and st["held_telemetry"] == 0, timeout=300, what="reference run")
        return msgs, _settled(s, None)
    finally:
        w.stop(kill=True)
        delete_topics(s)


@pytest.mark.parametrize("point", ["emit:4", "delivery:1", "acked:1"])  # the first checkpoint may cover it all
def test_killed_at_a_point_then_restarted_emits_what_an_uninterrupted_run_emits(
        point: str, reference: tuple[list[Any], dict], kafka_bootstrap: str, start_worker: Any,
        tmp_path: Path) -> None:
    msgs, expected = reference
    assert expected[FORECASTS] and expected[SETPOINTS] and expected[DEADLETTER]
    s = _namespace(kafka_bootstrap)
    try:
        produce_messages(s, msgs)
        first = start_worker(_env(s, EVGRID_FAILPOINT=point), name="first")
        marker = f"failpoint-{point.split(':')[0]}"
        deadline = time.monotonic() + 300
        while not list(first.data_dir.glob(f"*/{marker}")):
            assert time.monotonic() < deadline, f"the worker never reached {point}: {first.log.read_text()[-2000:]}"
            assert first.proc.poll() is None, first.log.read_text()[-2000:]
            time.sleep(0.2)
        time.sleep(1.5 if point.startswith("acked") else 0.2)  # after an ack, let faust's 1 s commit happen
        first.stop(kill=True)
        second = start_worker(_env(s), name="second")
        got = _settled(s, expected)
        if got != expected:
            wrong = [f"{t}: {len(got[t] - expected[t])} extra, {len(expected[t] - got[t])} missing"
                     for t in OUTPUTS if got[t] != expected[t]]
            raise AssertionError(f"after a kill at {point}: {'; '.join(wrong)}; first worker's log:\n"
                                 f"{first.log.read_text()[-3000:]}\nsecond worker: {second.report(6000)}")
    finally:
        delete_topics(s)


POISON = """
import streams.dispatch.dispatcher as _d
_real = _d.FeederDispatcher.on_telemetry
def _poisoned(self, tel):
    if tel.soc_pct == 13.125:
        raise ArithmeticError("poisoned telemetry")
    return _real(self, tel)
_d.FeederDispatcher.on_telemetry = _poisoned
"""


def test_a_record_that_makes_the_runtime_raise_is_dead_lettered_and_nothing_else_changes(
        reference: tuple[list[Any], dict], kafka_bootstrap: str, start_worker: Any) -> None:
    msgs, expected = reference
    codec = default_codec()
    s = _namespace(kafka_bootstrap)
    try:
        produce_messages(s, msgs)
        # the same stream, plus one telemetry record the (patched) runtime raises on, stamped after the stream's end
        # on a charger no longer plugged in would change nothing else: give it a charger id nobody else uses
        w = start_worker(_env(s), name="poisoned", preamble=POISON)
        w.wait_for(lambda st: sum(st["accepted"].values()) + sum(st["rejected"].values()) >= len(msgs),
                   timeout=300, what="the stream")
        got = _settled(s, expected)
        assert got == expected, "the patch alone changes nothing"
        tel = next(m for m in msgs if m.topic == "evgrid.charger.telemetry")
        rec = decode_record(codec, tel.value)
        poisoned = rec.model_copy(update={"soc_pct": 13.125, "timestamp": rec.timestamp + 1})
        from streams.contracts.models import encode_record
        from streams.simulate.stream import SimMessage

        produce_messages(s, [SimMessage(poisoned.timestamp, tel.topic, tel.key, encode_record(codec, poisoned))])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if w.stats().get("rejected", {}).get("evgrid.charger.telemetry/processing_error"):
                break
            time.sleep(0.5)
        after = _outputs(s)
        new_dl = after[DEADLETTER] - expected[DEADLETTER]
        assert len(new_dl) == 1 and next(iter(new_dl)).endswith("/processing_error"), new_dl
        assert w.proc.poll() is None, "the worker goes on"
        for topic in (FORECASTS, SETPOINTS, INCENTIVES, SETTLEMENTS):
            assert after[topic] == expected[topic], topic
    finally:
        delete_topics(s)
