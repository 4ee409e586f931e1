"""The worker's consumer: fetch requests the broker may hold only briefly (faust's 1.5 s stalled plug-ins)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from streams.agents.app import create_app
from streams.agents.batching import FETCH_MAX_WAIT_MS, ShortWaitConsumerThread
from streams.settings import Settings


async def _fetch_waits_ms(tmp_path: Path) -> tuple[int, int]:
    app = create_app(Settings(topic_prefix="unit-batching.", data_dir=str(tmp_path)))
    ours = app.consumer._thread
    plain = AIOKafkaConsumerThread(app.consumer, loop=app.loop, beacon=app.beacon)
    assert isinstance(ours, ShortWaitConsumerThread)
    waits = []
    for thread in (ours, plain):
        consumer = thread._create_worker_consumer(app.consumer.transport)  # not started: no broker needed
        waits.append(consumer._fetch_max_wait_ms)
        await consumer.stop()
    return waits[0], waits[1]


def test_the_worker_consumer_lets_the_broker_hold_a_fetch_for_100_ms_not_faust_s_1500(tmp_path: Path) -> None:
    ours, faust_default = asyncio.run(_fetch_waits_ms(tmp_path))
    assert faust_default == 1500  # what a quiet meter partition in a fetch request used to cost the telemetry
    assert ours == FETCH_MAX_WAIT_MS == 100
