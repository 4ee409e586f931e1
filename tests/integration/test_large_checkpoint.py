"""A feeder checkpoint above the broker's 1 MB default is written and read back (``EVGRID_CHECKPOINT_MAX_BYTES``).

A feeder that has heard no charger keeps ``max_telemetry_lag_hours`` of forecasts, each over the whole horizon: a
day of them at 5-minute intervals is about 0.8-1.1 MB compressed, at 2-minute intervals about 1.4 MB (the state
alone; the forecaster's model is a record of its own). Such a checkpoint made the worker's producer raise
``MessageSizeTooLargeError``, which stopped the worker. Here a worker checkpoints one, is killed, and a second
worker picks the feeder up from the changelog with its forecasts (its next checkpoint is as large again).
"""

from __future__ import annotations

import time

import pytest

from streams.contracts.topics import METER_READINGS, WEATHER
from streams.settings import Settings
from streams.simulate import SimConfig, simulate
from tests.fixtures.streams import produce_messages

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

MB = 1_048_576


def test_a_checkpoint_above_one_megabyte_is_written_and_restored(topic_namespace: Settings, start_worker) -> None:
    s = topic_namespace
    now = int(time.time() // 900 * 900 * 1000)
    cfg = SimConfig(feeders=1, homes=4, chargers=0, hours=26, seed=5, meter_interval_s=120,
                    start_ms=now - 27 * 3_600_000)
    everything = list(simulate(cfg))
    assert not [m for m in everything if m.topic not in (METER_READINGS, WEATHER)]  # no charger heard yet
    msgs = [m for m in everything if m.topic == METER_READINGS]
    last = msgs.pop()  # read by the second worker only
    produce_messages(s, msgs)
    env = {"EVGRID_BOOTSTRAP_SERVERS": s.bootstrap_servers, "EVGRID_TOPIC_PREFIX": s.topic_prefix,
           "EVGRID_INTERVAL_MINUTES": "2", "EVGRID_CHECKPOINT_SECONDS": "1", "EVGRID_MONITOR_ENABLED": "false"}

    first = start_worker(env, name="first")
    first.wait_for(lambda st: st["accepted"].get(METER_READINGS, 0) >= len(msgs)
                   and st["state_bytes_max"] > MB, timeout=300, what="every reading and a checkpoint > 1 MB")
    time.sleep(3)  # a checkpoint after the last reading
    assert first.proc.poll() is None, first.log.read_text()[-3000:]
    big = first.stats()["state_bytes_max"]  # state and model records
    first.stop(kill=True)

    second = start_worker(env, name="second")
    produce_messages(s, [last])
    after = second.wait_for(lambda st: st["accepted"].get(METER_READINGS, 0) >= 1 and st["state_bytes_max"] > 0,
                            timeout=240, what="the feeder loaded from the changelog and checkpointed again")
    assert after["state_decode_failures"] == 0
    # no interval closed, so the model is unchanged and this checkpoint is the state record alone: the day of
    # forecasts came back with it
    assert after["state_bytes_max"] > MB, (big, after["state_bytes_max"])
