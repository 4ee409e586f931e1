"""The worker's pipeline metrics carry each feeder's checkpoint size and held telemetry, and decode failures."""

from __future__ import annotations

from streams.agents.monitor import PipelineMetrics
from streams.contracts.codec import default_codec
from streams.contracts.models import MeterReading, encode_record
from streams.contracts.topics import METER_READINGS
from streams.ingest.validate import RawMessage
from streams.pipeline.worker import STATE_KEY, FeederWorker
from streams.settings import Settings, pipeline_config
from tests.fixtures.feeder_records import HOUR, T0


def test_tick_reports_checkpoint_bytes_per_feeder_and_decode_failures() -> None:
    codec = default_codec()
    w = FeederWorker(pipeline_config(Settings()), clock=lambda: T0 + 24 * HOUR)
    msgs = [RawMessage(METER_READINGS, 0, i, f.encode(), encode_record(codec, MeterReading(
        meter_id="m", feeder_id=f, timestamp=T0 + i * 900_000, active_power_kw=1.0)), None)
        for i, f in enumerate(["F1", "F2", "F1"])]
    emit = w.process(msgs, lambda f: None)
    w.process([RawMessage(METER_READINGS, 0, 9, b"F3", msgs[0].value.replace(b"F1", b"F3"), None)],
              {STATE_KEY + b"F3": b"not a checkpoint", b"MF3": b"x"}.get)
    sizes = {k[1:]: len(v) for k, _, v in emit.checkpoints if k.startswith(STATE_KEY)}
    ticked = PipelineMetrics(w, "w1").tick(T0, {})
    points = {(p.measurement, dict(p.tags).get("feeder")): dict(p.fields) for p in ticked}
    assert points[("feeder_state", "F1")]["checkpoint_bytes"] > sizes[b"F1"], "state + its forecaster"
    assert points[("feeder_state", "F2")]["held_telemetry"] == 0
    assert points[("worker_state", None)]["state_decode_failures"] == 1
