"""The per-feeder pipeline: pure orchestration of ingest, aggregation, forecasting and dispatch.

No faust, aiokafka or confluent-kafka here: the faust agents, the backtest and the tests all drive
:class:`FeederWorker` with plain messages.
"""

from streams.pipeline.worker import Emit, FeederWorker

__all__ = ["Emit", "FeederWorker"]
