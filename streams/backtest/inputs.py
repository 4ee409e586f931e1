"""A backtest's inputs: history records to replay and the ground truth to score against (pure).

Built from a scenario (:func:`streams.replay.scenario.load_scenario`) or from flags. Sessions become
registrations and open-loop telemetry (see :mod:`streams.replay.importers`); a scenario's simulator
inputs are generated with :mod:`streams.simulate` and its sessions turned into the same form. A trailing
*flush* record (a disconnected heartbeat of a registered charger, plus a meter reading when there is
load) moves the feeder's event-time watermark past the last event so the last intervals close.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.contracts.codec import default_codec
from streams.contracts.models import (
    ChargerRegistration,
    ChargerTelemetry,
    GridSignal,
    MeterReading,
    SiteRegistration,
    decode_record,
)
from streams.contracts.sessions import AcnSession, read_acn_sessions
from streams.contracts.topics import CHARGER_REGISTRY
from streams.replay.files import HistoryRecord
from streams.replay.importers import (
    acn_records,
    grid_signal_records,
    import_weather,
    read_meter_readings,
    to_history,
)
from streams.replay.scenario import Scenario

__all__ = ["BacktestInputs", "from_flags", "from_scenario", "merged_records", "simulator_inputs"]

MIN_MS = 60_000


@dataclass
class BacktestInputs:
    """Everything a run replays and everything the report needs to know about the input."""

    name: str
    feeder_id: str
    step_ms: int
    horizon_ms: int
    streams: list[list[HistoryRecord]]
    """Independent event-time-ordered streams (merged by timestamp for the replay)."""
    sessions: list[AcnSession]
    registrations: dict[str, ChargerRegistration]
    readings: list[MeterReading] = field(default_factory=list)
    signals: list[GridSignal] = field(default_factory=list)
    import_limit_kw: float | None = None
    export_limit_kw: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    """EVGRID_* overrides by Settings field name."""
    start_ms: int | None = None
    end_ms: int | None = None
    sites: dict[str, SiteRegistration] = field(default_factory=dict)
    """Site registrations replayed (sessions CSV ``site_id`` columns)."""
    warmup_ms: int = 0
    """History before ``start_ms`` replayed but not scored (the scenario's ``warmup``)."""

    @property
    def n_records(self) -> int:
        return sum(len(s) for s in self.streams)

    @property
    def last_event_ms(self) -> int:
        return max((s[-1].timestamp for s in self.streams if s), default=0)

    def period(self) -> tuple[int, int]:
        """Scored period: the scenario's, else from the first arrival/reading to the last departure/reading."""
        lo = [s.arrival for s in self.sessions] + [r.timestamp for r in self.readings]
        hi = [s.departure for s in self.sessions] + [r.timestamp for r in self.readings]
        start = self.start_ms if self.start_ms is not None else min(lo, default=0)
        end = self.end_ms if self.end_ms is not None else max(hi, default=start + self.step_ms)
        return start, max(end, start + self.step_ms)

    def with_flush(self) -> BacktestInputs:
        """A copy with the trailing flush stream (see the module doc); the flush is not scored."""
        t = (self.last_event_ms // self.step_ms + 3) * self.step_ms
        grace = int(self.settings.get("grace_seconds", 300)) * 1000
        recs: list[Any] = []
        first: dict[str, ChargerRegistration] = {}
        for c in sorted(self.registrations.values(), key=lambda c: c.charger_id):
            first.setdefault(c.feeder_id, c)
        # two heartbeats: the second moves the feeder's telemetry clock past the first by more than a feeder's
        # meter wait (two steps plus the grace), so a feeder without meters applies everything up to the first
        # (the second stays held: it is the end of input)
        t_last = t + 2 * self.step_ms + grace + 60_000
        for reg in first.values():
            for ts in (t, t_last):
                recs.append(ChargerTelemetry(charger_id=reg.charger_id, feeder_id=reg.feeder_id, timestamp=ts,
                                             connected=False, power_kw=0.0, max_charge_kw=reg.max_charge_kw,
                                             max_discharge_kw=reg.max_discharge_kw))
        last_by_meter: dict[str, MeterReading] = {}
        for m in self.readings:
            last_by_meter[m.meter_id] = m
        for m in last_by_meter.values():
            recs.append(m.model_copy(update={"timestamp": max(t, m.timestamp + grace + 2 * self.step_ms)}))
        if not recs:
            return self
        return BacktestInputs(**{**self.__dict__, "streams": [*self.streams, to_history(recs)]})


def merged_records(inputs: BacktestInputs) -> Iterator[dict[str, Any]]:
    """The raw history dicts of every stream, merged by timestamp (ties: stream order), for the replayer."""
    iters = [((r.timestamp, i, k, r) for k, r in enumerate(s)) for i, s in enumerate(inputs.streams)]
    for _, _, _, r in heapq.merge(*iters, key=lambda x: x[:3]):
        yield r.to_avro()


def _registrations(records: Sequence[HistoryRecord]) -> dict[str, ChargerRegistration]:
    codec = default_codec()
    out: dict[str, ChargerRegistration] = {}
    for r in records:
        if r.topic == CHARGER_REGISTRY and r.value is not None:
            reg = decode_record(codec, r.value)
            if isinstance(reg, ChargerRegistration):
                out[reg.charger_id] = reg
    return out


def site_registrations(records: Sequence[HistoryRecord]) -> dict[str, SiteRegistration]:
    """The SiteRegistrations among ``records``, by site."""
    codec = default_codec()
    out: dict[str, SiteRegistration] = {}
    for r in records:
        if r.topic == CHARGER_REGISTRY and r.value is not None:
            reg = decode_record(codec, r.value)
            if isinstance(reg, SiteRegistration):
                out[reg.site_id] = reg
    return out


def _session_inputs(sessions: list[AcnSession], feeder_id: str, step_ms: int,
                    start_ms: int | None) -> tuple[list[HistoryRecord], dict[str, ChargerRegistration]]:
    start = start_ms if start_ms is not None and sessions and start_ms <= min(s.arrival for s in sessions) else None
    recs = acn_records(sessions, feeder_id=feeder_id, step_ms=step_ms, start_ms=start)
    return recs, _registrations(recs)


def from_flags(sessions: str | Path, *, load: str | Path | None = None, weather: str | Path | None = None,
               weather_year: int | None = None, step_ms: int = 5 * MIN_MS, horizon_ms: int = 24 * 3_600_000,
               import_limit_kw: float | None = None, export_limit_kw: float | None = None,
               feeder_id: str = "feeder-1", settings: dict[str, Any] | None = None) -> BacktestInputs:
    """Inputs of ``evgrid backtest --sessions ... [--load ...] [--weather ...]``."""
    sess = read_acn_sessions(sessions)
    recs, regs = _session_inputs(sess, feeder_id, step_ms, None)
    streams = [recs]
    readings: list[MeterReading] = []
    if load is not None:
        readings = read_meter_readings(load, feeder_id)
        streams.append(to_history(readings))
    if weather is not None:
        streams.append(import_weather(weather, year=weather_year))
    return BacktestInputs(Path(sessions).stem, feeder_id, step_ms, horizon_ms, streams, sess, regs, readings,
                          import_limit_kw=import_limit_kw, export_limit_kw=export_limit_kw,
                          settings=dict(settings or {}), sites=site_registrations(recs))


def from_scenario(sc: Scenario, *, import_limit_kw: float | None = None, step_ms: int | None = None,
                  settings: dict[str, Any] | None = None) -> BacktestInputs:
    """Inputs of ``evgrid backtest SCENARIO.yaml`` (flags given override the scenario)."""
    step = step_ms or sc.step_ms
    ins = sc.inputs
    streams: list[list[HistoryRecord]] = []
    sess: list[AcnSession] = []
    regs: dict[str, ChargerRegistration] = {}
    sites: dict[str, SiteRegistration] = {}
    readings: list[MeterReading] = []
    if ins.sessions is not None:
        sess = read_acn_sessions(ins.sessions)
        if sc.start is not None or sc.end is not None:
            lo, hi = sc.start or -(2**62), sc.end or 2**62
            sess = [s for s in sess if s.arrival < hi and s.departure > lo]
        recs, regs = _session_inputs(sess, sc.feeder_id, step, sc.start)
        streams.append(recs)
        sites = site_registrations(recs)
    feeder_id = sc.feeder_id
    if ins.simulator is not None:
        sim = simulator_inputs(sc.sim_config())
        if ins.sessions is None:
            feeder_id = sim.feeder_id
        streams += sim.streams
        sess += sim.sessions
        regs.update(sim.registrations)
        readings += sim.readings
    since = sc.start - sc.warmup_ms if sc.start is not None and sc.warmup_ms else None  # the warm-up's start
    if ins.load is not None:
        file_readings = read_meter_readings(ins.load, feeder_id)
        if since is not None:
            file_readings = [r for r in file_readings if r.timestamp > since]  # periods ending after it
        readings += file_readings
        streams.append(to_history(file_readings))
    if ins.weather is not None:
        weather = import_weather(ins.weather, year=ins.weather_year)
        streams.append([r for r in weather if r.timestamp >= since] if since is not None else weather)
    signals = [e.to_signal(feeder_id) for e in sc.grid_signals]
    if signals:
        streams.insert(0, grid_signal_records(signals))
    return BacktestInputs(
        sc.name, feeder_id, step, sc.horizon_ms, streams, sess, regs, readings, signals,
        import_limit_kw=import_limit_kw if import_limit_kw is not None else sc.limits.import_limit_kw,
        export_limit_kw=sc.limits.export_limit_kw, settings={**sc.settings, **(settings or {})},
        start_ms=sc.start, end_ms=sc.end, sites=sites, warmup_ms=sc.warmup_ms)


def simulator_inputs(cfg: Any) -> BacktestInputs:
    """A simulated feeder as backtest inputs: the simulator's registrations, meters and weather as generated,
    and its planned EV sessions replayed the way ACN sessions are (open loop: telemetry never claims energy the
    pipeline did not command), with their V2G columns (bidirectional, class, export limit, SoC, capacity).
    """
    from streams.simulate.fleet import build_fleet
    from streams.simulate.sessions import load_acn_sessions, plan_sessions
    from streams.simulate.stream import iter_records

    fleet = build_fleet(cfg)
    acn = load_acn_sessions(cfg.acn_path)
    sess: list[AcnSession] = []
    for c in fleet.chargers:
        reg = c.registration
        for s in plan_sessions(cfg, c.charger_id, c.capacity_kwh, acn, c.reserve_soc_pct):
            if s.departure_ms <= cfg.start_ms or s.arrival_ms >= cfg.end_ms:
                continue
            sess.append(AcnSession(
                session_id=s.session_id, station_id=reg.charger_id, arrival=max(s.arrival_ms, cfg.start_ms),
                departure=min(s.departure_ms, cfg.end_ms), estimated_departure=s.departure_ms,
                requested_energy_kwh=s.energy_kwh, max_power_kw=reg.max_charge_kw, feeder_id=reg.feeder_id,
                bidirectional=reg.bidirectional, interconnection_class=reg.interconnection_class,
                export_limit_kw=reg.export_limit_kw, initial_soc_pct=s.arrival_soc_pct, capacity_kwh=s.capacity_kwh))
    sess.sort(key=lambda s: (s.arrival, s.session_id))
    regs = {c.registration.charger_id: c.registration for c in fleet.chargers}
    readings: list[MeterReading] = []
    other: list[Any] = []
    for _, _topic, _, rec in iter_records(cfg, fleet=fleet, acn=acn):
        if isinstance(rec, MeterReading):
            readings.append(rec)
        elif not isinstance(rec, ChargerTelemetry | ChargerRegistration):
            other.append(rec)
    step = cfg.telemetry_s * 1000 * 5
    tel = acn_records(sess, step_ms=step, start_ms=cfg.start_ms) if sess else []
    tel = [r for r in tel if r.topic != CHARGER_REGISTRY]
    streams = [to_history(list(regs.values())), tel, to_history(readings), to_history(other)]
    feeder = fleet.feeders[0]
    return BacktestInputs("simulator", feeder, step, 24 * 3_600_000, streams, sess, regs, readings,
                          start_ms=cfg.start_ms, end_ms=cfg.end_ms)
