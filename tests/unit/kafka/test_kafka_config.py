"""One connection object, rendered for librdkafka, aiokafka and faust, in each security mode of docs/security.md."""

from __future__ import annotations

import dataclasses
import ssl

import pytest
from faust import SASLCredentials, SSLCredentials
from faust.types.auth import AuthProtocol
from pydantic import SecretStr

from streams.kafka.config import KafkaConnection
from streams.settings import Settings
from tests.fixtures.ocpp_pki import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("kafka-pki"))


def test_built_from_the_settings_with_every_connection_field() -> None:
    s = Settings(bootstrap_servers="b1:9092", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256",
                 sasl_username="u", sasl_password=SecretStr("pw"), ssl_cafile="/ca", ssl_certfile="/c",
                 ssl_keyfile="/k")
    c = KafkaConnection.from_settings(s)
    assert c == KafkaConnection("b1:9092", "SASL_SSL", "SCRAM-SHA-256", "u", "pw", "/ca", "/c", "/k")
    assert "pw" not in repr(c)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.bootstrap_servers = "x"  # type: ignore[misc]
    for f in dataclasses.fields(KafkaConnection):  # each field names its environment variable
        assert hasattr(s, f.name)


def test_plaintext() -> None:
    c = KafkaConnection.from_settings(Settings(bootstrap_servers="b1:9092, b2:9092"))
    assert c.librdkafka() == {"bootstrap.servers": "b1:9092, b2:9092", "security.protocol": "PLAINTEXT"}
    assert c.aiokafka() == {"bootstrap_servers": "b1:9092, b2:9092"}
    assert c.faust() == {"broker": ["kafka://b1:9092", "kafka://b2:9092"], "broker_credentials": None}


def test_sasl_ssl_scram(pki: Pki) -> None:
    c = KafkaConnection.from_settings(Settings(
        security_protocol="sasl_ssl", sasl_username="evgrid-worker", sasl_password=SecretStr("secret"),
        ssl_cafile=str(pki.ca_cert)))
    assert c.librdkafka() == {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "sasl_ssl",
                              "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "evgrid-worker",
                              "sasl.password": "secret", "ssl.ca.location": str(pki.ca_cert)}
    kwargs = c.aiokafka()
    context = kwargs.pop("ssl_context")
    assert kwargs == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "SASL_SSL",
                      "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "evgrid-worker",
                      "sasl_plain_password": "secret"}
    assert isinstance(context, ssl.SSLContext) and len(context.get_ca_certs()) == 1
    creds = c.faust_credentials()
    assert isinstance(creds, SASLCredentials) and creds.protocol == AuthProtocol.SASL_SSL
    assert (creds.username, creds.password, creds.mechanism.value) == ("evgrid-worker", "secret", "SCRAM-SHA-512")
    assert len(creds.ssl_context.get_ca_certs()) == 1


def test_mtls(pki: Pki) -> None:
    cert, key = pki.client("evgrid-worker")
    c = KafkaConnection.from_settings(Settings(security_protocol="SSL", ssl_cafile=str(pki.ca_cert),
                                               ssl_certfile=str(cert), ssl_keyfile=str(key)))
    assert c.librdkafka() == {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "SSL",
                              "ssl.ca.location": str(pki.ca_cert), "ssl.certificate.location": str(cert),
                              "ssl.key.location": str(key)}
    kwargs = c.aiokafka()
    assert set(kwargs) == {"bootstrap_servers", "security_protocol", "ssl_context"}
    assert kwargs["security_protocol"] == "SSL"
    creds = c.faust_credentials()
    assert isinstance(creds, SSLCredentials) and creds.protocol == AuthProtocol.SSL


def test_mtls_loads_the_client_certificate(pki: Pki) -> None:
    cert, _ = pki.client("evgrid-worker")
    _, other_key = pki.client("someone-else")
    c = KafkaConnection(security_protocol="SSL", ssl_cafile=str(pki.ca_cert), ssl_certfile=str(cert),
                        ssl_keyfile=str(other_key))
    with pytest.raises(ssl.SSLError):  # the certificate and a key that is not its own: the chain is loaded
        c.ssl_context()


def test_sasl_plaintext_has_no_tls() -> None:
    c = KafkaConnection(security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p")
    assert "ssl_context" not in c.aiokafka() and c.aiokafka()["security_protocol"] == "SASL_PLAINTEXT"
    assert c.faust_credentials().ssl_context is None


def test_an_unknown_protocol_is_one_clear_error_for_faust() -> None:
    with pytest.raises(ValueError, match="EVGRID_SECURITY_PROTOCOL='TLS'"):
        KafkaConnection(security_protocol="TLS").faust_credentials()
