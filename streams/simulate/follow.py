"""Live simulator chargers that answer setpoints: the latest setpoint per charger (pure) and its Kafka listener.

:class:`LatestSetpoints` keeps, per charger, the setpoint with the highest ``sequence`` and answers the
simulator's ``setpoint_fn`` with the twin's rule (:func:`streams.simulate.twin.command_at`); a charger with no
setpoint yet charges uncontrolled (``None``). :class:`SetpointListener` (the Kafka edge) feeds it from the
namespace's ``evgrid.setpoints`` topic in a background thread.
"""

from __future__ import annotations

import threading
import uuid

from streams.contracts.codec import default_codec
from streams.contracts.models import ChargerSetpoint, decode_record
from streams.contracts.topics import SETPOINTS
from streams.settings import Settings
from streams.simulate.twin import command_at

__all__ = ["LatestSetpoints", "SetpointListener"]


class LatestSetpoints:
    """The latest setpoint of every charger, by ``sequence``; callable as the simulator's ``setpoint_fn``."""

    def __init__(self, schedule_ms: int) -> None:
        self.schedule_ms = schedule_ms
        self.latest: dict[str, ChargerSetpoint] = {}
        self.received = 0

    def offer(self, sp: ChargerSetpoint) -> bool:
        """Keep ``sp`` if its sequence is the charger's highest yet; whether it was kept."""
        self.received += 1
        old = self.latest.get(sp.charger_id)
        if old is not None and sp.sequence <= old.sequence:
            return False
        self.latest[sp.charger_id] = sp
        return True

    def __call__(self, charger_id: str, ts: int) -> float | None:
        sp = self.latest.get(charger_id)
        return None if sp is None else command_at(sp, ts, self.schedule_ms, 0.0)


class SetpointListener:
    """Reads ``<prefix>evgrid.setpoints`` (from the earliest offset) into a :class:`LatestSetpoints` until stopped.

    Undecodable records are skipped and counted in ``skipped``.
    """

    def __init__(self, settings: Settings, store: LatestSetpoints) -> None:
        self.settings, self.store = settings, store
        self.skipped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="setpoint-listener", daemon=True)
        self._ready = threading.Event()

    def start(self, timeout_s: float = 30.0) -> SetpointListener:
        """Start the thread; return once the consumer is subscribed (or after ``timeout_s``)."""
        self._thread.start()
        self._ready.wait(timeout_s)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        from streams.kafka.clients import make_consumer

        codec = default_codec()
        consumer = make_consumer(self.settings, f"sim-follow-{uuid.uuid4().hex[:10]}", enable_auto_commit=False)
        try:
            consumer.subscribe([self.settings.topic_prefix + SETPOINTS])
            self._ready.set()
            while not self._stop.is_set():
                msg = consumer.poll(0.2)
                if msg is None or msg.error() is not None:
                    continue
                try:
                    sp = decode_record(codec, msg.value() or b"", "ChargerSetpoint")
                except Exception:  # a bad record never stops the chargers
                    self.skipped += 1
                    continue
                if isinstance(sp, ChargerSetpoint):
                    self.store.offer(sp)
        finally:
            self._ready.set()
            consumer.close()
