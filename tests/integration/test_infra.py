"""The local services: shared Kafka + InfluxDB are up, `up` is idempotent, `down` only stops our own
processes, and a private broker survives a crash with its data."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams import infra

pytestmark = pytest.mark.integration

ROOT = infra.repo_root()


def _script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "infra" / "services.sh"), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


def _pids_with(marker: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if marker in cmd and state != "Z":
            pids.append(int(proc.name))
    return pids


def _influx_query(url: str, q: str) -> dict[str, object]:
    data = urllib.parse.urlencode({"q": q}).encode()
    with urllib.request.urlopen(f"{url}/query", data=data, timeout=10) as resp:
        result: dict[str, object] = json.load(resp)
    return result


def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        fut.result(timeout=30)


def _produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    errors: list[object] = []
    producer.produce(topic, key=key, value=value, on_delivery=lambda err, _msg: errors.append(err))
    assert producer.flush(30) == 0
    assert errors == [None]


def _consume_one(bootstrap: str, topic: str, timeout: float = 60.0) -> tuple[bytes | None, bytes | None]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-infra-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            return msg.key(), msg.value()
        raise AssertionError(f"no message on {topic} within {timeout}s")
    finally:
        consumer.close()


@pytest.mark.timeout(120)
def test_status_shows_both_services_up(kafka_bootstrap: str, influx_url: str) -> None:
    st = infra.status()
    assert set(st) == {"kafka", "influxdb"}
    assert st["kafka"].ready, st
    assert st["kafka"].address == kafka_bootstrap
    assert st["influxdb"].ready, st
    assert influx_url.endswith(st["influxdb"].address)

    proc = _script("status")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == ["kafka", "influxdb"]


@pytest.mark.timeout(120)
def test_shared_broker_answers_metadata(kafka_bootstrap: str) -> None:
    md = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10)
    assert [b.id for b in md.brokers.values()] == [1]
    assert infra.kafka_ready(kafka_bootstrap)


@pytest.mark.timeout(120)
def test_up_is_idempotent(kafka_bootstrap: str, influx_url: str) -> None:
    before = infra.status()
    if "external" in (before["kafka"].state, before["influxdb"].state):
        pytest.skip("shared services were not started by infra/up.sh")
    infra.up(capture=True)
    infra.up("all", capture=True)
    after = infra.status()
    assert after["kafka"].pid == before["kafka"].pid is not None
    assert after["influxdb"].pid == before["influxdb"].pid is not None
    run = ROOT / ".run"
    assert _pids_with(str(run / "kafka" / "server.properties")) == [before["kafka"].pid]
    assert _pids_with(str(run / "influxdb" / "influxdb.conf")) == [before["influxdb"].pid]


@pytest.mark.timeout(120)
def test_influxdb_has_evgrid_database_and_flux(influx_url: str) -> None:
    dbs = _influx_query(influx_url, "SHOW DATABASES")
    assert ["evgrid"] in dbs["results"][0]["series"][0]["values"]  # type: ignore[index]

    db = f"evgrid_infra_test_{uuid.uuid4().hex[:8]}"
    _influx_query(influx_url, f'CREATE DATABASE "{db}"')
    try:
        # v2 write API with bucket = database/retention-policy, as influxdb-client uses it
        write = urllib.request.Request(
            f"{influx_url}/api/v2/write?bucket={db}/autogen&precision=s",
            data=b"probe,site=test value=42 1700000000",
            method="POST",
        )
        with urllib.request.urlopen(write, timeout=10) as resp:
            assert resp.status == 204
        flux = (
            f'from(bucket: "{db}/autogen") |> range(start: 2023-01-01T00:00:00Z) '
            '|> filter(fn: (r) => r._measurement == "probe")'
        )
        query = urllib.request.Request(
            f"{influx_url}/api/v2/query",
            data=flux.encode(),
            headers={"Content-Type": "application/vnd.flux", "Accept": "application/csv"},
            method="POST",
        )
        with urllib.request.urlopen(query, timeout=10) as resp:
            body = resp.read().decode()
        assert ",42," in body, body
    finally:
        _influx_query(influx_url, f'DROP DATABASE "{db}"')


@pytest.mark.timeout(60)
def test_down_never_signals_a_foreign_process(tmp_path: Path) -> None:
    # a pid file that names a live process which is not our broker (this pytest process)
    run_dir = tmp_path / "kafka"
    run_dir.mkdir()
    (run_dir / "kafka.pid").write_text(f"{os.getpid()}\n")
    env = {"EVGRID_KAFKA_RUN_DIR": str(run_dir), "EVGRID_KAFKA_PORT": "1", "EVGRID_KAFKA_CONTROLLER_PORT": "2"}
    proc = _script("down", "kafka", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "stale pid file" in proc.stdout
    assert not (run_dir / "kafka.pid").exists()
    status = _script("status", "kafka", env=env)
    assert status.returncode == 3
    assert status.stdout.split()[:2] == ["kafka", "stopped"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_private_broker_survives_crash_with_its_data(kafka_bootstrap: str, tmp_path: Path) -> None:
    shared_pid = infra.status("kafka")["kafka"].pid
    port, controller_port = infra.free_ports(2)
    broker = infra.start_private_kafka(port, controller_port, tmp_path / "broker")
    try:
        assert broker.bootstrap != kafka_bootstrap
        assert broker.is_running()
        assert infra.kafka_ready(broker.bootstrap)
        md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
        assert len(md.brokers) == 1

        topic = "infra-restart-test"
        _create_topic(broker.bootstrap, topic)
        _produce(broker.bootstrap, topic, b"k1", b"survives a crash")

        first_pid = broker.pid
        broker.kill()
        assert not broker.is_running()
        assert not infra.kafka_ready(broker.bootstrap, timeout=1)

        broker.start()  # keeps data/: no re-format, same cluster
        assert broker.pid not in (None, first_pid)
        assert _consume_one(broker.bootstrap, topic) == (b"k1", b"survives a crash")

        broker.stop()  # graceful this time
        assert not broker.is_running()
        broker.stop()  # stopping a stopped broker is a no-op
    finally:
        broker.kill()
    # the shared broker was never touched
    assert infra.status("kafka")["kafka"].pid == shared_pid
    assert infra.kafka_ready(kafka_bootstrap)
