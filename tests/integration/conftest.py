"""Service fixtures for integration tests.

``.ci/run`` starts the shared services (``bash infra/up.sh``) before pytest; when a developer just
runs ``python3 -m pytest`` the session fixtures below start whatever is missing (and leave it
running, like ``infra/up.sh`` would).  Tests that need to crash or restart a broker must use
``private_kafka`` — never the shared broker that other tests rely on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams import infra


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap address of the shared broker (started if it is not answering)."""
    if not infra.kafka_ready(infra.KAFKA_BOOTSTRAP):
        infra.up("kafka", capture=True)
    return infra.KAFKA_BOOTSTRAP


@pytest.fixture(scope="session")
def influx_url() -> str:
    """URL of the shared InfluxDB 1.8 (database ``evgrid``, bucket ``evgrid/autogen``)."""
    if not infra.influx_ready(infra.INFLUX_URL):
        infra.up("influxdb", capture=True)
    return infra.INFLUX_URL


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[infra.PrivateKafka]:
    """A started broker of this test's own (free ports, data under tmp_path); killed afterwards."""
    port, controller_port = infra.free_ports(2)
    broker = infra.start_private_kafka(port, controller_port, tmp_path / "kafka")
    try:
        yield broker
    finally:
        broker.kill()
