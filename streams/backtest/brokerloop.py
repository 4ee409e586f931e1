"""Closed loop through the real broker: the twins of :mod:`streams.backtest.closedloop` talk to one ``evgrid worker``.

The loop is :func:`~streams.backtest.closedloop.run_closed_loop` itself; :class:`BrokerPipeline` replaces the
in-process worker. Records go to a fresh topic namespace (as :mod:`streams.backtest.orchestrator` makes it), one
worker subprocess consumes them, and simulated time moves in lockstep with its answers: after the twins'
telemetry of an instant ``t`` the pipeline sends, per feeder, a *marker*, a heartbeat at ``t`` of a charger no
one registered (``~lockstep``). The worker applies a feeder's telemetry in event-time order, so the marker is
dead-lettered (``unknown_charger``) only after every record before it was applied and its setpoints were sent,
and (``EVGRID_ORDERED_DEAD_LETTERS``) only once those were written: they are below the setpoint partitions' ends
when the dead letter is seen. The pipeline reads up to those ends and the twins apply the setpoints at ``t``
before time moves on: no wall-clock wait decides which round a setpoint belongs to. The
markers' dead letters are left out of the outputs and the counts. The worker follows the weather topic apart from
its feeder inputs, so a weather record is a barrier (see :meth:`BrokerPipeline.weather`).

A feeder without meter readings holds telemetry until its meter partition has stopped; the worker here runs
with ``align_idle_seconds=0`` so that it releases at once what the in-process runner releases with ``force``
(end of input). The run's planning settings are unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.backtest.inputs import BacktestInputs
from streams.backtest.orchestrator import (
    OUTPUT_TOPICS,
    _create_namespace,
    _decode_all,
    _processed,
    _read_stats,
    _settle,
    _stop,
    _tail,
    _wait,
    worker_env,
)
from streams.contracts.codec import default_codec
from streams.contracts.models import ChargerSetpoint, ChargerTelemetry, DeadLetter, decode_record, encode_record
from streams.contracts.timeparse import iso_utc
from streams.contracts.topics import CHARGER_TELEMETRY, DEADLETTER, SETPOINTS, TOPICS, WEATHER, topic_name
from streams.ingest.validate import RawMessage
from streams.kafka.admin import delete_topics
from streams.kafka.clients import TopicPartition, consume_all, make_producer, new_consumer
from streams.settings import Settings

__all__ = ["MARKER", "BrokerPipeline"]

MARKER = "~lockstep"
"""Charger id prefix of the lockstep markers (never registered)."""


def _is_marker(dl: DeadLetter) -> bool:
    return dl.reason_code == "unknown_charger" and f"charger {MARKER}" in dl.reason


class BrokerPipeline:
    """A fresh namespace and one worker subprocess; use as a context manager (the worker stops, the topics go).

    Parameters
    ----------
    inputs
        The run's inputs (settings, step, limits: the worker's environment as the orchestrator gives it).
    base
        Connection settings; default from the environment.
    keep_topics
        Leave the namespace in place.
    log
        Progress messages.
    timeout_s
        Longest time the worker may go without answering and without taking in a record.
    """

    def __init__(self, inputs: BacktestInputs, base: Settings | None = None, *, keep_topics: bool = False,
                 log: Callable[[str], None] | None = None, timeout_s: float = 120.0) -> None:
        self.base = base or Settings()
        self.say = log or (lambda _m: None)
        self.inputs, self.keep_topics, self.timeout_s = inputs, keep_topics, timeout_s
        self.prefix = f"bt-{uuid.uuid4().hex[:10]}."
        self.settings = self.base.model_copy(update={"topic_prefix": self.prefix, "topic_retention_ms": -1})
        self.codec = default_codec()
        self.outputs: dict[str, list[Any]] = {}
        self.accepted: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self.worker_stats: dict[str, Any] = {}
        self.produced = 0
        self.markers = 0
        self.marker_seen: dict[str, int] = {}
        self.worker_rss_mb: float | None = None
        self.syncs = 0
        self.weather_sent = 0
        self._said = time.monotonic()
        self.wait_s = 0.0
        self._tmp = tempfile.TemporaryDirectory(prefix="evgrid-brokerloop-")
        self.wdir = Path(self._tmp.name)
        self.proc: subprocess.Popen[bytes] | None = None
        self.producer: Any = None
        self.consumer: Any = None

    def __enter__(self) -> BrokerPipeline:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        self.say(f"namespace {self.prefix}")
        _create_namespace(self.settings)
        env = {**os.environ, **worker_env(self.inputs, self.base, self.prefix, str(self.wdir / "data")),
               "EVGRID_ALIGN_IDLE_SECONDS": "0", "EVGRID_ORDERED_DEAD_LETTERS": "true", "PYTHONUNBUFFERED": "1"}
        with open(self.wdir / "worker.log", "ab") as fh:
            self.proc = subprocess.Popen([sys.executable, "-c", "from streams.cli import app; app()", "worker",
                                          "--loglevel", "warning"], env=env, stdout=fh, stderr=subprocess.STDOUT)
        self.producer = make_producer(self.settings, linger_ms=0)
        self.consumer = new_consumer(self.settings, {"group.id": f"{self.prefix}lockstep-{uuid.uuid4().hex[:8]}",
                                                     "enable.auto.commit": False, "fetch.wait.max.ms": 5})
        parts = []
        meta = self.consumer.list_topics(timeout=30)
        for t in (SETPOINTS, DEADLETTER):
            name = topic_name(t, self.prefix)
            parts += [TopicPartition(name, p, 0) for p in meta.topics[name].partitions]
        self.consumer.assign(parts)
        self.sp_parts = [tp for tp in parts if tp.topic == topic_name(SETPOINTS, self.prefix)]
        self.sp_next = {tp.partition: 0 for tp in self.sp_parts}  # next setpoint offset to take, per partition

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
        if self.proc is not None:
            _stop(self.proc)
        if not self.keep_topics:
            try:
                delete_topics(self.settings)
            except Exception as exc:  # best effort: never hide the run's own error
                self.say(f"could not delete topics {self.prefix}*: {exc}")
        self._tmp.cleanup()

    def _produce(self, msgs: list[RawMessage]) -> None:
        for m in msgs:
            self.producer.produce(topic_name(m.topic, self.prefix), key=m.key, value=m.value, timestamp=m.timestamp)
            self.producer.poll(0)
        self.produced += len(msgs)

    def _flush(self) -> None:
        if self.producer.flush(60):
            raise RuntimeError("records not delivered to the broker within 60 s")

    def _stats_glob(self) -> str:
        assert self.proc is not None
        return f"*/stats-{self.proc.pid}.json"

    def registrations(self, msgs: list[RawMessage]) -> None:
        """Produce the registrations and wait until the worker has applied them (its stats file)."""
        assert self.proc is not None
        self._produce(msgs)
        self._flush()
        self.worker_stats = _wait(self.proc, self.wdir, self._stats_glob(), self.produced, self.say, 120.0)

    def exogenous(self, msgs: list[RawMessage]) -> None:
        """Meter readings are in the broker before the telemetry they cover is sent: a fetch that finds the
        telemetry finds them too, so the worker never sees their partition read to its end without them."""
        self._produce(msgs)
        self._flush()

    def weather(self, msg: RawMessage) -> None:
        """A weather record, as a barrier: the worker follows the weather topic apart from its other inputs, and
        its forecasts learn from meter readings with the weather known then; so the records before it are applied
        first, and the records after it wait until the worker has it (its stats file, written once a second)."""
        assert self.proc is not None
        self._flush()
        t0 = time.perf_counter()
        _wait(self.proc, self.wdir, self._stats_glob(), self.produced, self.say, self.timeout_s)
        self._produce([msg])
        self.weather_sent += 1
        self._flush()
        deadline = time.monotonic() + self.timeout_s
        while True:
            st = _read_stats(self.wdir, self._stats_glob())
            bad = sum(int(n) for k, n in st.get("rejected", {}).items() if k.startswith(f"{WEATHER}/"))
            if int(st.get("weather_observed", 0)) + bad >= self.weather_sent:
                break
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"the worker did not take in the weather within {self.timeout_s} s: "
                                   f"{_tail(self.wdir / 'worker.log')}")
            time.sleep(0.05)
        self.wait_s += time.perf_counter() - t0

    def telemetry(self, msgs: list[RawMessage]) -> list[ChargerSetpoint]:
        """Produce the telemetry and one marker per feeder; the setpoints the worker sent up to the markers."""
        self._produce(msgs)
        t = max(int(m.timestamp or 0) for m in msgs)
        feeders = sorted({m.key for m in msgs if m.key is not None})
        for key in feeders:
            feeder = key.decode()
            tel = ChargerTelemetry(charger_id=f"{MARKER}-{feeder}", feeder_id=feeder, timestamp=t, connected=False,
                                   power_kw=0.0, max_charge_kw=0.0)
            self._produce([RawMessage(CHARGER_TELEMETRY, 0, 0, key, encode_record(self.codec, tel), t)])
            self.markers += 1
        self._flush()
        if time.monotonic() - self._said > 60:
            self._said = time.monotonic()
            self.say(f"lockstep at {iso_utc(t)}: {self.syncs} rounds")
        want = {k.decode(): self.marker_seen.get(k.decode(), 0) + 1 for k in feeders}
        return self._until_markers(want)

    def _until_markers(self, want: dict[str, int]) -> list[ChargerSetpoint]:
        t0 = time.perf_counter()
        sps: list[ChargerSetpoint] = []
        deadline = time.monotonic() + self.timeout_s
        sp_topic, dl_topic = topic_name(SETPOINTS, self.prefix), topic_name(DEADLETTER, self.prefix)
        progress, looked = -1, 0.0
        while any(self.marker_seen.get(f, 0) < n for f, n in want.items()):
            if time.monotonic() - looked >= 1.0:  # a worker still taking records in (a long warm-up) is answering
                looked = time.monotonic()
                if (done := _processed(_read_stats(self.wdir, self._stats_glob()))) > progress:
                    progress, deadline = done, looked + self.timeout_s
            if time.monotonic() > deadline or (self.proc is not None and self.proc.poll() is not None):
                raise RuntimeError(f"the worker did not answer, nor take in a record, for {self.timeout_s} s "
                                   f"(stats: {_read_stats(self.wdir, self._stats_glob())}): "
                                   f"{_tail(self.wdir / 'worker.log')}")
            msg = self.consumer.poll(0.05)  # returns as soon as a record is there
            while msg is not None:
                self._take(msg, sp_topic, dl_topic, sps)
                msg = self.consumer.poll(0)
        # the worker (EVGRID_ORDERED_DEAD_LETTERS) sent the marker's dead letter only once its setpoints before it
        # were written: every one of them is below the setpoint partitions' ends now; read up to those ends (the
        # consumer may have fetched the dead letter's partition ahead of the setpoints')
        ends = {tp.partition: self.consumer.get_watermark_offsets(tp, timeout=30, cached=False)[1]
                for tp in self.sp_parts}
        while any(self.sp_next[p] < end for p, end in ends.items()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"setpoints up to offsets {ends} not read within {self.timeout_s} s")
            msg = self.consumer.poll(0.05)
            if msg is not None:
                self._take(msg, sp_topic, dl_topic, sps)
        self.syncs += 1
        self.wait_s += time.perf_counter() - t0
        return sps

    def _take(self, msg: Any, sp_topic: str, dl_topic: str, sps: list[ChargerSetpoint]) -> None:
        if msg.error() is not None or msg.value() is None:
            return
        if msg.topic() == sp_topic:
            self.sp_next[msg.partition()] = msg.offset() + 1
            rec = decode_record(self.codec, msg.value(), TOPICS[SETPOINTS].record)
            assert isinstance(rec, ChargerSetpoint)
            sps.append(rec)
        elif msg.topic() == dl_topic:
            dl = decode_record(self.codec, msg.value(), TOPICS[DEADLETTER].record)
            if isinstance(dl, DeadLetter) and _is_marker(dl):
                feeder = dl.reason.split(f"charger {MARKER}-", 1)[1].split(" ", 1)[0]
                self.marker_seen[feeder] = self.marker_seen.get(feeder, 0) + 1

    def finish(self, flush: list[RawMessage]) -> None:
        """The flush records; wait until the worker applied everything and its outputs stopped growing; collect."""
        assert self.proc is not None
        self._produce(flush)
        self._flush()
        self.worker_stats = _wait(self.proc, self.wdir, self._stats_glob(), self.produced, self.say, 600.0)
        feeders = len({r.feeder_id for r in self.inputs.registrations.values()})
        _settle(self.settings, self.proc, self.wdir, self.say, feeders)
        self.worker_stats = _read_stats(self.wdir, self._stats_glob()) or self.worker_stats
        self.worker_rss_mb = _peak_rss_mb(self.proc.pid)
        _stop(self.proc)
        msgs = consume_all(self.settings, [self.prefix + t for t in OUTPUT_TOPICS], timeout=600, idle=1.0)
        out = _decode_all(msgs, self.prefix)
        out[DEADLETTER] = [d for d in out[DEADLETTER] if not _is_marker(d)]
        self.outputs.clear()
        self.outputs.update(out)
        self.accepted = dict(sorted(self.worker_stats.get("accepted", {}).items()))
        rejected = {k.replace("/", ":", 1): int(n) for k, n in self.worker_stats.get("rejected", {}).items()}
        key = f"{CHARGER_TELEMETRY}:unknown_charger"
        if key in rejected:
            rejected[key] -= self.markers
            if rejected[key] <= 0:
                del rejected[key]
        self.rejected = dict(sorted(rejected.items()))


def _peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (MB; Linux ``VmHWM``), None where unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None
