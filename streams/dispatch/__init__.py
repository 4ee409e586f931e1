"""Dispatch: per-feeder receding-horizon planning of EV charging and V2G, safety envelope, setpoints.

Pure logic only (no Kafka imports). The integrator's faust agent drives a
:class:`streams.dispatch.dispatcher.FeederDispatcher` per feeder.
"""

__all__: list[str] = []
