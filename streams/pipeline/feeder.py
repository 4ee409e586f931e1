"""One feeder's state and what each valid input record does to it. Pure and picklable.

The runtime keeps the chargers registered on the feeder, applies each input exactly once (it records the
last offset applied per input partition), aggregates meter readings into event-time intervals, and on
every interval close runs the forecaster; at every planning boundary (and when a car plugs in or out) the
dispatcher re-plans and returns setpoints, incentive offers and settlements.
"""

from __future__ import annotations

import pickle
from typing import NamedTuple

from streams.contracts.models import (
    ChargerRegistration,
    ChargerTelemetry,
    GridSignal,
    IncentiveResponse,
    MeterReading,
    Record,
    WeatherObservation,
)
from streams.contracts.topics import FORECASTS, INCENTIVES, SETPOINTS, SETTLEMENTS
from streams.dispatch.dispatcher import DispatchConfig, FeederDispatcher
from streams.forecasting.aggregate import IntervalAggregator
from streams.forecasting.forecaster import FeederForecaster, ForecasterConfig, ForecastResult
from streams.ingest.validate import RawMessage, Rejection
from streams.settings import Settings

__all__ = ["FeederRuntime", "Output", "Reject"]


class Reject(NamedTuple):
    """Dead-letter ``msg`` (the current input or one held earlier) for ``rejection``."""

    msg: RawMessage
    rejection: Rejection


Output = Reject | tuple[str, bytes, Record]


