"""The hostile corpus through the real broker and a worker process: every bad message is dead-lettered with its
reason, the worker keeps running, and the valid records around them are processed."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from streams.contracts.codec import default_codec
from streams.contracts.models import decode_record
from streams.contracts.topics import DEADLETTER
from streams.kafka.clients import consume_all, make_producer
from streams.settings import Settings
from tests.fixtures.hostile import corpus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def test_hostile_corpus_through_kafka(topic_namespace: Settings, start_worker) -> None:
    s = topic_namespace
    cases = corpus()
    producer = make_producer(s, message_max_bytes=3_000_000)
    for case in cases:  # one at a time, in order, so offsets follow the corpus per topic
        producer.produce(s.topic_prefix + case.topic, key=case.key, value=case.value)
        producer.flush(30)
    w = start_worker({"EVGRID_BOOTSTRAP_SERVERS": s.bootstrap_servers, "EVGRID_TOPIC_PREFIX": s.topic_prefix,
                      "EVGRID_MONITOR_ENABLED": "false", "EVGRID_ALIGN_IDLE_SECONDS": "2"})
    bad = [c for c in cases if c.expect != "accepted"]
    stats = w.wait_for(lambda st: sum(st["rejected"].values()) >= len(bad), timeout=180, what="all rejected")
    assert w.proc.poll() is None, "the worker is still running"
    assert sum(stats["accepted"].values()) == len(cases) - len(bad)
    codec = default_codec()
    deadline = time.monotonic() + 60
    dead = consume_all(s, [s.topic_prefix + DEADLETTER], timeout=30, expected=len(bad))
    while len(dead) < len(bad) and time.monotonic() < deadline:  # the worker's producer flushes in the background
        time.sleep(1)
        dead = consume_all(s, [s.topic_prefix + DEADLETTER], timeout=30, expected=len(bad))
    letters = [decode_record(codec, m.value()) for m in dead]
    got = sorted((d.source_topic, d.reason_code) for d in letters)  # type: ignore[attr-defined]
    want = sorted((c.topic, c.expect) for c in bad)
    assert got == want, (Counter(want) - Counter(got), Counter(got) - Counter(want))
