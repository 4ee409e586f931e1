"""faust broker credentials from the security settings (shared by the worker and the monitor apps)."""

from __future__ import annotations

from typing import Any

import faust

from streams.agents.broadcast import kafka_ssl_context
from streams.settings import Settings

__all__ = ["broker_credentials"]


def broker_credentials(settings: Settings) -> Any:
    """faust credentials from the security settings (None for PLAINTEXT; protocol names are case-insensitive)."""
    protocol = settings.security_protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    if protocol not in ("SSL", "SASL_SSL", "SASL_PLAINTEXT"):
        raise ValueError(f"EVGRID_SECURITY_PROTOCOL={settings.security_protocol!r}: expected PLAINTEXT, SSL, "
                         "SASL_PLAINTEXT or SASL_SSL")
    context = kafka_ssl_context(settings) if protocol in ("SSL", "SASL_SSL") else None
    if protocol.startswith("SASL"):
        password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
        return faust.SASLCredentials(
            username=settings.sasl_username, password=password, mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context)
