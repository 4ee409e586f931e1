"""Checks a command makes before it starts work: is the Kafka broker there?

Without it, librdkafka retries for a minute and prints one log line per attempt; with it, a command that
needs the broker stops within ``timeout`` seconds with one line naming the address.
"""

from __future__ import annotations

import logging
from typing import Any

from streams.cli.errors import BrokerUnreachable
from streams.settings import Settings

__all__ = ["quiet_solver_banner", "require_broker"]

_QUIET = logging.getLogger("evgrid.preflight.librdkafka")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def require_broker(settings: Settings | None = None, timeout: float = 6.0) -> None:
    """Raise :class:`BrokerUnreachable` unless a broker at ``settings.bootstrap_servers`` answers a Metadata
    request (listing at least one broker) within ``timeout`` seconds."""
    from streams.kafka.admin import live_brokers
    from streams.kafka.clients import KafkaException

    s = settings or Settings()
    try:
        brokers = live_brokers(s, timeout, logger=_QUIET)
    except KafkaException as exc:
        err: Any = exc.args[0] if exc.args else None
        detail = err.str() if hasattr(err, "str") else str(exc)
        raise BrokerUnreachable(s.bootstrap_servers, detail) from None
    if not brokers:
        raise BrokerUnreachable(s.bootstrap_servers, "no live broker in the metadata")


def quiet_solver_banner() -> None:
    """Print HiGHS's once-per-process copyright banner to nowhere (it goes to the C ``stdout`` when the first
    ``highspy.Highs()`` is made, ahead of ``output_flag=False``), so a command's stdout holds only its output."""
    import os
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            import highspy

            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
