"""Scenario files (YAML): the inputs and settings of one replay/backtest (pure).

A scenario names its inputs (sessions CSV, load CSV, weather CSV or TMY3 file, or simulator settings),
the step, the horizon, feeder limits and grid signals. Paths may use ``${VAR}`` / ``${VAR:-default}``
substitution (e.g. ``${EVGRID_SHARED_DATA:-../shared/data}``); a relative path resolves against the
repository root first, then against the scenario file's folder.

>>> s = Scenario.model_validate({"name": "x", "step": "5m", "inputs": {"simulator": {"chargers": 3}}})
>>> s.step_ms, s.horizon_ms
(300000, 86400000)
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from streams.contracts.codec import AvroCodec
from streams.contracts.models import GridSignal
from streams.contracts.timeparse import parse_duration_ms, parse_timestamp_ms
from streams.replay.files import HistoryRecord
from streams.replay.importers import grid_signal_records, import_acn, import_meters, import_weather

__all__ = [
    "REPO_ROOT",
    "GridEvent",
    "Limits",
    "Scenario",
    "ScenarioInputs",
    "expand_vars",
    "load_scenario",
    "scenario_records",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_vars(text: str, env: dict[str, str] | None = None) -> str:
    """Substitute ``${VAR}`` and ``${VAR:-default}`` (default used when VAR is unset or empty)."""
    env = dict(os.environ) if env is None else env

    def sub(m: re.Match[str]) -> str:
        value = env.get(m.group(1))
        if value:
            return value
        if m.group(2) is not None:
            return m.group(2)
        raise KeyError(f"environment variable {m.group(1)} is not set and has no default")

    return _VAR.sub(sub, text)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScenarioInputs(_Model):
    """Input files (paths after substitution/resolution) and/or simulator settings."""

    sessions: Path | None = None
    """ACN-Data-style sessions CSV."""
    load: Path | None = None
    """Meter readings CSV/Parquet (``timestamp,kw`` or ``timestamp,meter_id,feeder_id,kw``)."""
    weather: Path | None = None
    """Weather CSV or TMY3 file."""
    weather_year: int | None = None
    """Year a TMY3 file is mapped onto."""
    simulator: dict[str, Any] | None = None
    """Keyword arguments of ``streams.simulate.config.SimConfig`` (see :meth:`Scenario.sim_config`)."""

    @model_validator(mode="after")
    def _something(self) -> ScenarioInputs:
        if self.sessions is None and self.load is None and self.simulator is None:
            raise ValueError("a scenario needs sessions, load or simulator inputs")
        return self


class Limits(_Model):
    """Feeder limits in force when no grid signal says otherwise (kW)."""

    import_limit_kw: float | None = Field(default=None, ge=0.0)
    export_limit_kw: float | None = Field(default=None, ge=0.0)


class GridEvent(_Model):
    """A grid signal (limit, price or demand-response event) over a window; times ISO 8601 or epoch ms."""

    signal_id: str
    valid_from: int
    valid_until: int
    issued_before: int = 3_600_000
    """How long before ``valid_from`` the signal is issued, ms (duration strings allowed)."""
    import_limit_kw: float | None = Field(default=None, ge=0.0)
    export_limit_kw: float | None = Field(default=None, ge=0.0)
    price_per_kwh: float | None = None
    dr_event_id: str | None = None
    feeder_id: str | None = None

    @field_validator("valid_from", "valid_until", mode="before")
    @classmethod
    def _time(cls, v: Any) -> int:
        return parse_timestamp_ms(v)

    @field_validator("issued_before", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> int:
        return parse_duration_ms(v) if isinstance(v, str) else int(v)

    def to_signal(self, feeder_id: str, currency: str = "USD") -> GridSignal:
        """The GridSignal this event publishes."""
        return GridSignal(
            signal_id=self.signal_id, feeder_id=self.feeder_id or feeder_id,
            issued_at=self.valid_from - self.issued_before, valid_from=self.valid_from,
            valid_until=self.valid_until, import_limit_kw=self.import_limit_kw,
            export_limit_kw=self.export_limit_kw, price_per_kwh=self.price_per_kwh, currency=currency,
            dr_event_id=self.dr_event_id,
        )


class Scenario(_Model):
    """One scenario file."""

    name: str
    description: str = ""
    feeder_id: str = "feeder-1"
    start: int | None = None
    """First instant of the period (default: from the inputs)."""
    end: int | None = None
    """End of the period, exclusive (default: from the inputs)."""
    warmup_ms: int = Field(default=0, ge=0, alias="warmup")
    """History replayed before ``start`` (duration; needs ``start``): the load and weather files' records stamped
    from ``start - warmup`` on are replayed before the first session, so that the forecaster, the measured-load
    history and the billing month's running peak start as a deployed pipeline's would; it is not scored. Without it
    every record of the files is replayed."""
    step_ms: int = Field(default=300_000, gt=0, alias="step")
    horizon_ms: int = Field(default=86_400_000, gt=0, alias="horizon")
    limits: Limits = Limits()
    grid_signals: list[GridEvent] = Field(default_factory=list)
    inputs: ScenarioInputs
    settings: dict[str, Any] = Field(default_factory=dict)
    """EVGRID_* overrides for the run, by Settings field name (e.g. ``interval_minutes: 5``)."""
    path: Path | None = None
    """The file it was loaded from."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @field_validator("step_ms", "horizon_ms", "warmup_ms", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> int:
        return parse_duration_ms(v) if isinstance(v, str) else int(v)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _time(cls, v: Any) -> int | None:
        return None if v is None else parse_timestamp_ms(v)

    @model_validator(mode="after")
    def _checks(self) -> Scenario:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        if self.warmup_ms and self.start is None:
            raise ValueError("a warmup needs a start")
        from streams.settings import Settings

        unknown = set(self.settings) - set(Settings.model_fields)
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}")
        return self

    def sim_config(self) -> Any:
        """The simulator's ``SimConfig`` for ``inputs.simulator``, with start/hours from the scenario period.

        Returns None when the scenario has no simulator inputs.
        """
        if self.inputs.simulator is None:
            return None
        from streams.simulate.config import SimConfig  # lazy: the simulator is optional here

        kwargs = dict(self.inputs.simulator)
        if self.start is not None:
            kwargs.setdefault("start_ms", self.start)
            if self.end is not None:
                kwargs.setdefault("hours", (self.end - self.start) / 3_600_000)
        return SimConfig(**kwargs)

    def input_files(self) -> list[Path]:
        """The input files the scenario names."""
        return [p for p in (self.inputs.sessions, self.inputs.load, self.inputs.weather) if p is not None]


