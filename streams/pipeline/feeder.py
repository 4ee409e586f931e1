"""One feeder's state and what each valid input record does to it. Pure; checkpointed with :mod:`.statecodec`.

The runtime keeps the chargers registered on the feeder, applies each input exactly once (it records the
last offset applied per input partition), aggregates meter readings into event-time intervals, and on
every interval close runs the forecaster; at every planning boundary (and when a car plugs in or out) the
dispatcher re-plans and returns setpoints, incentive offers and settlements.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import NamedTuple

from streams.contracts.models import (
    ChargerRegistration,
    ChargerTelemetry,
    GridSignal,
    IncentiveResponse,
    MeterReading,
    Record,
    SiteRegistration,
    WeatherObservation,
)
from streams.contracts.topics import (
    CHARGER_REGISTRY,
    CHARGER_TELEMETRY,
    FLEXIBILITY,
    FORECASTS,
    INCENTIVES,
    METER_READINGS,
    SETPOINTS,
    SETTLEMENTS,
    UTILITY_EVENTS,
)
from streams.dispatch.config import changed_fields
from streams.dispatch.dispatcher import FeederDispatcher
from streams.dispatch.site_rules import outside_rating, site_conflict
from streams.forecasting.aggregate import IntervalAggregator
from streams.forecasting.forecaster import FeederForecaster
from streams.forecasting.migrate import CheckpointMismatch, migrate
from streams.ingest.validate import RawMessage, Rejection
from streams.pipeline import statecodec
from streams.pipeline.config import HISTORY_MS, FeederConfig
from streams.pipeline.utility_events import backup_event, pathway_events, refused_pathways, status_event

__all__ = ["Drained", "FeederRuntime", "Output", "Reject", "processing_error"]

Drained = Callable[[str], bool]
"""Whether every record of a (logical) input topic available for a feeder's partition has been read."""


def _all_read(topic: str) -> bool:
    """In-process: every meter reading and registration available is read; telemetry goes on until ``force``."""
    return topic != CHARGER_TELEMETRY


def processing_error(exc: BaseException) -> Rejection:
    """The dead-letter reason for a record whose processing raised ``exc`` (the feeder goes on without it)."""
    return Rejection("processing_error", f"{type(exc).__name__}: {exc}"[:500])


def site_index(chargers: dict[str, ChargerRegistration]) -> dict[str, dict[str, None]]:
    """Site id -> the ids of the chargers whose newest registration names it, in registration order: a site
    registration then touches its own chargers, not the whole feeder's (issue 22)."""
    index: dict[str, dict[str, None]] = {}
    for cid, reg in chargers.items():
        index.setdefault(reg.site_id, {})[cid] = None
    return index


class Reject(NamedTuple):
    """Dead-letter ``msg`` (the current input or one held earlier) for ``rejection``."""

    msg: RawMessage
    rejection: Rejection


Output = Reject | tuple[str, bytes, Record]


