"""The Kafka edge: every use of confluent-kafka and aiokafka, and faust's private internals, are in this package.

* :mod:`streams.kafka.config`: the broker connection (one object from the settings) for librdkafka, aiokafka, faust.
* :mod:`streams.kafka.admin`: topic namespaces, created from the topic table (:mod:`streams.contracts.topics`).
* :mod:`streams.kafka.clients`: confluent-kafka producers and consumers.
* :mod:`streams.kafka.broadcast`: the group-less aiokafka reader every worker runs.
* :mod:`streams.kafka.faust_internals`: the worker's batching consumer, the one module that uses faust's private
  internals (``tests/unit/kafka/test_kafka_faust_internals.py`` fails if a faust upgrade changes them).

Outside this package only the faust worker app (:mod:`streams.agents`) imports a Kafka library (faust);
``tests/unit/kafka/test_kafka_edge_imports.py`` keeps it so. Submodules are imported explicitly (nothing here).
"""