def _resolve(value: str, base: Path, repo_root: Path) -> Path:
    p = Path(expand_vars(value)).expanduser()
    if p.is_absolute():
        return p
    for root in (repo_root, base):
        if (root / p).exists():
            return (root / p).resolve()
    return (repo_root / p).resolve()


def load_scenario(path: str | os.PathLike[str], repo_root: Path | None = None) -> Scenario:
    """Read and validate a scenario YAML file, resolving its input paths.

    Raises
    ------
    FileNotFoundError
        If an input file it names does not exist.
    pydantic.ValidationError
        If the file does not match the schema.
    """
    path = Path(path)
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a mapping")
    inputs = dict(raw.get("inputs") or {})
    for key in ("sessions", "load", "weather"):
        if isinstance(inputs.get(key), str):
            inputs[key] = _resolve(inputs[key], path.parent, repo_root or REPO_ROOT)
    scenario = Scenario.model_validate({**raw, "inputs": inputs, "path": path})
    missing = [str(p) for p in scenario.input_files() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{path}: input files not found: {missing}")
    return scenario


def scenario_records(scenario: Scenario, codec: AvroCodec | None = None) -> dict[str, list[HistoryRecord]]:
    """The history records of a scenario's file inputs and grid signals, one stream per input.

    Returns ``{"sessions": [...], "load": [...], "weather": [...], "grid_signals": [...]}`` (only those
    present), each in event-time order, ready for :func:`streams.replay.files.write_history` and replay.
    Simulator inputs are not generated here.
    """
    out: dict[str, list[HistoryRecord]] = {}
    ins = scenario.inputs
    if ins.sessions is not None:
        out["sessions"] = import_acn(ins.sessions, feeder_id=scenario.feeder_id, step_ms=scenario.step_ms,
                                     codec=codec)
    if ins.load is not None:
        out["load"] = import_meters(ins.load, feeder_id=scenario.feeder_id, codec=codec)
    if ins.weather is not None:
        out["weather"] = import_weather(ins.weather, year=ins.weather_year, codec=codec)
    if scenario.grid_signals:
        out["grid_signals"] = grid_signal_records(
            (e.to_signal(scenario.feeder_id) for e in scenario.grid_signals), codec)
    return out
