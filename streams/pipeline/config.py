"""What the pipeline needs to know, as plain frozen values built at the edge (``streams.settings.pipeline_config``).

The core never reads the process environment: a worker, a backtest or a test builds these and passes them in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.dispatch.dispatcher import DispatchConfig
from streams.forecasting.forecaster import ForecasterConfig

__all__ = ["HISTORY_MS", "FeederConfig", "PipelineConfig"]

HISTORY_MS = 24 * 3_600_000
"""Default meter history a feeder with no charger yet keeps for its first plan, ms."""


@dataclass(frozen=True, slots=True)
class FeederConfig:
    """One feeder's runtime (:class:`~streams.pipeline.feeder.FeederRuntime`).

    Attributes
    ----------
    step_ms : int
        Interval length, ms (meters are aggregated and forecasts issued per interval).
    grace_ms : int
        How long after an interval's end a late meter reading still counts, ms.
    align_idle_ms : int
        How far the telemetry clock may pass an unregistered charger's first report once the registry is read, ms.
    max_plan_lag_ms : int
        Skip a plan whose event time lags the newest telemetry by more than this (0: never skip), ms.
    history_ms : int
        Meter history kept for plans behind the newest meter reading, ms (older goes to the dispatcher).
    """

    step_ms: int
    grace_ms: int
    align_idle_ms: int
    max_plan_lag_ms: int
    history_ms: int = HISTORY_MS
    forecaster: ForecasterConfig = field(default_factory=ForecasterConfig)
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """A worker's (:class:`~streams.pipeline.worker.FeederWorker`): its feeders' config and the input limits.

    Attributes
    ----------
    max_message_bytes : int
        Largest record accepted or produced, bytes.
    max_future_ms : int
        A record stamped further ahead of the worker's clock than this is dead-lettered, ms.
    """

    feeder: FeederConfig
    max_message_bytes: int
    max_future_ms: int
