"""Pure per-feeder demand forecasting: event-time aggregation, online horizon models, evaluation.

No Kafka imports here; the faust agents call this API.
"""

from streams.forecasting.aggregate import AddOutcome, ClosedInterval, IntervalAggregator
from streams.forecasting.forecaster import FeederForecaster, ForecasterConfig, ForecastResult
from streams.forecasting.metrics import HorizonScore, Scoreboard

__all__ = [
    "AddOutcome",
    "ClosedInterval",
    "FeederForecaster",
    "ForecastResult",
    "ForecasterConfig",
    "HorizonScore",
    "IntervalAggregator",
    "Scoreboard",
]
