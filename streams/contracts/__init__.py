"""Contracts: Avro schemas, the single-object codec, pydantic models and the topic table.

Pure: never imports faust, aiokafka or confluent-kafka.
"""

from streams.contracts.codec import AvroCodec, DecodeError, default_codec
from streams.contracts.topics import TOPICS, TopicSpec, topic_name

__all__ = ["TOPICS", "AvroCodec", "DecodeError", "TopicSpec", "default_codec", "topic_name"]
