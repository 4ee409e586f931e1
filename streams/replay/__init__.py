"""Record, replay and import history: Avro container files of Kafka records, importers, scenarios.

Pure modules (no Kafka client): :mod:`files`, :mod:`importers`, :mod:`scenario`, :mod:`pacing`,
:mod:`state`. The Kafka side lives in :mod:`recorder` and :mod:`replayer` (confluent-kafka).
"""

__all__: list[str] = []