class FeederRuntime:
    """State of one feeder. ``apply`` returns outputs: records to produce, or inputs to dead-letter."""

    def __init__(self, feeder_id: str, config: FeederConfig) -> None:
        self.feeder_id = feeder_id
        self.step_ms = config.step_ms
        self.offsets: dict[tuple[str, int], int] = {}
        self.chargers: dict[str, ChargerRegistration] = {}
        self.sites: dict[str, SiteRegistration] = {}
        self.site_chargers: dict[str, dict[str, None]] = {}  # site id -> its chargers' ids (an ordered set)
        # Chargers handed to the dispatcher: on their first telemetry in event-time order, so a plan never
        # depends on how far the (rarely written) registry topic happens to have been read.
        self.active: set[str] = set()
        self.interval_ms = self.step_ms
        self.grace_ms = config.grace_ms
        self.align_idle_ms = config.align_idle_ms
        self.meter_wait_ms = 2 * self.step_ms + self.grace_ms
        self.max_plan_lag_ms = config.max_plan_lag_ms
        self.history_ms = config.history_ms
        self.meter_clock = 0  # newest meter reading time
        self.tel_clock = 0  # newest telemetry time received (held or not)
        self.plan_clock = 0  # newest released telemetry time: drives planning
        self.next_plan_ms: int | None = None
        # Telemetry waiting for the meter clock, by event time. Not checkpointed (see ``dump``): the state keeps
        # only the offsets, and the inputs stay uncommitted in Kafka, so a restart reads them again.
        self.held: list[tuple[int, int, RawMessage, ChargerTelemetry]] = []
        self.reapply: dict[tuple[str, int], set[int]] = {}  # held offsets restored from a checkpoint
        self.inbox: list[tuple[int, int, GridSignal | IncentiveResponse]] = []  # applied at the next plan
        self.held_seq = 0
        # A charger heard before its registration blocks this feeder's telemetry (kept in event-time order) until
        # the registration arrives, or the registry partition is read to its end and the feeder's telemetry clock
        # is ``align_idle_seconds`` past it; then it is unknown.
        self.unknown: set[str] = set()
        self.aggregator = IntervalAggregator(self.interval_ms, self.grace_ms)
        self.forecaster = FeederForecaster(config.forecaster)
        # (issued_at, step_ms, kW per step, its upper prediction bound): a plan uses the newest issued interval +
        # grace before it, so every forecast a future plan may pick is kept, however far the meter stream is read
        # ahead. (A checkpoint from before the bound was kept holds 3-tuples.)
        self.forecasts: list[tuple[int, int, list[float], list[float]]] = []
        self.loads: list[tuple[int, float]] = []  # measured (interval end, kW) not yet given to the dispatcher
        self.site_readings: list[MeterReading] = []  # site meter readings not yet given to the dispatcher
        self.dispatcher = FeederDispatcher(feeder_id, config.dispatch)
        self.plans = 0
        self.skipped_stale_plans = 0
        self.backup_episodes = 0  # islanded episodes started or ended (see FeederDispatcher.backup_episodes)
        self.refused: dict[str, str] = {}  # chargers whose inverter pathway their site does not approve (issue 21)

    # --- checkpoints: the forecaster (~50 KB) is saved only when it learned something ------------------
    def dump(self) -> tuple[bytes, bytes | None]:
        """``(state without the forecaster, forecaster or None if unchanged since the last dump)``, as
        :mod:`.statecodec` blobs.

        Held telemetry is saved as its offsets only (see :meth:`held_offsets`): the state's size depends on the
        fleet, not on how far one topic was read ahead of another.
        """
        state = self.__dict__.copy()
        forecaster = state.pop("forecaster")
        state["held"] = []
        state["reapply"] = self.held_offsets()
        model = None
        if forecaster.closed != self.__dict__.get("_saved_closed"):
            model = statecodec.encode(forecaster)
            state["_saved_closed"] = self.__dict__["_saved_closed"] = forecaster.closed
        return statecodec.encode(state), model

    @classmethod
    def load(cls, state: bytes, model: bytes) -> FeederRuntime:
        """Rebuild a runtime from the two parts of :meth:`dump`; :class:`.StateDecodeError` if they are not that."""
        fields, forecaster = statecodec.decode(state), statecodec.decode(model)
        if type(fields) is not dict or type(fields.get("feeder_id")) is not str or "forecaster" in fields:
            raise statecodec.StateDecodeError("not the state of a feeder runtime")
        if not isinstance(forecaster, FeederForecaster):
            raise statecodec.StateDecodeError(f"a {type(forecaster).__name__}, not a FeederForecaster")
        rt = cls.__new__(cls)
        rt.__dict__.update(fields)
        rt.__dict__.setdefault("sites", {})  # a checkpoint from before sites (issue 14)
        log = rt.__dict__.pop("power_log", {})  # a checkpoint from before dead reckoning moved into dispatch
        rt.dispatcher.__dict__.setdefault("power_log", log)
        rt.__dict__.setdefault("refused", {})  # ... and before inverter pathways (issue 21)
        rt.__dict__.setdefault("site_chargers", site_index(rt.chargers))  # ... and before the site index
        rt.__dict__.setdefault("history_ms", HISTORY_MS)  # ... and before old meter history was let go
        if not hasattr(rt.aggregator, "_spacing"):  # ... and before meters' spacings were kept
            rt.aggregator._spacing = {}
        rt.dispatcher.__dict__.setdefault("setpoint_answers", {})  # ... and before stations' answers (issue 16)
        for infos in (rt.dispatcher.registered, rt.dispatcher.chargers):
            for cid, info in infos.items():
                if not hasattr(info, "inverter_location"):
                    reg = rt.chargers.get(cid)
                    object.__setattr__(info, "inverter_location", reg.inverter_location if reg else "offboard")
        try:
            rt.forecaster = migrate(forecaster)  # a checkpoint of an older forecaster layout (issue 17)
        except CheckpointMismatch as exc:
            raise statecodec.StateDecodeError(f"forecaster checkpoint: {exc}") from exc
        return rt

    def reconfigure(self, config: FeederConfig) -> tuple[list[str], list[str]]:
        """Run on ``config`` (the worker's settings now) after a restart from a checkpoint written under others.

        The dispatch settings (weights, safety rules, default limits...) and the feeder's timing settings (grace,
        alignment wait, plan lag, history) apply at once. The interval length and the forecaster's settings shape
        what was learnt, so the checkpoint's stay: delete the feeder's checkpoint to start it on the new ones.
        Returns ``(names applied, names kept from the checkpoint)``; both empty when nothing changed.
        """
        applied = [f"dispatch.{name}" for name in self.dispatcher.reconfigure(config.dispatch)]
        for name in ("grace_ms", "align_idle_ms", "max_plan_lag_ms", "history_ms"):
            if getattr(self, name) != getattr(config, name):
                setattr(self, name, getattr(config, name))
                applied.append(name)
        self.aggregator.grace_ms = self.grace_ms
        self.meter_wait_ms = 2 * self.step_ms + self.grace_ms
        kept = ["step_ms"] if config.step_ms != self.step_ms else []
        kept += [f"forecaster.{name}" for name in changed_fields(self.forecaster.config, config.forecaster)]
        return applied, kept

    def held_offsets(self) -> dict[tuple[str, int], set[int]]:
        """Input offsets claimed but not applied yet: held telemetry, and restored offsets not read again yet."""
        out = {tp: set(offs) for tp, offs in self.reapply.items() if offs}
        for _, _, msg, _ in self.held:
            out.setdefault((msg.topic, msg.partition), set()).add(msg.offset)
        return out

    def claim(self, topic: str, partition: int, offset: int) -> bool:
        """True the first time an input offset is seen; False for one already applied (a replay after restart).

        An offset that was held (not applied) when the state was checkpointed is claimed again.
        """
        key = (topic, partition)
        if offset <= self.offsets.get(key, -1):
            again = self.reapply.get(key)
            if again and offset in again:
                again.discard(offset)
                return True
            return False
        self.offsets[key] = offset
        return True

    def apply(self, record: Record, msg: RawMessage, wall_ms: int = 0, drained: Drained = _all_read) -> list[Output]:
        """Apply one valid input; return what to produce and what to dead-letter.

        ``wall_ms`` (the worker's clock) is used for one thing only: to skip plans of intervals long over when
        ``max_plan_lag_seconds`` is set (live catch-up). ``drained`` tells whether every record of an input topic
        available for this feeder's partition has been read (see :meth:`release`).
        """
        out: list[Output] = []
        if isinstance(record, MeterReading):
            self.meter_clock = max(self.meter_clock, record.timestamp)
            self._meter(record, msg, out)
        elif isinstance(record, ChargerTelemetry):
            self.held_seq += 1
            self.tel_clock = max(self.tel_clock, record.timestamp)
            heapq.heappush(self.held, (record.timestamp, self.held_seq, msg, record))
        elif isinstance(record, ChargerRegistration | SiteRegistration):
            self._registration(record, msg, out)
        elif isinstance(record, GridSignal | IncentiveResponse):
            self.held_seq += 1
            ts = record.issued_at if isinstance(record, GridSignal) else record.responded_at
            heapq.heappush(self.inbox, (ts, self.held_seq, record))
        else:
            out.append(Reject(msg, Rejection("wrong_record_type", f"{type(record).__name__} is not a feeder input")))
        self.release(out, wall_ms=wall_ms, drained=drained)
        return out

    def _registration(self, record: ChargerRegistration | SiteRegistration, msg: RawMessage, out: list[Output]) -> None:
        """Registrations apply in ``registered_at`` order (an older one is ``stale_registration``); a charger
        registration that disagrees with its site's is applied under the stricter rules and dead-lettered
        (``site_conflict``); a change revokes power no longer allowed at once."""
        sites = self.sites
        old = self.chargers.get(record.charger_id) if isinstance(record, ChargerRegistration) \
            else sites.get(record.site_id)
        if old is not None and record.registered_at < old.registered_at:
            out.append(Reject(msg, Rejection("stale_registration", f"registered_at {record.registered_at} is older "
                                                                   f"than the one applied ({old.registered_at})")))
            return
        if isinstance(record, SiteRegistration):
            sites[record.site_id] = record
            self.dispatcher.on_site_registration(record)
            conflicts = [site_conflict(record, self.chargers[c]) for c in self.site_chargers.get(record.site_id, ())]
            if record.feeder_id == self.feeder_id:
                cls = self.dispatcher.site_rules(record.site_id).interconnection_class
                event = status_event(self.feeder_id, old if isinstance(old, SiteRegistration) else None, record, cls)
                if event is not None:
                    out.append((UTILITY_EVENTS, self.feeder_id.encode(), event))
        else:
            if isinstance(old, ChargerRegistration) and old.site_id != record.site_id:
                self.site_chargers.get(old.site_id, {}).pop(record.charger_id, None)
            self.site_chargers.setdefault(record.site_id, {})[record.charger_id] = None
            self.chargers[record.charger_id] = record
            self.unknown.discard(record.charger_id)
            if record.charger_id in self.active:
                self.dispatcher.on_registration(record)  # a change to a charger already in the plan
            conflicts = [site_conflict(sites.get(record.site_id), record)]
        for why in filter(None, conflicts):
            out.append(Reject(msg, Rejection("site_conflict", why)))
        self._pathways(record, out)
        self._revoke(max(self.plan_clock, record.registered_at), out)

    def retire(self, charger_id: str) -> list[Output]:
        """Deactivate a charger this feeder may no longer command (another feeder holds it), revoking at once."""
        reg = self.chargers.get(charger_id)
        out: list[Output] = []
        if reg is None or not reg.active:
            return out
        self.chargers[charger_id] = reg = reg.model_copy(update={"active": False})
        if charger_id in self.active:
            self.dispatcher.on_registration(reg)
        self._revoke(max(self.plan_clock, reg.registered_at), out)
        return out

    def _pathways(self, record: ChargerRegistration | SiteRegistration, out: list[Output]) -> None:
        """A ``pathway_refused`` event for each charger the registration leaves with an unapproved pathway."""
        if isinstance(record, ChargerRegistration):
            touched = [record] if record.feeder_id == self.feeder_id else []
        else:
            touched = [r for r in map(self.chargers.__getitem__, self.site_chargers.get(record.site_id, ()))
                       if r.feeder_id == self.feeder_id]
        now = refused_pathways(touched, self.sites)
        before = {r.charger_id: self.refused.pop(r.charger_id) for r in touched if r.charger_id in self.refused}
        for event in pathway_events(self.feeder_id, before, now, self.chargers, record.registered_at):
            out.append((UTILITY_EVENTS, self.feeder_id.encode(), event))
        self.refused.update(now)

    def _revoke(self, now_ms: int, out: list[Output]) -> None:
        for sp in self.dispatcher.revocations(now_ms):
            out.append((SETPOINTS, sp.charger_id.encode(), sp))

    def observe_weather(self, obs: WeatherObservation) -> None:
        self.forecaster.observe_weather(obs)

    # --- event time -----------------------------------------------------------------------------
    def release(self, out: list[Output], force: bool = False, wall_ms: int = 0, drained: Drained = _all_read) -> None:
        """Apply held telemetry in event-time order, as far as the meter stream allows.

        Topics are consumed independently, so one may be read ahead of another. A plan at ``t`` uses what the
        meter stream closed before ``closed_before(t)`` (forecasts, loads, site readings); telemetry at ``t``
        waits until the meter clock shows all of that is in, i.e. has passed ``closed_before(t) + grace``. The
        plan is then the same whatever the consumption order, and a plan at a boundary does not wait for the
        meter round stamped at that boundary.

        The wait ends without the meters only when the edge says the meter stream has stopped (its partition
        read to its end and quiet, ``drained(METER_READINGS)``; the runtime never reads a clock) and the feeder's
        telemetry clock is ``meter_wait_ms`` past the held record (a feeder without meters, or a meter stream
        that stopped); or when the telemetry stream has stopped too (the end of input: everything goes), or with
        ``force``. ``meter_wait_ms`` (two intervals plus the grace) is
        longer than meters ever lag telemetry while they flow, so a replay paced in chunks, read while it is
        produced, decides as one read at once. A charger not registered waits for the registry topic likewise,
        ``align_idle_seconds`` of telemetry time.
        """
        ended = force or (drained(METER_READINGS) and drained(CHARGER_TELEMETRY))  # every input stopped
        while self.held:
            ts, _, msg, telemetry = self.held[0]
            ahead = self.tel_clock - ts
            if not (ended or self.meter_clock > self.closed_before(ts) + self.grace_ms
                    or (ahead >= self.meter_wait_ms and drained(METER_READINGS))):
                return
            cid = telemetry.charger_id
            if cid not in self.chargers and cid not in self.unknown:
                if not (ended or (ahead >= self.align_idle_ms and drained(CHARGER_REGISTRY))):
                    return  # the registry topic may be read behind: wait for the registration
                self.unknown.add(cid)
            heapq.heappop(self.held)
            if cid in self.unknown:
                reason = f"charger {cid} is not registered on feeder {self.feeder_id}"
                out.append(Reject(msg, Rejection("unknown_charger", reason)))
                continue
            impossible = outside_rating(telemetry, self.chargers[cid])
            if impossible is not None:  # never settled, never used for headroom
                out.append(Reject(msg, Rejection("invalid_value", impossible)))
                continue
            try:
                self._plan_until(ts, wall_ms, out)
                if cid not in self.active:
                    self.active.add(cid)
                    self.dispatcher.on_registration(self.chargers[cid])
                self._telemetry(telemetry, wall_ms, out)
            except Exception as exc:  # this record is dead-lettered; the feeder goes on with the next
                out.append(Reject(msg, processing_error(exc)))

    def closed_before(self, t: int) -> int:
        """The last interval end a plan at ``t`` takes meter data up to: the newest before ``t - interval - grace``."""
        return (t - self.interval_ms - self.grace_ms - 1) // self.interval_ms * self.interval_ms

    def _plan_until(self, ts: int, wall_ms: int, out: list[Output]) -> None:
        """Plan every step boundary the telemetry clock has passed (chargers send idle heartbeats)."""
        if ts <= self.plan_clock:
            return
        self.plan_clock = ts
        if self.next_plan_ms is None:
            self.next_plan_ms = (ts // self.step_ms + 1) * self.step_ms
        while ts > self.next_plan_ms:  # everything stamped at the boundary is applied first
            self._plan(self.next_plan_ms, wall_ms, out)
            self.next_plan_ms += self.step_ms

    # --- inputs -----------------------------------------------------------------------------------
    def _meter(self, reading: MeterReading, msg: RawMessage, out: list[Output]) -> None:
        outcome = self.aggregator.add(reading)
        if outcome == "late":
            out.append(Reject(msg, Rejection("late", f"reading at {reading.timestamp} is after its interval closed "
                                                     f"(watermark {self.aggregator.watermark}, grace "
                                                     f"{self.aggregator.grace_ms} ms)")))
            return
        if reading.site_id is not None and outcome == "accepted":
            self.site_readings.append(reading)  # a site's own meter (V2H/V2B, site limits), given at plan time
        closed = self.aggregator.advance()
        for interval in closed:
            forecast = self.forecaster.update(interval)
            self.forecasts.append((forecast.issued_at, forecast.step_ms, forecast.kw.tolist(),
                                   forecast.upper_kw.tolist()))
            if interval.kw is not None:
                self.loads.append((interval.end, interval.kw))
            out.append((FORECASTS, self.feeder_id.encode(), forecast.to_contract(self.feeder_id)))
        if closed:  # keep what a plan up to ``history_ms`` behind (or at the oldest held telemetry) may use
            first = self.meter_clock - self.history_ms
            self._history_until(self.closed_before(min(first, self.held[0][0]) if self.held else first))

    def _telemetry(self, telemetry: ChargerTelemetry, wall_ms: int, out: list[Output]) -> None:
        if self.dispatcher.on_reported_telemetry(telemetry):
            self._plan(telemetry.timestamp, wall_ms, out)  # plug-in or plug-out: re-plan now
        self._revoke(telemetry.timestamp, out)  # islanded: revoke at once

    # --- dispatch ---------------------------------------------------------------------------------
    def _history_until(self, known: int) -> tuple[int, int, list[float], list[float]] | None:
        """Give the dispatcher the loads and site readings closed by ``known``, drop the forecasts no plan at or
        after it can pick, and return the one a plan at ``known`` picks (the newest issued by then), if any."""
        while self.loads and self.loads[0][0] <= known:
            self.dispatcher.observe_load(*self.loads.pop(0))
        taken = 0
        while taken < len(self.site_readings) and self.site_readings[taken].timestamp <= known:
            self.dispatcher.on_site_meter(self.site_readings[taken])
            taken += 1
        del self.site_readings[:taken]
        usable = [i for i, f in enumerate(self.forecasts) if f[0] <= known]
        if not usable:
            return None
        del self.forecasts[:usable[-1]]  # older ones can no longer be picked
        fc = self.forecasts[0]
        return fc if len(fc) == 4 else (fc[0], fc[1], fc[2], fc[2])  # an older checkpoint's: no bound kept

    def _plan(self, now_ms: int, wall_ms: int, out: list[Output]) -> None:
        signals: list[GridSignal] = []  # applied in one pass: a flood of signals costs linear time
        while self.inbox and self.inbox[0][0] <= now_ms:  # signals and responses known by now, in order
            record = heapq.heappop(self.inbox)[2]
            if isinstance(record, GridSignal):
                signals.append(record)
            else:
                self.dispatcher.on_incentive_response(record)
        self.dispatcher.on_signals(signals)
        if not self.active:
            return  # nothing to dispatch on this feeder
        if self.max_plan_lag_ms and wall_ms - (now_ms + self.step_ms) > self.max_plan_lag_ms:
            self.skipped_stale_plans += 1  # catching up a backlog: this interval is already over
            return
        fc = self._history_until(self.closed_before(now_ms))  # in whatever the consumption order (see release)
        if fc is not None:
            issued_at, step_ms, kw, upper = fc
            result = self.dispatcher.on_interval(now_ms, kw, issued_at, step_ms, upper)
        else:
            result = self.dispatcher.on_interval(now_ms)
        self.plans += result.replanned
        for sp in result.setpoints:
            out.append((SETPOINTS, sp.charger_id.encode(), sp))
        for offer in result.incentives:
            out.append((INCENTIVES, offer.customer_id.encode(), offer))
        for st in result.settlements:
            out.append((SETTLEMENTS, st.customer_id.encode(), st))
        for flex in result.flexibility:
            out.append((FLEXIBILITY, self.feeder_id.encode(), flex))
        self.backup_episodes += len(result.backup_episodes)
        for ep in result.backup_episodes:
            out.append((UTILITY_EVENTS, self.feeder_id.encode(), backup_event(self.feeder_id, ep)))
