"""streams.kafka.clients builds librdkafka clients from Settings (security included)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaException
from pydantic import SecretStr

from streams.kafka.clients import (
    REPLAY_PRODUCER_TUNING,
    DeliveryStats,
    client_config,
    make_consumer,
    make_producer,
    new_consumer,
    new_producer,
)
from streams.settings import Settings


def test_plaintext_has_no_security_fields() -> None:
    conf = client_config(Settings(bootstrap_servers="b1:9092,b2:9092"))
    assert conf == {"bootstrap.servers": "b1:9092,b2:9092", "security.protocol": "PLAINTEXT"}


def test_sasl_ssl_scram_and_mtls_fields() -> None:
    s = Settings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="u",
                 sasl_password=SecretStr("secret"), ssl_cafile="/ca.pem", ssl_certfile="/c.pem", ssl_keyfile="/k.pem")
    conf = client_config(s)
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.username"] == "u" and conf["sasl.password"] == "secret"
    assert (conf["ssl.ca.location"], conf["ssl.certificate.location"], conf["ssl.key.location"]) == (
        "/ca.pem", "/c.pem", "/k.pem")
    mtls = client_config(Settings(security_protocol="SSL", ssl_cafile="/ca.pem"))
    assert "sasl.mechanism" not in mtls and mtls["ssl.ca.location"] == "/ca.pem"


def test_overrides_are_librdkafka_properties() -> None:
    s = Settings(bootstrap_servers="127.0.0.1:1")
    make_producer(s, linger_ms=1, batch_num_messages=100)
    make_consumer(s, "g", session_timeout_ms=10_000)
    with pytest.raises(KafkaException):
        make_producer(s, no_such_property=1)


def test_delivery_stats_count_outcomes() -> None:
    class Err:
        def name(self) -> str:
            return "_MSG_TIMED_OUT"

    stats = DeliveryStats(produced=3)
    stats.on_delivery(None, None)  # type: ignore[arg-type]
    stats.on_delivery(Err(), None)  # type: ignore[arg-type]
    assert (stats.delivered, stats.failed, stats.pending, dict(stats.errors)) == (1, 1, 1, {"_MSG_TIMED_OUT": 1})


def test_new_clients_take_the_connection_and_exactly_the_properties_given() -> None:
    s = Settings(bootstrap_servers="127.0.0.1:1")
    new_producer(s, REPLAY_PRODUCER_TUNING | {"linger.ms": 5})  # librdkafka accepts every tuning property
    new_consumer(s, {"group.id": "g", "enable.partition.eof": True})
    with pytest.raises(KafkaException, match=r"no\.such"):
        new_consumer(s, {"group.id": "g", "no.such": 1})
    with pytest.raises(KafkaException):  # the connection's own properties are there: a bad protocol is refused
        new_producer(Settings(bootstrap_servers="127.0.0.1:1", security_protocol="TLS"), {})
