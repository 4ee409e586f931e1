"""Closed loop in-process: charger twins (:mod:`streams.simulate.twin`) answer the worker's setpoints.

The exogenous inputs (registrations, meter readings, weather, grid signals) are replayed as recorded; charger
telemetry comes from the twins instead of the sessions file. Event time advances twin event by twin event: the
records stamped up to ``t`` go to the worker's own code (:class:`~streams.pipeline.worker.FeederWorker`), the
setpoints it emits in answer reach the twins at ``t``, and only then does time move on. Meter readings are
given a little ahead of the telemetry (a plan only uses what closed before it, so this changes nothing but lets
telemetry through at once), except a site's own meter: a load file's ``site_id`` rows are the site's own load
(behind the meter, without its chargers), and the site meter measures the point of interconnection, so each
reading is given when the twins reach its time, as that own load plus the power of the site's twins then.
Scores come from what the twins did.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from streams.backtest.inputs import BacktestInputs, merged_records
from streams.backtest.metrics import Grid, SessionOutcome, SimResult
from streams.contracts.codec import default_codec
from streams.contracts.models import (
    ChargerRegistration,
    ChargerSetpoint,
    ChargerTelemetry,
    MeterReading,
    decode_record,
    encode_record,
)
from streams.contracts.sessions import AcnSession
from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, METER_READINGS, SETPOINTS, TOPICS, WEATHER
from streams.ingest.validate import RawMessage
from streams.pipeline.worker import Emit, FeederWorker
from streams.replay.importers import meter_periods
from streams.settings import Settings, pipeline_config
from streams.simulate.twin import ChargerTwin, SessionResult, TwinConfig, TwinFleet, TwinSession

__all__ = ["ClosedLoopRun", "InProcessPipeline", "Pipeline", "build_fleet", "load_curve", "power_at", "run_closed_loop",
           "run_settings", "twin_config", "twin_result"]

HOUR_MS = 3_600_000


@dataclass
class ClosedLoopRun:
    """The worker's outputs by logical topic (decoded) and what the twins did (controlled and uncontrolled)."""

    outputs: dict[str, list[Any]]
    controlled: list[SessionResult]
    uncontrolled: list[SessionResult]
    segments: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)
    """Per feeder, the controlled (from, to, kW) stretches of every charger."""
    free_segments: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)
    site_segments: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)
    """Per site (registered chargers' ``site_id``), the controlled stretches of its chargers."""
    free_site_segments: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)
    """Per site, the stretches of the same twins at full power (the uncontrolled reference)."""
    telemetry: int = 0
    """Telemetry records the twins sent."""
    rounds: int = 0
    """Times the worker was given twin telemetry and its answer delivered."""
    accepted: dict[str, int] = field(default_factory=dict)
    """Records the worker applied, by topic."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Records it dead-lettered, by ``topic:reason``."""
    physics: TwinConfig | None = None
    """How the twins behaved (taper, efficiencies): the perfect-foresight optimum obeys the same."""


