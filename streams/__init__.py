"""evgrid: event-driven EV smart charging and V2G on Apache Kafka.

The pure packages (:mod:`streams.contracts`, :mod:`streams.forecasting`, :mod:`streams.dispatch`) never
import faust, aiokafka or confluent-kafka, so the same code runs in the workers, in ``evgrid
forecast-eval``, in backtests and in unit tests.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
