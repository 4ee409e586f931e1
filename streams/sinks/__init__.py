"""Monitoring sinks: the metric vocabulary (:mod:`~streams.sinks.metrics`), the non-blocking InfluxDB writer
(:mod:`~streams.sinks.influx`) and the Grafana dashboards and alert rules generated from code
(:mod:`~streams.sinks.dashboards`, :mod:`~streams.sinks.alerts`).

Nothing here imports faust or a Kafka client.
"""

__all__: list[str] = []
