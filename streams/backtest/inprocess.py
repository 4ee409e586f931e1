"""Drive the worker's own code (:class:`~streams.pipeline.worker.FeederWorker`) in-process, without Kafka.

The same inputs the orchestrator replays, in the same merged event-time order, go through the same
validation, feeder runtimes and dispatcher; the outputs are decoded as the orchestrator decodes them.
The one difference from a real worker: here every record is applied in global event-time order, where a
worker consumes its input topics independently (cross-topic order may differ). Used by unit tests and to
tell pipeline effects from broker effects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from streams.backtest.inputs import BacktestInputs, merged_records
from streams.contracts.codec import default_codec
from streams.contracts.models import decode_record
from streams.contracts.topics import TOPICS, WEATHER
from streams.ingest.validate import RawMessage
from streams.pipeline.worker import FeederWorker
from streams.settings import Settings, pipeline_config

__all__ = ["run_in_process"]


def run_in_process(inputs: BacktestInputs, settings: Settings, batch: int = 2_000,
                   records: Iterable[dict[str, Any]] | None = None,
                   observe: Callable[[FeederWorker, int], None] | None = None,
                   keep_outputs: bool = True) -> dict[str, list[Any]]:
    """Outputs by logical topic (decoded records) of ``inputs`` (with its flush record) through a FeederWorker.

    ``records`` replaces the merged history dicts (e.g. a modified stream). ``observe(worker, event_ms)`` is
    called after every batch (e.g. to sample the checkpoint sizes, ``worker.state_bytes``); with ``keep_outputs``
    false only the counts of outputs are kept (``len`` of each list is right, the items are None).
    The inputs' feeder limits override ``settings``, as the orchestrator's environment does for a worker.
    """
    limits = {"default_import_limit_kw": inputs.import_limit_kw, "default_export_limit_kw": inputs.export_limit_kw}
    settings = settings.model_copy(update={k: v for k, v in limits.items() if v is not None})
    worker = FeederWorker(pipeline_config(settings), worker_id="in-process", clock=lambda: 2**62)
    codec = default_codec()
    state: dict[bytes, bytes] = {}
    out: dict[str, list[Any]] = {}
    offsets: dict[str, int] = {}
    buf: list[RawMessage] = []

    def flush(end: bool = False) -> None:
        if not buf and not end:
            return
        emit = worker.process(buf, state.get)
        if end:  # end of input: release what still waits for a meter stream or a registration
            tail = worker.tick(force=True)
            emit.messages += tail.messages
            emit.checkpoints += tail.checkpoints
        for feeder, _, blob in emit.checkpoints:
            state[feeder] = blob
        for topic, _, value in emit.messages:
            out.setdefault(topic, []).append(decode_record(codec, value, TOPICS[topic].record) if keep_outputs
                                             else None)
        if observe is not None and buf:
            observe(worker, buf[-1].timestamp or 0)
        buf.clear()

    src = records if records is not None else merged_records(inputs.with_flush())
    for d in src:
        topic = d["topic"]
        off = offsets[topic] = offsets.get(topic, -1) + 1
        msg = RawMessage(topic, 0, off, d["key"], d["value"], d["timestamp"])
        if topic == WEATHER:
            flush()
            worker.process_weather([msg])
            continue
        buf.append(msg)
        if len(buf) >= batch:
            flush()
    flush(end=True)
    return out
