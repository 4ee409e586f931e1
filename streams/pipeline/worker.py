"""Batch processing of raw input messages for the feeders a worker owns.

:class:`FeederWorker` validates every message, routes rejects to dead letters with a reason, applies valid
records to the feeder's :class:`~streams.pipeline.feeder.FeederRuntime` exactly once (offsets recorded in
the feeder's state), and returns what to produce and which feeder states to checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.contracts.codec import default_codec
from streams.contracts.models import ChargerRegistration, Record, WeatherObservation, encode_record
from streams.contracts.topics import CHARGER_REGISTRY, DEADLETTER, TOPICS
from streams.ingest.validate import RawMessage, Rejection, Validator, dead_letter
from streams.pipeline.config import PipelineConfig
from streams.pipeline.feeder import (
    Drained,
    FeederRuntime,
    Output,
    Reject,
    _all_read,
    processing_error,
)
from streams.pipeline.ownership import ChargerOwnership
from streams.pipeline.statecodec import StateDecodeError, StateEncodeError

__all__ = ["MODEL_KEY", "STATE_KEY", "Emit", "FeederWorker", "processing_error"]

log = logging.getLogger(__name__)

StateLoader = Callable[[bytes], bytes | None]
WEATHER_KEPT = 20_000
"""Weather records a worker keeps for feeders it loads later (about a week of hourly data for 100 stations)."""
OUTPUT_OVERHEAD = 1_024
"""Room kept below ``max_message_bytes`` for a record's headers and batch framing."""
STATE_KEY, MODEL_KEY = b"S", b"M"
"""Table keys: one of these bytes + the feeder id, for its state and its forecaster (written only when it learned)."""


@dataclass
class Emit:
    """What a batch produced: messages ``(logical topic, key, value)``, checkpoints ``(feeder, partition, blob)``.

    ``taken`` is how many input messages were applied or rejected (fewer than given when a time budget ran out).
    """

    messages: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    checkpoints: list[tuple[bytes, int, bytes]] = field(default_factory=list)
    taken: int = 0


