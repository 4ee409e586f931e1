"""Monitoring: the metric vocabulary (:mod:`~streams.sinks.metrics`), the non-blocking InfluxDB sink
(:mod:`~streams.sinks.influx`), a deterministic metric sample (:mod:`~streams.sinks.sample`) and the Grafana
dashboards, alert rules and provisioning generated from code (:mod:`~streams.sinks.dashboards`,
:mod:`~streams.sinks.alerts`, :mod:`~streams.sinks.provisioning`; these need grafana-foundation-sdk).

Nothing here imports faust or a Kafka client.
"""

__all__: list[str] = []