class FeederRuntime:
    """State of one feeder. ``apply`` returns outputs: records to produce, or inputs to dead-letter."""

    def __init__(self, feeder_id: str, settings: Settings) -> None:
        self.feeder_id = feeder_id
        self.step_ms = settings.interval_minutes * 60_000
        self.registration_grace_ms = settings.registration_grace_seconds * 1000
        self.offsets: dict[tuple[str, int], int] = {}
        self.chargers: dict[str, ChargerRegistration] = {}
        self.watermark = 0  # max event time of any input
        self.plan_clock = 0  # max event time of charger telemetry: drives planning
        self.next_plan_ms: int | None = None
        # Telemetry of chargers not (yet) registered: held until the registration arrives or the watermark
        # passes its time + grace (topics are consumed independently, so a registration may come later).
        self.pending: dict[str, list[tuple[RawMessage, ChargerTelemetry]]] = {}
        self.aggregator = IntervalAggregator(self.step_ms, settings.grace_seconds * 1000)
        self.forecaster = FeederForecaster(ForecasterConfig.from_settings(settings))
        self.forecast: ForecastResult | None = None
        self.dispatcher = FeederDispatcher(feeder_id, DispatchConfig.from_settings(settings))
        self.plans = 0

    # --- checkpoints: the forecaster (~50 KB) is saved only when it learned something ------------------
    def dump(self) -> tuple[bytes, bytes | None]:
        """``(state without the forecaster, forecaster or None if unchanged since the last dump)``."""
        state = self.__dict__.copy()
        forecaster = state.pop("forecaster")
        model = None
        if forecaster.closed != self.__dict__.get("_saved_closed"):
            model = pickle.dumps(forecaster, 5)
            state["_saved_closed"] = self.__dict__["_saved_closed"] = forecaster.closed
        return pickle.dumps(state, 5), model

    @classmethod
    def load(cls, state: bytes, model: bytes) -> FeederRuntime:
        """Rebuild a runtime from the two parts of :meth:`dump`."""
        rt = cls.__new__(cls)
        rt.__dict__.update(pickle.loads(state))
        rt.forecaster = pickle.loads(model)
        return rt

    def claim(self, topic: str, partition: int, offset: int) -> bool:
        """True the first time an input offset is seen; False for one already applied (a replay after restart)."""
        key = (topic, partition)
        if offset <= self.offsets.get(key, -1):
            return False
        self.offsets[key] = offset
        return True

    def apply(self, record: Record, msg: RawMessage) -> list[Output]:
        """Apply one valid input; return what to produce and what to dead-letter."""
        out: list[Output] = []
        if isinstance(record, MeterReading):
            self._advance(record.timestamp, out)
            self._meter(record, msg, out)
        elif isinstance(record, ChargerTelemetry):
            if record.charger_id not in self.chargers:
                self.pending.setdefault(record.charger_id, []).append((msg, record))
            self._advance(record.timestamp, out)
            self._plan_until(record.timestamp, out)
            if record.charger_id in self.chargers:
                self._telemetry(record, out)
        elif isinstance(record, ChargerRegistration):
            self.chargers[record.charger_id] = record
            self.dispatcher.on_registration(record)
            for _, held in self.pending.pop(record.charger_id, []):
                self._telemetry(held, out)
        elif isinstance(record, GridSignal):
            self.dispatcher.on_signal(record)
        elif isinstance(record, IncentiveResponse):
            self.dispatcher.on_incentive_response(record)
        else:
            out.append(Reject(msg, Rejection("wrong_record_type", f"{type(record).__name__} is not a feeder input")))
        return out

    def observe_weather(self, obs: WeatherObservation) -> None:
        self.forecaster.observe_weather(obs)

    # --- event time -----------------------------------------------------------------------------
    def _plan_until(self, ts: int, out: list[Output]) -> None:
        """Plan every step boundary the telemetry clock passed.

        Planning follows the chargers' own event time (telemetry, with idle heartbeats), not the meters':
        the topics are consumed independently, so a meter topic read ahead must not make every charger
        look stale.
        """
        if ts <= self.plan_clock:
            return
        self.plan_clock = ts
        if self.next_plan_ms is None:
            self.next_plan_ms = (ts // self.step_ms + 1) * self.step_ms
        while ts >= self.next_plan_ms:
            self._plan(self.next_plan_ms, out)
            self.next_plan_ms += self.step_ms

    def _advance(self, ts: int, out: list[Output]) -> None:
        """Move the watermark; dead-letter held telemetry whose registration grace has passed."""
        self.watermark = max(self.watermark, ts)
        if self.pending:
            deadline = self.watermark - self.registration_grace_ms
            for charger_id in [c for c, held in self.pending.items() if held[0][1].timestamp < deadline]:
                for held_msg, _ in self.pending.pop(charger_id):
                    reason = f"charger {charger_id} is not registered on feeder {self.feeder_id}"
                    out.append(Reject(held_msg, Rejection("unknown_charger", reason)))

    # --- inputs -----------------------------------------------------------------------------------
    def _meter(self, reading: MeterReading, msg: RawMessage, out: list[Output]) -> None:
        outcome = self.aggregator.add(reading)
        if outcome == "late":
            out.append(Reject(msg, Rejection("late", f"reading at {reading.timestamp} is after its interval closed "
                                                     f"(watermark {self.aggregator.watermark}, grace "
                                                     f"{self.aggregator.grace_ms} ms)")))
            return
        for interval in self.aggregator.advance():
            self.forecast = self.forecaster.update(interval)
            if interval.kw is not None:
                self.dispatcher.observe_load(interval.end, interval.kw)
            out.append((FORECASTS, self.feeder_id.encode(), self.forecast.to_contract(self.feeder_id)))

    def _telemetry(self, telemetry: ChargerTelemetry, out: list[Output]) -> None:
        before = self.dispatcher.sessions.get(telemetry.charger_id)
        was_connected = before is not None and before.connected
        self.dispatcher.on_telemetry(telemetry)
        if telemetry.connected != was_connected and telemetry.timestamp >= self.plan_clock - self.step_ms:
            self._plan(telemetry.timestamp, out)  # plug-in or plug-out: re-plan now

    # --- dispatch ---------------------------------------------------------------------------------
    def _plan(self, now_ms: int, out: list[Output]) -> None:
        if not self.chargers:
            return  # nothing to dispatch on this feeder
        fc = self.forecast
        if fc is not None:
            result = self.dispatcher.on_interval(now_ms, fc.kw.tolist(), fc.issued_at, fc.step_ms)
        else:
            result = self.dispatcher.on_interval(now_ms)
        self.plans += result.replanned
        for sp in result.setpoints:
            out.append((SETPOINTS, sp.charger_id.encode(), sp))
        for offer in result.incentives:
            out.append((INCENTIVES, offer.customer_id.encode(), offer))
        for st in result.settlements:
            out.append((SETTLEMENTS, st.customer_id.encode(), st))