class FeederWorker:
    """Owns the runtimes of the feeders in the partitions assigned to one worker process."""

    def __init__(self, config: PipelineConfig, worker_id: str = "local",
                 clock: Callable[[], int] | None = None) -> None:
        self.config = config
        self.worker_id = worker_id
        self.codec = default_codec()
        self.clock = clock or (lambda: int(time.time() * 1000))
        self.validator = Validator(
            self.codec, config.max_message_bytes, config.max_future_ms, self.clock
        )
        self.runtimes: dict[bytes, FeederRuntime] = {}
        self.partition_of: dict[bytes, int] = {}
        self.paused = False
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[tuple[str, str]] = Counter()
        self.skipped_replayed = 0
        self.state_decode_failures = 0  # checkpoints that did not decode: those feeders started fresh
        self.state_encode_failures = 0  # states that could not be encoded (checkpoint retried later)
        self.weather: dict[tuple[str, int, int | None], WeatherObservation] = {}  # recent, for feeders loaded later
        self.weather_observed = 0
        self._weather_in_order: list[WeatherObservation] | None = None  # sorted once per change, not per feeder
        self.checkpoint_ms_max = 0.0
        self.dirty: dict[bytes, int] = {}  # feeders changed since their last checkpoint -> partition
        # (logical topic, partition) read to its end, as the edge last saw; None: everything is (in-process, tests)
        self.drained: set[tuple[str, int]] | None = None
        self.state_bytes: dict[bytes, int] = {}  # feeder -> size of its last checkpoint (state + model), bytes
        self.model_bytes: dict[bytes, int] = {}  # feeder -> size of its last forecaster checkpoint, bytes
        self.oversized_outputs = 0
        self.ownership = ChargerOwnership()  # every registration this worker has seen, its own feeders' or not
        self._ownership_changed = False
        self.duplicates_retired = 0  # registrations applied, then retired: an earlier holder was read later

    def _drained_for(self, partition: int) -> Drained:
        drained = self.drained
        if drained is None:
            return _all_read
        return lambda topic: (topic, partition) in drained

    def held_total(self) -> int:
        """Telemetry records held by this worker's feeders for their meter streams (kept in memory only)."""
        return sum(len(rt.held) for rt in self.runtimes.values())

    def unapplied(self) -> dict[tuple[str, int], int]:
        """Per (logical topic, partition), the lowest input offset claimed but not applied yet (held): no offset
        from it on may be acknowledged, so a restart reads it again."""
        low: dict[tuple[str, int], int] = {}
        for rt in self.runtimes.values():
            for tp, offsets in rt.held_offsets().items():
                first = min(offsets)
                if first < low.get(tp, first + 1):
                    low[tp] = first
        return low

    @staticmethod
    def raw(logical_topic: str, message: Any) -> RawMessage:
        """A :class:`RawMessage` from a faust/aiokafka message object."""
        ts = message.timestamp
        return RawMessage(logical_topic, message.partition, message.offset, message.key, message.value,
                          round(ts * 1000) if ts is not None else None)

    def pause(self) -> None:
        """Partitions are being revoked: drop cached runtimes and stop idle releases until :meth:`resume`.

        Call :meth:`checkpoint` first: changes not checkpointed are dropped with the runtimes.
        """
        self.paused = True
        self.runtimes.clear()
        self.dirty.clear()

    def resume(self) -> None:
        """Partitions assigned: idle releases go on. The runtimes were let go at :meth:`pause`; those loaded since
        came from the tables after faust's recovery, and faust may hand out the new generation's records before it
        calls the assignment callback, so what they applied (telemetry held among it) is kept, not dropped."""
        self.paused = False

    def runtime(self, feeder: bytes, load: StateLoader) -> FeederRuntime:
        rt = self.runtimes.get(feeder)
        if rt is None:
            state, model = load(STATE_KEY + feeder), load(MODEL_KEY + feeder)
            if state and model:
                try:
                    rt = FeederRuntime.load(state, model)
                except StateDecodeError as exc:  # corrupt or forged: this feeder starts fresh, its models warm up
                    self.state_decode_failures += 1
                    log.warning("feeder %r: its checkpoint does not decode, starting it fresh: %s", feeder, exc)
                else:
                    applied, kept = rt.reconfigure(self.config.feeder)  # settings changed since it was written
                    if applied:
                        log.info("feeder %r: settings changed since its checkpoint, now applied: %s", feeder,
                                 ", ".join(applied))
                    if kept:
                        log.warning("feeder %r: its checkpoint keeps %s (what it learnt depends on them); delete "
                                    "the feeder's checkpoint to start it on the new settings", feeder, ", ".join(kept))
            if rt is None:
                rt = FeederRuntime(feeder.decode(), self.config.feeder)
            if self._weather_in_order is None:
                self._weather_in_order = sorted(self.weather.values(), key=lambda o: o.timestamp)
            for obs in self._weather_in_order:
                rt.observe_weather(obs)  # weather read before this feeder was loaded (idempotent for the others)
            self.runtimes[feeder] = rt
        return rt

    def process(self, msgs: Iterable[RawMessage], load: StateLoader, checkpoint: bool = True,
                until: float | None = None) -> Emit:
        """Validate and apply a batch; return the messages to produce and (``checkpoint``) the changed states.

        With ``checkpoint=False`` the changed feeders stay in :attr:`dirty` until :meth:`checkpoint`. With
        ``until`` (a :func:`time.perf_counter` deadline) it stops after the message that passes it; ``taken``
        says how many were applied, and the caller gives the rest again later.
        """
        emit = Emit()
        dirty = self.dirty
        now = self.clock()  # once per batch: a batch takes milliseconds
        check, accepted = self.validator.check, self.accepted
        for msg in msgs:
            if until is not None and emit.taken and time.perf_counter() >= until:
                break
            emit.taken += 1
            result = check(msg, now)
            if isinstance(result, Rejection):
                self._reject(msg, result, emit)
                continue
            feeder = result.feeder_id.encode()  # type: ignore[attr-defined]
            rt = self.runtime(feeder, load)
            if not rt.claim(msg.topic, msg.partition, msg.offset):
                self.skipped_replayed += 1
                continue
            accepted[msg.topic] += 1
            dirty[feeder] = self.partition_of[feeder] = msg.partition
            if isinstance(result, ChargerRegistration):
                clash = self._duplicate(result)
                if clash is not None:  # another feeder commands that charger
                    accepted[msg.topic] -= 1
                    self._reject(msg, clash, emit)
                    continue
            try:
                outputs = rt.apply(result, msg, now, self._drained_for(msg.partition))
            except Exception as exc:  # a bug or an input nobody foresaw: dead-lettered, the feeder goes on
                outputs = [Reject(msg, processing_error(exc))]
            if outputs:
                self._emit_outputs(outputs, emit, msg)
        self._retire_duplicates(emit)
        if checkpoint:
            self._checkpoint(emit)
        return emit

    def _duplicate(self, reg: ChargerRegistration) -> Rejection | None:
        """One charger, one controller (:mod:`streams.pipeline.ownership`): refuse a registration made while
        another feeder held the charger."""
        own = self.ownership
        own.observe(reg)
        self._ownership_changed = True
        if not own.refused(reg.charger_id, reg.feeder_id, reg.registered_at):
            return None
        held = own.holder(reg.charger_id) or "another feeder"
        return Rejection("duplicate_charger", f"charger {reg.charger_id} is registered on feeder {held}; retire it "
                                              f"there before registering it on {reg.feeder_id}")

    def observe_registry(self, msgs: Iterable[RawMessage]) -> int:
        """Take every valid charger registration of the whole registry topic into :attr:`ownership` (a reader of
        every partition calls this; the consumer group's :meth:`process` applies and dead-letters). Feeders of this
        worker holding a charger registered earlier elsewhere retire it at their next :meth:`process`."""
        seen = 0
        for msg in msgs:
            result = self.validator.check(msg)
            if isinstance(result, ChargerRegistration):
                self.ownership.observe(result)
                self._ownership_changed = True
                seen += 1
        return seen

    def _retire_duplicates(self, emit: Emit) -> None:
        """Retire, with an immediate revocation, each charger a feeder here commands under a registration that
        the ownership rule refuses (an earlier holder on another feeder was read after it was applied)."""
        if not self._ownership_changed:
            return
        self._ownership_changed = False
        own = self.ownership
        for feeder, rt in self.runtimes.items():
            for cid, reg in list(rt.chargers.items()):
                if reg.active and own.refused(cid, reg.feeder_id, reg.registered_at):
                    log.warning("feeder %s: charger %s is held by feeder %s, registered earlier: retired here",
                                rt.feeder_id, cid, own.holder(cid))
                    self.duplicates_retired += 1
                    self.rejected[(CHARGER_REGISTRY, "duplicate_charger")] += 1
                    self._emit_outputs(rt.retire(cid), emit)
                    self.dirty[feeder] = self.partition_of.get(feeder, 0)

    def connection_change(self, key: bytes | None, value: bytes | None) -> bool:
        """Whether a charger-telemetry message plugs a car in or out, as far as this worker knows (a hint for
        ordering work: such a message re-plans its feeder, and the driver waits for the setpoint).

        Unknown chargers, and feeders not loaded yet, count as a change when the car is connected.
        """
        try:
            _, rec = self.codec.decode(value or b"", "ChargerTelemetry")
        except Exception:  # bad input: dead-lettered in its turn
            return False
        rt = self.runtimes.get(key or b"")
        state = rt.dispatcher.session(rec["charger_id"]) if rt is not None else None
        connected = bool(rec.get("connected"))
        if state is None:
            return connected
        return connected != state.connected or (connected and rec.get("session_id") != state.session_id)

    def tick(self, force: bool = False, checkpoint: bool = True) -> Emit:
        """Release telemetry that waited for a meter stream now quiet (``force``: all of it, end of input).

        With ``checkpoint``, also checkpoints every feeder changed since the last checkpoint.
        """
        emit = Emit()
        if self.paused and not force:
            return emit
        dirty = self.dirty
        now = self.clock()
        for feeder, rt in self.runtimes.items():
            if rt.held:
                outputs: list[Output] = []
                partition = self.partition_of.get(feeder, 0)
                rt.release(outputs, force=force, wall_ms=now, drained=self._drained_for(partition))
                self._emit_outputs(outputs, emit)
                dirty[feeder] = partition
        self._retire_duplicates(emit)
        if checkpoint:
            self._checkpoint(emit)
        return emit

    def checkpoint(self, partitions: Collection[int] | None = None) -> Emit:
        """The states of the feeders of ``partitions`` (None: all) changed since their last checkpoint."""
        emit = Emit()
        self._checkpoint(emit, partitions)
        return emit

    def _checkpoint(self, emit: Emit, partitions: Collection[int] | None = None) -> None:
        started = time.perf_counter()
        if partitions is None:
            dirty, self.dirty = self.dirty, {}
        else:
            dirty = {f: p for f, p in self.dirty.items() if p in partitions}
            for feeder in dirty:
                del self.dirty[feeder]
        for feeder, partition in dirty.items():
            try:
                state, model = self.runtimes[feeder].dump()
            except StateEncodeError as exc:  # a model this format cannot hold: try again at the next checkpoint
                self.state_encode_failures += 1
                self.dirty[feeder] = partition
                log.error("feeder %r: its state cannot be encoded, not checkpointed: %s", feeder, exc)
                continue
            if model is not None:
                self.model_bytes[feeder] = len(model)
                emit.checkpoints.append((MODEL_KEY + feeder, partition, model))
            self.state_bytes[feeder] = len(state) + self.model_bytes.get(feeder, 0)
            emit.checkpoints.append((STATE_KEY + feeder, partition, state))
        self.checkpoint_ms_max = max(self.checkpoint_ms_max, (time.perf_counter() - started) * 1000)

    def process_weather(self, msgs: Iterable[RawMessage], observe: bool = True) -> Emit:
        """Validate weather: count it, dead-letter what is bad and (``observe``) keep and apply what is good.

        A worker fleet calls this with ``observe=False`` from the consumer group (each message counted and
        dead-lettered once) and :meth:`observe_weather` from a reader of every partition (each worker applies all).
        """
        emit = Emit()
        for msg in msgs:
            result = self.validator.check(msg)
            if isinstance(result, Rejection):
                self._reject(msg, result, emit)
                continue
            assert isinstance(result, WeatherObservation)
            self.accepted[msg.topic] += 1
            if observe:
                self._observe(result)
        return emit

    def observe_weather(self, msgs: Iterable[RawMessage]) -> int:
        """Keep the valid observations and hand them to every feeder this worker holds; bad ones are skipped
        (:meth:`process_weather` dead-letters them). Returns how many were applied."""
        applied = 0
        for msg in msgs:
            result = self.validator.check(msg)
            if isinstance(result, WeatherObservation):
                self._observe(result)
                applied += 1
        self.weather_observed += applied
        return applied

    def _observe(self, obs: WeatherObservation) -> None:
        self.weather[(obs.station_id, obs.timestamp, obs.forecast_for)] = obs
        self._weather_in_order = None
        if len(self.weather) > WEATHER_KEPT:
            newest = sorted(self.weather, key=lambda k: k[1])[-WEATHER_KEPT // 2:]
            self.weather = {k: self.weather[k] for k in newest}
        for rt in self.runtimes.values():
            rt.observe_weather(obs)

    def _emit_outputs(self, outputs: list[Output], emit: Emit, source: RawMessage | None = None) -> None:
        """Queue the outputs; a runtime rejection turns an accepted input into a dead letter, and so does an output
        too large to send (``source``: the input that produced them)."""
        limit = self.config.max_message_bytes - OUTPUT_OVERHEAD
        for out in outputs:
            if isinstance(out, Reject):
                self.accepted[out.msg.topic] -= 1
                self._reject(out.msg, out.rejection, emit)
                continue
            topic, key, record = out
            value = encode_record(self.codec, record)
            if len(key) + len(value) > limit:
                self.oversized_outputs += 1
                if source is not None:
                    self.accepted[source.topic] -= 1
                    self._reject(source, Rejection("processing_error", f"its {type(record).__name__} output is "
                                                   f"{len(key) + len(value)} bytes, above the {limit}-byte limit"),
                                 emit)
                continue
            emit.messages.append((topic, key, value))

    def _reject(self, msg: RawMessage, rejection: Rejection, emit: Emit) -> None:
        self.rejected[(msg.topic, rejection.code)] += 1
        record: Record = dead_letter(msg, rejection, self.worker_id, self.clock())
        emit.messages.append((DEADLETTER, msg.topic.encode(), encode_record(self.codec, record)))

    def write_stats(self, path: str, **extra: Any) -> None:
        """Write :meth:`counters` and ``extra`` atomically to ``path`` (read by tests, benchmarks, ``evgrid demo``)."""
        tmp = f"{path}.tmp"
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(tmp, "w") as fh:
            json.dump({"written_at": self.clock(), **self.counters(), **extra}, fh)
        os.replace(tmp, path)

    def counters(self) -> dict[str, Any]:
        """Accepted per topic and rejected per (topic, reason) since start."""
        return {"accepted": dict(self.accepted), "rejected": {f"{t}/{c}": n for (t, c), n in self.rejected.items()},
                "skipped_replayed": self.skipped_replayed, "weather_observed": self.weather_observed,
                "state_decode_failures": self.state_decode_failures,
                "state_encode_failures": self.state_encode_failures,
                "held_telemetry": self.held_total(), "paused": self.paused,
                "unapplied": {f"{t}/{p}": o for (t, p), o in sorted(self.unapplied().items())},
                "drained": None if self.drained is None else sorted(f"{t}/{p}" for t, p in self.drained),
                "state_bytes_max": max(self.state_bytes.values(), default=0),
                "oversized_outputs": self.oversized_outputs,
                "skipped_stale_plans": sum(rt.skipped_stale_plans for rt in self.runtimes.values()),
                "checkpoint_ms_max": round(self.checkpoint_ms_max, 1),
                "feeders": sorted(f.decode() for f in self.runtimes), "duplicates_retired": self.duplicates_retired}


assert DEADLETTER in TOPICS