def run_settings(inputs: BacktestInputs, base: Settings | None = None) -> Settings:
    """The worker settings of a run (as :func:`streams.backtest.orchestrator.worker_env` gives them)."""
    upd: dict[str, Any] = {**inputs.settings, "interval_minutes": inputs.step_ms // 60_000,
                           "horizon_hours": max(1, inputs.horizon_ms // HOUR_MS)}
    if inputs.import_limit_kw is not None:
        upd["default_import_limit_kw"] = inputs.import_limit_kw
    if inputs.export_limit_kw is not None:
        upd["default_export_limit_kw"] = inputs.export_limit_kw
    return Settings(**{**(base.model_dump() if base is not None else {}), **upd})


def twin_config(settings: Settings, **overrides: Any) -> TwinConfig:
    """Twin behaviour matching the run's settings (schedule length, fallback)."""
    return TwinConfig(**{"schedule_ms": int(settings.setpoint_schedule_hours * HOUR_MS),
                         "default_fallback_kw": settings.fallback_kw, **overrides})


def _twin_session(s: AcnSession, reg: ChargerRegistration | None) -> TwinSession:
    dis = 0.0
    if s.bidirectional or s.is_battery:
        dis = min(s.max_power_kw, reg.max_discharge_kw) if reg is not None else s.max_power_kw
    return TwinSession(s.session_id, s.station_id, s.arrival, s.departure, s.estimated_departure,
                       s.requested_energy_kwh, s.max_power_kw, dis, s.capacity_kwh, s.initial_soc_pct,
                       stationary=s.is_battery)


def build_fleet(inputs: BacktestInputs, config: TwinConfig) -> TwinFleet:
    """One twin per registered charger (and per station of the sessions), idle from the period start."""
    start, end = inputs.period()
    by: dict[str, list[TwinSession]] = defaultdict(list)
    for s in inputs.sessions:
        by[s.station_id].append(_twin_session(s, inputs.registrations.get(s.station_id)))
    twins = {}
    for cid in sorted({*inputs.registrations, *by}):
        reg = inputs.registrations.get(cid)
        feeder = reg.feeder_id if reg is not None else next(
            (s.feeder_id for s in inputs.sessions if s.station_id == cid and s.feeder_id), inputs.feeder_id)
        twins[cid] = ChargerTwin(cid, feeder, by.get(cid, []), config, start_ms=start, end_ms=end,
                                 rating_kw=reg.max_charge_kw if reg is not None else None,
                                 discharge_rating_kw=reg.max_discharge_kw if reg is not None else None)
    return TwinFleet(twins)


def power_at(twin: ChargerTwin, t: int) -> float:
    """The twin's power at ``t`` (kW, + import), for ``t`` up to the time the twin has reached and beyond it."""
    if t >= twin.t:
        return twin.power
    for a, b, kw in reversed(twin.segments):
        if a <= t < b:
            return kw
        if b <= t:
            break
    return 0.0


def mean_power(twin: ChargerTwin, start: int, end: int) -> float:
    """The twin's mean power over ``[start, end)`` (kW, + import); ``power_at(end - 1)`` for an empty period."""
    if end <= start:
        return power_at(twin, end - 1)
    total = 0.0
    cuts = sorted({start, end, *(x for a, b, _ in twin.segments for x in (a, b) if start < x < end),
                   *((twin.t,) if start < twin.t < end else ())})
    for a, b in itertools.pairwise(cuts):
        total += power_at(twin, a) * (b - a)
    return total / (end - start)


def _site_meter(d: dict[str, Any], codec: Any) -> MeterReading | None:
    """The site meter reading of a raw history dict (``None``: another record)."""
    if d["topic"] != METER_READINGS or d["value"] is None:
        return None
    rec = decode_record(codec, d["value"], TOPICS[METER_READINGS].record)
    return rec if isinstance(rec, MeterReading) and rec.site_id is not None else None


def _segments(fleet: TwinFleet, site_of: Mapping[str, str] | None = None) -> dict[str, list[tuple[int, int, float]]]:
    """Every twin's stretches per feeder, or with ``site_of`` (charger → site) per site."""
    out: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
    for cid, tw in fleet.twins.items():
        key = tw.feeder_id if site_of is None else site_of.get(cid)
        if key is not None:
            out[key] += tw.segments
    return dict(out)


class Pipeline(Protocol):
    """Where the closed loop's records go and the setpoints come from: the worker's code in-process
    (:class:`InProcessPipeline`) or a worker behind the broker (:mod:`streams.backtest.brokerloop`)."""

    outputs: dict[str, list[Any]]
    accepted: dict[str, int]
    rejected: dict[str, int]

    def registrations(self, msgs: list[RawMessage]) -> None:
        """Apply the charger registrations (before anything else)."""

    def exogenous(self, msgs: list[RawMessage]) -> None:
        """Meter readings and grid signals (no answer awaited)."""

    def weather(self, msg: RawMessage) -> None:
        """A weather record."""

    def telemetry(self, msgs: list[RawMessage]) -> list[ChargerSetpoint]:
        """The twins' telemetry of one instant; the setpoints the worker sends in answer."""

    def finish(self, flush: list[RawMessage]) -> None:
        """The end of input (the flush records); every output is in :attr:`outputs` afterwards."""


class InProcessPipeline:
    """The worker's own code (:class:`~streams.pipeline.worker.FeederWorker`) in this process."""

    def __init__(self, settings: Settings) -> None:
        self.worker = FeederWorker(pipeline_config(settings), worker_id="closed-loop", clock=lambda: 2**62)
        self.codec = default_codec()
        self.state: dict[bytes, bytes] = {}
        self.outputs: dict[str, list[Any]] = {}
        self.accepted: dict[str, int] = {}
        self.rejected: dict[str, int] = {}

    def _collect(self, emit: Emit) -> list[ChargerSetpoint]:
        for feeder, _, blob in emit.checkpoints:
            self.state[feeder] = blob
        sps = []
        for topic, _, value in emit.messages:
            rec = decode_record(self.codec, value, TOPICS[topic].record)
            self.outputs.setdefault(topic, []).append(rec)
            if topic == SETPOINTS:
                assert isinstance(rec, ChargerSetpoint)
                sps.append(rec)
        return sps

    def _feed(self, msgs: list[RawMessage], force: bool) -> list[ChargerSetpoint]:
        emit = self.worker.process(msgs, self.state.get, checkpoint=False) if msgs else Emit()
        if force:  # no meter stream to wait for in-process: release what the gating still holds
            tail = self.worker.tick(force=True, checkpoint=False)
            emit.messages += tail.messages
        return self._collect(emit)

    def registrations(self, msgs: list[RawMessage]) -> None:
        self._feed(msgs, force=False)

    def exogenous(self, msgs: list[RawMessage]) -> None:
        self._feed(msgs, force=False)

    def weather(self, msg: RawMessage) -> None:
        self.worker.process_weather([msg])

    def telemetry(self, msgs: list[RawMessage]) -> list[ChargerSetpoint]:
        return self._feed(msgs, force=True)

    def finish(self, flush: list[RawMessage]) -> None:
        self._feed(flush, force=True)
        self._collect(self.worker.checkpoint())
        self.accepted = dict(sorted(self.worker.accepted.items()))
        self.rejected = {f"{tp}:{why}": n for (tp, why), n in sorted(self.worker.rejected.items())}


def run_closed_loop(inputs: BacktestInputs, settings: Settings, config: TwinConfig | None = None,
                    lead_ms: int | None = None, pipeline: Pipeline | None = None) -> ClosedLoopRun:
    """Run ``inputs`` closed loop through ``pipeline`` (default: a FeederWorker in-process; see the module doc).

    ``settings`` are the worker's (see :func:`run_settings`); ``config`` the twins' (default
    :func:`twin_config`); ``lead_ms`` how far exogenous records go ahead of the twins (default one planning
    step plus the grace period and one interval; with site meters at most the grace period, so that a site
    reading given when the twins reach it is not late).
    """
    cfg = config or twin_config(settings)
    lead = lead_ms if lead_ms is not None else inputs.step_ms + settings.grace_seconds * 1000 \
        + settings.interval_minutes * 60_000
    pipe: Pipeline = pipeline if pipeline is not None else InProcessPipeline(settings)
    codec = default_codec()
    offsets: dict[str, int] = {}

    def raw(topic: str, key: bytes | None, value: bytes | None, ts: int) -> RawMessage:
        off = offsets[topic] = offsets.get(topic, -1) + 1
        return RawMessage(topic, 0, off, key, value, ts)

    flushed = inputs.with_flush()
    flush_tel = [r for r in flushed.streams[-1] if r.topic == CHARGER_TELEMETRY] if flushed is not inputs else []
    site_meters: list[MeterReading] = []  # held back from the replay, given with the twins' power
    start, _ = inputs.period()

    def exogenous() -> Iterator[dict[str, Any]]:
        for d in merged_records(inputs):
            if d["topic"] == CHARGER_TELEMETRY:
                continue
            m = _site_meter(d, codec)
            if m is None or m.timestamp <= start:  # before the twins start, a site reads its own load alone
                yield d
            else:
                site_meters.append(m)

    exo = exogenous()
    regs = [d for d in merged_records(inputs) if d["topic"] == CHARGER_REGISTRY]
    pipe.registrations([raw(d["topic"], d["key"], d["value"], d["timestamp"]) for d in regs])
    pending = next(exo, None)

    def feed_exo(until: int) -> None:
        nonlocal pending
        buf: list[RawMessage] = []
        while pending is not None and pending["timestamp"] <= until:
            d = pending
            pending = next(exo, None)
            if d["topic"] == CHARGER_REGISTRY:
                continue  # given first
            msg = raw(d["topic"], d["key"], d["value"], d["timestamp"])
            if d["topic"] == WEATHER:
                if buf:
                    pipe.exogenous(buf)
                buf = []
                pipe.weather(msg)
                continue
            buf.append(msg)
        if buf:
            pipe.exogenous(buf)

    def tel_msgs(records: Iterable[ChargerTelemetry]) -> list[RawMessage]:
        return [raw(CHARGER_TELEMETRY, r.feeder_id.encode(), encode_record(codec, r), r.timestamp) for r in records]

    if site_meters or any(m.site_id is not None for m in inputs.readings):
        lead = min(lead, settings.grace_seconds * 1000)  # the meter round stays within its grace of the twins
    fleet = build_fleet(inputs, cfg)
    site_of = {cid: reg.site_id for cid, reg in inputs.registrations.items() if reg.active}
    meter_at = sorted_len = 0
    last_read: dict[str, int] = {}
    period = meter_periods((m.meter_id, m.timestamp) for m in site_meters)

    def feed_site_meters(until: int) -> None:
        nonlocal meter_at, sorted_len
        if len(site_meters) != sorted_len:  # sort only what the replay held back since the last call
            site_meters[meter_at:] = sorted(site_meters[meter_at:], key=lambda m: m.timestamp)
            sorted_len = len(site_meters)
        msgs = []
        while meter_at < len(site_meters) and site_meters[meter_at].timestamp <= until:
            m = site_meters[meter_at]
            meter_at += 1
            since = last_read.get(m.meter_id, m.timestamp - period.get(m.meter_id, 0))
            last_read[m.meter_id] = m.timestamp
            ev = sum(mean_power(tw, since, m.timestamp) for cid, tw in sorted(fleet.twins.items())
                     if site_of.get(cid) == m.site_id)  # over the period the reading ends
            m = m.model_copy(update={"active_power_kw": round(m.active_power_kw + ev, 6)})
            msgs.append(raw(METER_READINGS, m.feeder_id.encode(), encode_record(codec, m), m.timestamp))
        if msgs:
            pipe.exogenous(msgs)

    run = ClosedLoopRun(pipe.outputs, [], [], physics=cfg)
    t = fleet.next_time()
    while t is not None:
        feed_exo(t + lead)
        reports = fleet.step(t)
        while reports:
            run.telemetry += len(reports)
            run.rounds += 1
            sps = pipe.telemetry(tel_msgs(reports))
            reports = fleet.deliver(sps, t)
        feed_site_meters(t)  # what the twins draw at t, once they have acted at t
        t = fleet.next_time()
    run.controlled = fleet.finish()
    run.segments = _segments(fleet)
    run.site_segments = _segments(fleet, site_of)
    while pending is not None or meter_at < len(site_meters):  # after the twins: the rest in time order
        nxt = min(pending["timestamp"] if pending is not None else 2**62,
                  site_meters[meter_at].timestamp if meter_at < len(site_meters) else 2**62)
        feed_exo(nxt)  # may hold back more site readings, up to nxt
        feed_site_meters(nxt)
    pipe.finish([raw(r.topic, r.key, r.value, r.timestamp) for r in flush_tel])
    run.outputs = pipe.outputs
    free = build_fleet(inputs, replace(cfg, default_fallback_kw=math.inf))
    run.accepted = dict(pipe.accepted)
    run.rejected = dict(pipe.rejected)
    run.uncontrolled = free.run_free()
    run.free_segments = _segments(free)
    run.free_site_segments = _segments(free, site_of)
    return run


def load_curve(segments: Iterable[tuple[int, int, float]], grid: Grid) -> np.ndarray:
    """Step averages (kW) of piecewise-constant stretches on ``grid``."""
    load = np.zeros(grid.n)
    step = grid.step_ms
    for a, b, kw in segments:
        a, b = max(a, grid.t0), min(b, grid.end)
        while a < b:
            i = (a - grid.t0) // step
            e = min(b, grid.t0 + (i + 1) * step)
            load[i] += kw * (e - a) / step
            a = e
    return load


def twin_result(results: Iterable[SessionResult], segments: Mapping[str, Iterable[tuple[int, int, float]]],
                grid: Grid, free: Iterable[SessionResult] | None = None) -> SimResult:
    """Load curves per feeder, session outcomes and lowest SoC as the report scores them.

    A session's deliverable energy is what it got uncontrolled (``free``: full power from arrival under the
    same physics), capped by its request; without ``free``, min(request, rating × dwell). A stationary battery's
    outcome is marked ``storage`` (its power is in the load curves, it is not a driver's session).
    """
    got_free = {r.session.session_id: r.delivered_kwh for r in free or ()}
    outcomes = []
    low: dict[str, float] = {}
    for r in results:
        s = r.session
        dwell_h = (s.departure_ms - s.arrival_ms) / HOUR_MS
        able = min(s.requested_kwh, got_free.get(s.session_id, s.max_charge_kw * dwell_h))
        open_end = s.departure_ms > grid.end or (s.estimated_departure_ms > s.departure_ms
                                                 and s.departure_ms >= grid.end)
        outcomes.append(SessionOutcome(s.session_id, s.charger_id, r.feeder_id, s.requested_kwh, r.delivered_kwh,
                                       r.exported_kwh, able, open_end, storage=s.stationary,
                                       charged_kwh=r.charged_kwh))
        if r.min_soc_pct is not None:
            low[s.session_id] = r.min_soc_pct
    ev = {f: load_curve(seg, grid) for f, seg in segments.items()}
    return SimResult(grid, ev, outcomes, low)
