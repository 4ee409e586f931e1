"""Batch processing of raw input messages for the feeders a worker owns.

:class:`FeederWorker` validates every message, routes rejects to dead letters with a reason, applies valid
records to the feeder's :class:`~streams.pipeline.feeder.FeederRuntime` exactly once (offsets recorded in
the feeder's state), and returns what to produce and which feeder states to checkpoint.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.contracts.codec import default_codec
from streams.contracts.models import Record, WeatherObservation, encode_record
from streams.contracts.topics import DEADLETTER, TOPICS
from streams.ingest.validate import RawMessage, Rejection, Validator, dead_letter
from streams.pipeline.feeder import FeederRuntime, Output, Reject, duplicate_charger
from streams.settings import Settings

__all__ = ["Emit", "FeederWorker"]

StateLoader = Callable[[bytes], bytes | None]
WEATHER_KEPT = 20_000
"""Weather records a worker keeps for feeders it loads later (about a week of hourly data for 100 stations)."""
MODEL_SUFFIX = b"\x00model"
"""Table key suffix of a feeder's forecaster checkpoint (written only when it learned)."""


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

    def __init__(self, settings: Settings, worker_id: str = "local", clock: Callable[[], int] | None = None) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.codec = default_codec()
        self.clock = clock or (lambda: int(time.time() * 1000))
        self.validator = Validator(
            self.codec, settings.max_message_bytes, settings.max_future_seconds * 1000, self.clock
        )
        self.runtimes: dict[bytes, FeederRuntime] = {}
        self.partition_of: dict[bytes, int] = {}
        self.paused = False
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[tuple[str, str]] = Counter()
        self.skipped_replayed = 0
        self.weather: dict[tuple[str, int, int | None], WeatherObservation] = {}  # recent, for feeders loaded later
        self.weather_observed = 0
        self._weather_in_order: list[WeatherObservation] | None = None  # sorted once per change, not per feeder
        self.checkpoint_ms_max = 0.0
        self.dirty: dict[bytes, int] = {}  # feeders changed since their last checkpoint -> partition

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
        """Partitions assigned: runtimes reload from the tables (their idle clocks restart)."""
        self.paused = False
        self.runtimes.clear()
        self.dirty.clear()

    def runtime(self, feeder: bytes, load: StateLoader) -> FeederRuntime:
        rt = self.runtimes.get(feeder)
        if rt is None:
            state, model = load(feeder), load(feeder + MODEL_SUFFIX)
            if state and model:
                rt = FeederRuntime.load(zlib.decompress(state), zlib.decompress(model))
                rt.meter_clock_wall = rt.first_wall = self.clock()  # a restored feeder's meters are not idle yet
            else:
                rt = FeederRuntime(feeder.decode(), self.settings)
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
            clash = duplicate_charger(result, self.runtimes.values())
            if clash is not None:
                self._reject(msg, clash, emit)
                continue
            outputs = rt.apply(result, msg, now)
            if outputs:
                self._emit_outputs(outputs, emit)
        if checkpoint:
            self._checkpoint(emit)
        return emit

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
        state = rt.dispatcher.sessions.get(rec["charger_id"]) if rt is not None else None
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
                rt.release(now, outputs, force=force)
                self._emit_outputs(outputs, emit)
                dirty[feeder] = self.partition_of.get(feeder, 0)
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
            state, model = self.runtimes[feeder].dump()
            if model is not None:
                emit.checkpoints.append((feeder + MODEL_SUFFIX, partition, zlib.compress(model, 1)))
            emit.checkpoints.append((feeder, partition, zlib.compress(state, 1)))
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

    def _emit_outputs(self, outputs: list[Output], emit: Emit) -> None:
        """Queue the outputs; a runtime rejection turns an accepted input into a dead letter."""
        for out in outputs:
            if isinstance(out, Reject):
                self.accepted[out.msg.topic] -= 1
                self._reject(out.msg, out.rejection, emit)
            else:
                topic, key, record = out
                emit.messages.append((topic, key, encode_record(self.codec, record)))

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
                "held_telemetry": sum(len(rt.held) for rt in self.runtimes.values()),
                "skipped_stale_plans": sum(rt.skipped_stale_plans for rt in self.runtimes.values()),
                "checkpoint_ms_max": round(self.checkpoint_ms_max, 1)}


assert DEADLETTER in TOPICS
