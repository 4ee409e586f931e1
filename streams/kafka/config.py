"""The broker connection: one frozen object built from the settings at the edge, rendered for each client library.

:class:`KafkaConnection` holds the bootstrap servers and the security settings (PLAINTEXT, SASL_SSL SCRAM, mTLS,
see docs/security.md) once; :meth:`~KafkaConnection.librdkafka` renders them for confluent-kafka producers,
consumers and admin clients, :meth:`~KafkaConnection.aiokafka` for aiokafka clients and
:meth:`~KafkaConnection.faust_credentials` for faust apps.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.settings import Settings

__all__ = ["PROTOCOLS", "KafkaConnection"]

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
"""The security protocols the clients speak (names are case-insensitive)."""


@dataclass(frozen=True)
class KafkaConnection:
    """Where the brokers are and how to authenticate to them."""

    bootstrap_servers: str = "127.0.0.1:9092"
    """EVGRID_BOOTSTRAP_SERVERS: comma-separated host:port."""
    security_protocol: str = "PLAINTEXT"
    """EVGRID_SECURITY_PROTOCOL: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (any case)."""
    sasl_mechanism: str = "SCRAM-SHA-512"
    """EVGRID_SASL_MECHANISM: used when the protocol is SASL_*."""
    sasl_username: str | None = None
    """EVGRID_SASL_USERNAME."""
    sasl_password: str | None = field(default=None, repr=False)
    """EVGRID_SASL_PASSWORD (kept out of ``repr``)."""
    ssl_cafile: str | None = None
    """EVGRID_SSL_CAFILE: CA certificate (PEM) that signed the broker certificates."""
    ssl_certfile: str | None = None
    """EVGRID_SSL_CERTFILE: client certificate (PEM) for mTLS."""
    ssl_keyfile: str | None = None
    """EVGRID_SSL_KEYFILE: client private key (PEM) for mTLS."""

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaConnection:
        """The connection named by the ``EVGRID_*`` settings above."""
        return cls(
            bootstrap_servers=settings.bootstrap_servers, security_protocol=settings.security_protocol,
            sasl_mechanism=settings.sasl_mechanism, sasl_username=settings.sasl_username,
            sasl_password=settings.sasl_password.get_secret_value() if settings.sasl_password else None,
            ssl_cafile=settings.ssl_cafile, ssl_certfile=settings.ssl_certfile, ssl_keyfile=settings.ssl_keyfile,
        )

    @property
    def protocol(self) -> str:
        """The security protocol in upper case."""
        return self.security_protocol.upper()

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def librdkafka(self) -> dict[str, Any]:
        """confluent-kafka (librdkafka) properties common to producers, consumers and admin clients."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers,
                                "security.protocol": self.security_protocol}
        if self.sasl:
            conf["sasl.mechanism"] = self.sasl_mechanism
            if self.sasl_username is not None:
                conf["sasl.username"] = self.sasl_username
            if self.sasl_password is not None:
                conf["sasl.password"] = self.sasl_password
        if self.ssl_cafile:
            conf["ssl.ca.location"] = self.ssl_cafile
        if self.ssl_certfile:
            conf["ssl.certificate.location"] = self.ssl_certfile
        if self.ssl_keyfile:
            conf["ssl.key.location"] = self.ssl_keyfile
        return conf

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context for the broker: its CA, and the client certificate for mTLS when configured."""
        context = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    def aiokafka(self) -> dict[str, Any]:
        """aiokafka client keyword arguments: bootstrap servers and security."""
        kwargs: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers}
        if self.protocol == "PLAINTEXT":
            return kwargs
        kwargs["security_protocol"] = self.protocol
        if self.tls:
            kwargs["ssl_context"] = self.ssl_context()
        if self.sasl:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password or ""
        return kwargs

    def faust_broker(self) -> list[str]:
        """faust's ``broker`` argument: one ``kafka://host:port`` URL per bootstrap server."""
        return [f"kafka://{s.strip()}" for s in self.bootstrap_servers.split(",")]

    def faust(self) -> dict[str, Any]:
        """faust ``App`` arguments: ``broker`` and ``broker_credentials``."""
        return {"broker": self.faust_broker(), "broker_credentials": self.faust_credentials()}

    def faust_credentials(self) -> Any:
        """faust's ``broker_credentials`` (None for PLAINTEXT); raises ValueError for an unknown protocol."""
        if self.protocol == "PLAINTEXT":
            return None
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"EVGRID_SECURITY_PROTOCOL={self.security_protocol!r}: expected PLAINTEXT, SSL, "
                             "SASL_PLAINTEXT or SASL_SSL")
        import faust

        context = self.ssl_context() if self.tls else None
        if self.sasl:
            return faust.SASLCredentials(username=self.sasl_username, password=self.sasl_password or "",
                                         mechanism=self.sasl_mechanism, ssl_context=context)
        return faust.SSLCredentials(context)
