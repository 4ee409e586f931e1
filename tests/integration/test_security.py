"""A private broker with SASL_SSL (SCRAM-SHA-512), an mTLS listener and ACLs (docs/security.md).

The test setup generates a CA, a broker certificate for 127.0.0.1/localhost and client certificates,
formats the broker storage with the SCRAM users, and applies the ACL layout of docs/security.md for each
test's topic prefix. It shows that the kafka_io (librdkafka) and faust (aiokafka) clients configured
through Settings work over SASL_SSL and mTLS, that a wrong password or a missing/untrusted client
certificate is refused, that every principal gets exactly what the layout grants, and that the
pipeline (``evgrid worker``) runs over SASL_SSL with only the worker principal's ACLs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from streams import infra
from streams.agents.app import broker_credentials
from streams.agents.topics import create_topics
from streams.contracts.codec import default_codec
from streams.contracts.models import DeadLetter, decode_record
from streams.contracts.topics import (
    CHARGER_REGISTRY,
    CHARGER_TELEMETRY,
    DEADLETTER,
    FLEXIBILITY,
    FORECASTS,
    GRID_SIGNALS,
    INCENTIVE_RESPONSES,
    INCENTIVES,
    METER_READINGS,
    SETPOINTS,
    SETTLEMENTS,
    TOPICS,
    WEATHER,
)
from streams.kafka_io import client_config, consume_all, make_consumer, make_producer, produce_records
from streams.settings import Settings

pytestmark = [pytest.mark.integration]

MECHANISM = "SCRAM-SHA-512"
PRINCIPALS = ("admin", "evgrid-ops", "evgrid-ingest", "evgrid-worker", "evgrid-monitor", "evgrid-downstream")
INPUT_TOPICS = (METER_READINGS, CHARGER_TELEMETRY, CHARGER_REGISTRY, WEATHER, GRID_SIGNALS, INCENTIVE_RESPONSES)
WORKER_OUTPUTS = (FORECASTS, SETPOINTS, INCENTIVES, SETTLEMENTS, FLEXIBILITY, DEADLETTER)
MONITOR_INPUTS = (FORECASTS, SETPOINTS, INCENTIVES, INCENTIVE_RESPONSES, SETTLEMENTS, DEADLETTER, FLEXIBILITY,
                  METER_READINGS, CHARGER_TELEMETRY, GRID_SIGNALS)
DOWNSTREAM_GROUP_PREFIX = "csms-"


# ------------------------------------------------------------------ certificates


@dataclass(frozen=True)
class Pki:
    """PEM files for the clients and PKCS12/PEM stores for the broker."""

    ca_pem: Path
    broker_p12: Path
    store_password: str
    client_cert: Path  # CN=evgrid-worker, signed by the CA
    client_key: Path
    rogue_cert: Path  # CN=evgrid-worker, signed by another CA
    rogue_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                                                      "evgrid")])


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, issuer_key: ec.EllipticCurvePrivateKey,
          *, ca: bool = False, server: bool = False) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
         .not_valid_after(now + dt.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    else:
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
        b = b.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if server:
        import ipaddress

        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_pki(out: Path) -> Pki:
    """A CA, a broker certificate (localhost, 127.0.0.1), a client certificate and an untrusted one."""
    out.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("evgrid-test-ca", ca_key, _name("evgrid-test-ca"), ca_key, ca=True)
    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker = _cert("kafka-broker", broker_key, ca.subject, ca_key, server=True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _cert("evgrid-worker", client_key, ca.subject, ca_key)
    rogue_ca_key = ec.generate_private_key(ec.SECP256R1())
    rogue_ca = _cert("rogue-ca", rogue_ca_key, _name("rogue-ca"), rogue_ca_key, ca=True)
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = _cert("evgrid-worker", rogue_key, rogue_ca.subject, rogue_ca_key)

    password = secrets.token_hex(12)
    pki = Pki(out / "ca.pem", out / "broker.p12", password, out / "client.pem", out / "client.key",
              out / "rogue.pem", out / "rogue.key")
    pki.ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.broker_p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"broker", broker_key, broker, [ca], serialization.BestAvailableEncryption(password.encode())))
    pki.client_cert.write_bytes(client.public_bytes(serialization.Encoding.PEM))
    pki.client_key.write_bytes(_pem_key(client_key))
    pki.rogue_cert.write_bytes(rogue.public_bytes(serialization.Encoding.PEM))
    pki.rogue_key.write_bytes(_pem_key(rogue_key))
    for p in (pki.client_key, pki.rogue_key, pki.broker_p12):
        p.chmod(0o600)
    return pki


# ------------------------------------------------------------------ the secured broker


@dataclass(frozen=True)
class SecureKafka:
    broker: infra.PrivateKafka
    pki: Pki
    sasl_ssl: str
    ssl: str
    passwords: dict[str, str]

    def sasl(self, user: str, password: str | None = None, **kw: object) -> Settings:
        """Settings of ``user`` on the SASL_SSL listener (its real password unless one is given)."""
        return Settings(bootstrap_servers=self.sasl_ssl, security_protocol="SASL_SSL", sasl_mechanism=MECHANISM,
                        sasl_username=user, sasl_password=SecretStr(password or self.passwords[user]),
                        ssl_cafile=str(self.pki.ca_pem), **kw)  # type: ignore[arg-type]

    def mtls(self, cert: Path | None, key: Path | None, **kw: object) -> Settings:
        """Settings of a certificate-authenticated client on the SSL listener."""
        return Settings(bootstrap_servers=self.ssl, security_protocol="SSL", ssl_cafile=str(self.pki.ca_pem),
                        ssl_certfile=str(cert) if cert else None, ssl_keyfile=str(key) if key else None,
                        **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    root = tmp_path_factory.mktemp("secure-kafka")
    pki = make_pki(root / "pki")
    passwords = {u: secrets.token_urlsafe(18).replace("-", "x").replace("_", "y") for u in PRINCIPALS}
    port, controller, sasl_port, ssl_port = infra.free_ports(4)
    broker = infra.start_private_kafka(
        port, controller, root / "kafka",
        template=infra.repo_root() / "infra" / "kafka" / "server-sasl-ssl.properties",
        template_vars={"SASL_SSL_PORT": str(sasl_port), "SSL_PORT": str(ssl_port), "KEYSTORE": str(pki.broker_p12),
                       "KEYSTORE_PASSWORD": pki.store_password, "TRUSTSTORE": str(pki.ca_pem),
                       "ADMIN_PASSWORD": passwords["admin"]},
        scram=[f"{MECHANISM}=[name={u},password={p}]" for u, p in passwords.items()],
    )
    try:
        yield SecureKafka(broker, pki, f"127.0.0.1:{sasl_port}", f"127.0.0.1:{ssl_port}", passwords)
    finally:
        broker.kill()


# ------------------------------------------------------------------ ACL layout (docs/security.md)


def _acl(principal: str, rtype: ResourceType, name: str, op: AclOperation,
         pattern: ResourcePatternType = ResourcePatternType.LITERAL) -> AclBinding:
    return AclBinding(rtype, name, pattern, f"User:{principal}", "*", op, AclPermissionType.ALLOW)


def layout_acls(prefix: str = "", app_id: str = "evgrid") -> list[AclBinding]:
    """The ACLs of docs/security.md for one topic prefix (deployment namespace)."""
    T, G = ResourceType.TOPIC, ResourceType.GROUP
    PREFIXED = ResourcePatternType.PREFIXED
    acls: list[AclBinding] = []
    for op in (AclOperation.CREATE, AclOperation.DELETE, AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS,
               AclOperation.ALTER_CONFIGS):
        acls.append(_acl("evgrid-ops", T, f"{prefix}evgrid.", op, PREFIXED))
    # READ and WRITE imply DESCRIBE
    acls += [_acl("evgrid-ingest", T, prefix + t, AclOperation.WRITE) for t in INPUT_TOPICS]
    acls += [_acl("evgrid-worker", T, prefix + t, AclOperation.READ) for t in INPUT_TOPICS]
    acls += [_acl("evgrid-worker", T, prefix + t, AclOperation.WRITE) for t in WORKER_OUTPUTS]
    for op in (AclOperation.CREATE, AclOperation.READ, AclOperation.WRITE):  # faust changelog + leader topics
        acls.append(_acl("evgrid-worker", T, f"{prefix}{app_id}-", op, PREFIXED))
    acls.append(_acl("evgrid-worker", G, f"{prefix}{app_id}", AclOperation.READ))
    acls += [_acl("evgrid-monitor", T, prefix + t, AclOperation.READ) for t in MONITOR_INPUTS]
    acls.append(_acl("evgrid-monitor", T, f"{prefix}{app_id}-monitor-", AclOperation.READ, PREFIXED))  # faust leader
    acls.append(_acl("evgrid-monitor", G, f"{prefix}{app_id}-monitor", AclOperation.READ))
    acls += [_acl("evgrid-downstream", T, prefix + SETPOINTS, AclOperation.READ),
             _acl("evgrid-downstream", G, f"{prefix}{DOWNSTREAM_GROUP_PREFIX}", AclOperation.READ, PREFIXED)]
    return acls


def apply_acls(admin_settings: Settings, acls: list[AclBinding]) -> None:
    admin = AdminClient(client_config(admin_settings))
    for future in admin.create_acls(acls, request_timeout=30).values():
        future.result()


@pytest.fixture
def namespace(secure_kafka: SecureKafka) -> Iterator[str]:
    """A fresh topic prefix with the ACL layout applied and the topics created by the ops principal."""
    prefix = f"sec-{uuid.uuid4().hex[:8]}."
    apply_acls(secure_kafka.sasl("admin"), layout_acls(prefix))
    created = create_topics(secure_kafka.sasl("evgrid-ops", topic_prefix=prefix, topic_retention_ms=-1, partitions=2))
    assert set(created.values()) == {"created"} and len(created) == len(TOPICS)
    yield prefix


# ------------------------------------------------------------------ helpers


def _readings(n: int, feeder: str = "F1") -> list[tuple[bytes, bytes, int, None]]:
    codec = default_codec()
    now = int(time.time() // 900 * 900 * 1000)
    return [(feeder.encode(), codec.encode("MeterReading", {"meter_id": f"m{i}", "feeder_id": feeder,
                                                            "timestamp": now + i * 1000,
                                                            "active_power_kw": 1.0 + i}), now + i * 1000, None)
            for i in range(n)]


def _errors_of_admin(settings: Settings, timeout: float = 6.0) -> tuple[list[KafkaError], Exception | None]:
    """Errors a client reports while trying to fetch metadata, and the exception of the attempt (or None)."""
    errors: list[KafkaError] = []
    admin = AdminClient(client_config(settings) | {"error_cb": errors.append, "reconnect.backoff.ms": 200})
    exc: Exception | None = None
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as e:
        exc = e
        errors.append(e.args[0])
    admin.poll(1.0)  # serve error_cb
    return errors, exc


def _delivery_errors(settings: Settings, topic: str, n: int = 1) -> dict[str, int]:
    # not idempotent: a principal without WRITE on any topic would fail InitProducerId (cluster level) first
    producer = make_producer(settings, message_timeout_ms=10_000, enable_idempotence=False)
    stats = produce_records(producer, topic, _readings(n), flush_timeout=30)
    return dict(stats.errors) if stats.failed else {}


# ------------------------------------------------------------------ tests


@pytest.mark.timeout(240)
def test_sasl_ssl_produce_and_consume_through_kafka_io(secure_kafka: SecureKafka, namespace: str) -> None:
    ingest = secure_kafka.sasl("evgrid-ingest", topic_prefix=namespace)
    topic = namespace + METER_READINGS
    stats = produce_records(make_producer(ingest), topic, _readings(20))
    assert (stats.delivered, stats.failed) == (20, 0)
    got = consume_all(secure_kafka.sasl("admin"), [topic], timeout=60, expected=20)
    assert sorted(m.value() or b"" for m in got) == sorted(v for _, v, _, _ in _readings(20))


@pytest.mark.timeout(180)
def test_wrong_password_is_refused(secure_kafka: SecureKafka, namespace: str) -> None:
    errors, exc = _errors_of_admin(secure_kafka.sasl("evgrid-ingest", password="not-the-password"))
    assert exc is not None, "metadata request with a wrong password must fail"
    auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    assert auth, f"no authentication error reported: {errors}"
    assert "SASL authentication error" in auth[0].str()
    assert not any("not-the-password" in e.str() for e in errors)
    # unknown user: same refusal
    errors, exc = _errors_of_admin(secure_kafka.sasl("evgrid-ingest", password="x").model_copy(
        update={"sasl_username": "mallory"}))
    assert exc is not None and any(e.code() == KafkaError._AUTHENTICATION for e in errors)
    # the faust transport (aiokafka) with the same wrong password is refused too
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError as AIOKafkaError
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    async def start(settings: Settings) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=10_000,
                                    **credentials_to_aiokafka_auth(broker_credentials(settings)))
        try:
            await producer.start()
        finally:
            await producer.stop()

    with pytest.raises(AIOKafkaError):
        asyncio.run(start(secure_kafka.sasl("evgrid-ingest", password="not-the-password")))
    asyncio.run(start(secure_kafka.sasl("evgrid-ingest")))  # the right one is accepted


@pytest.mark.timeout(240)
def test_acl_layout_grants_each_principal_only_its_topics(secure_kafka: SecureKafka, namespace: str) -> None:
    sk = secure_kafka
    # the worker may write setpoints, the ingest principal may not
    setpoint = [(b"C1", b"setpoint-bytes", None, None)]
    assert produce_records(make_producer(sk.sasl("evgrid-worker")), namespace + SETPOINTS, setpoint).delivered == 1
    assert "TOPIC_AUTHORIZATION_FAILED" in _delivery_errors(sk.sasl("evgrid-ingest"), namespace + SETPOINTS)
    # downstream consumers read setpoints in their own group...
    consumer = make_consumer(sk.sasl("evgrid-downstream"), f"{namespace}{DOWNSTREAM_GROUP_PREFIX}site-1")
    consumer.subscribe([namespace + SETPOINTS])
    values: list[bytes | None] = []
    deadline = time.monotonic() + 60
    while not values and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None:
            assert msg.error() is None, msg.error()
            values.append(msg.value())
    consumer.close()
    assert values == [b"setpoint-bytes"]
    # ...but may not write them, nor read the inputs, nor use another group
    assert "TOPIC_AUTHORIZATION_FAILED" in _delivery_errors(sk.sasl("evgrid-downstream"), namespace + SETPOINTS)
    for group, topic, code in ((f"{namespace}{DOWNSTREAM_GROUP_PREFIX}x", namespace + METER_READINGS,
                                KafkaError.TOPIC_AUTHORIZATION_FAILED),
                               (f"{namespace}evgrid", namespace + SETPOINTS, KafkaError.GROUP_AUTHORIZATION_FAILED)):
        consumer = make_consumer(sk.sasl("evgrid-downstream"), group)
        consumer.subscribe([topic])
        err, deadline = None, time.monotonic() + 30
        while err is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is not None:
                err = msg.error()
        consumer.close()
        assert err is not None and err.code() == code, (group, topic, err)
    # the monitor reads outputs but writes nothing
    assert "TOPIC_AUTHORIZATION_FAILED" in _delivery_errors(sk.sasl("evgrid-monitor"), namespace + FORECASTS)


@pytest.mark.timeout(420)
def test_pipeline_runs_over_sasl_ssl_with_worker_acls_only(secure_kafka: SecureKafka, namespace: str,
                                                          start_worker, tmp_path: Path) -> None:
    sk = secure_kafka
    influx_token = "influx-" + secrets.token_hex(8)
    readings = _readings(12)
    bad = [(b"F1", b"\x00garbage-not-avro", int(time.time() * 1000), None)]
    ingest = sk.sasl("evgrid-ingest", topic_prefix=namespace)
    stats = produce_records(make_producer(ingest), namespace + METER_READINGS, readings + bad)
    assert stats.failed == 0

    env = {
        "EVGRID_BOOTSTRAP_SERVERS": sk.sasl_ssl, "EVGRID_TOPIC_PREFIX": namespace, "EVGRID_PARTITIONS": "2",
        "EVGRID_SECURITY_PROTOCOL": "SASL_SSL", "EVGRID_SASL_MECHANISM": MECHANISM,
        "EVGRID_SASL_USERNAME": "evgrid-worker", "EVGRID_SASL_PASSWORD": sk.passwords["evgrid-worker"],
        "EVGRID_SSL_CAFILE": str(sk.pki.ca_pem),
        # monitoring on, pointed at a closed port: its write failures must not leak the token
        "EVGRID_INFLUX_URL": f"http://127.0.0.1:{infra.free_ports(1)[0]}", "EVGRID_INFLUX_TOKEN": influx_token,
        "EVGRID_MONITOR_PIPELINE_SECONDS": "1",
    }
    worker = start_worker(env)
    st = worker.wait_for(lambda s: s["accepted"].get(METER_READINGS, 0) >= len(readings)
                         and sum(s["rejected"].values()) >= 1, timeout=180, what="readings processed over SASL_SSL")
    assert st["accepted"] == {METER_READINGS: len(readings)}
    assert st["rejected"] == {f"{METER_READINGS}/bad_magic": 1}

    dead = consume_all(sk.sasl("admin"), [namespace + DEADLETTER], timeout=60, expected=1)
    letters = [decode_record(default_codec(), m.value() or b"", "DeadLetter") for m in dead]
    assert len(letters) == 1 and isinstance(letters[0], DeadLetter)
    assert letters[0].source_topic == METER_READINGS and letters[0].value == bad[0][1]
    assert letters[0].reason_code == "bad_magic"
    assert letters[0].offset == len(readings)  # the one bad message, after the good ones on partition of F1
    # the worker's changelog went through its prefixed ACL
    names = AdminClient(client_config(sk.sasl("admin"))).list_topics(timeout=30).topics
    assert f"{namespace}evgrid-feeder-state-changelog" in names

    worker.stop()
    log = worker.log.read_text()
    assert sk.passwords["evgrid-worker"] not in log and influx_token not in log

    # evgrid monitor with only the monitor principal's ACLs consumes and commits in its own group
    monitor_env = env | {"EVGRID_SASL_USERNAME": "evgrid-monitor",
                         "EVGRID_SASL_PASSWORD": sk.passwords["evgrid-monitor"]}
    committed = _run_monitor_until_committed(sk, monitor_env, tmp_path, namespace + METER_READINGS, len(readings) + 1)
    assert committed == len(readings) + 1


def _run_monitor_until_committed(sk: SecureKafka, env: dict[str, str], tmp_path: Path, topic: str,
                                 want: int, timeout: float = 120.0) -> int:
    """Run ``evgrid monitor``; return its group's committed offset sum on ``topic`` once it reaches ``want``."""
    import os
    import subprocess
    import sys

    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    log = tmp_path / "monitor.log"
    full = {**os.environ, **env, "EVGRID_DATA_DIR": str(tmp_path / "monitor-data"), "PYTHONUNBUFFERED": "1"}
    group = f"{env['EVGRID_TOPIC_PREFIX']}evgrid-monitor"
    admin = AdminClient(client_config(sk.sasl("admin")))
    with open(log, "ab") as fh:
        proc = subprocess.Popen([sys.executable, "-c", "from streams.cli import app; app()", "monitor"],
                                env=full, stdout=fh, stderr=subprocess.STDOUT)
    total, deadline = 0, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"monitor exited: {log.read_text()[-3000:]}"
            request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(2)])
            result = admin.list_consumer_group_offsets([request], request_timeout=10)[group].result()
            total = sum(max(tp.offset, 0) for tp in result.topic_partitions)
            if total >= want:
                break
            time.sleep(1.0)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    text = log.read_text()
    for refusal in ("not authorized", "AuthorizationFailed", "AUTHORIZATION_FAILED"):
        assert refusal not in text, text[-3000:]
    assert env["EVGRID_SASL_PASSWORD"] not in text and env["EVGRID_INFLUX_TOKEN"] not in text
    return total


@pytest.mark.timeout(240)
def test_mtls_listener_accepts_the_client_certificate_and_refuses_others(secure_kafka: SecureKafka,
                                                                         namespace: str) -> None:
    sk, pki = secure_kafka, secure_kafka.pki
    good = sk.mtls(pki.client_cert, pki.client_key)
    # the certificate's CN is the principal: evgrid-worker may write forecasts, not meter readings
    payload = [(b"F1", f"forecast-{i}".encode(), None, None) for i in range(5)]
    assert produce_records(make_producer(good), namespace + FORECASTS, payload).delivered == 5
    assert "TOPIC_AUTHORIZATION_FAILED" in _delivery_errors(good, namespace + METER_READINGS)
    got = consume_all(sk.sasl("admin"), [namespace + FORECASTS], timeout=60, expected=5)
    assert sorted(m.value() or b"" for m in got) == sorted(v for _, v, _, _ in payload)

    # faust/aiokafka over the same listener with the credentials built from the same settings
    from aiokafka import AIOKafkaProducer
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=good.bootstrap_servers,
                                    **credentials_to_aiokafka_auth(broker_credentials(good)))
        await producer.start()
        try:
            await producer.send_and_wait(namespace + FORECASTS, b"via-aiokafka", key=b"F1")
        finally:
            await producer.stop()

    asyncio.run(send())
    got = consume_all(sk.sasl("admin"), [namespace + FORECASTS], timeout=60, expected=6)
    assert b"via-aiokafka" in {m.value() for m in got}

    for name, settings in (("no client certificate", sk.mtls(None, None)),
                           ("certificate of an untrusted CA", sk.mtls(pki.rogue_cert, pki.rogue_key))):
        errors, exc = _errors_of_admin(settings)
        assert exc is not None, f"{name}: metadata request must fail"
        # the broker ends the handshake with a TLS alert (Java sends bad_certificate for both cases)
        alerts = {e.str().split("alert ", 1)[1].split(":")[0] for e in errors if "ssl/tls alert" in e.str()}
        assert alerts, (name, [e.str() for e in errors][:5])
        assert alerts <= {"bad certificate", "unknown ca", "certificate required", "handshake failure"}, alerts


def _acl_key(b: AclBinding) -> tuple[object, ...]:
    return (b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation, b.permission_type)


def _acls_under(admin_settings: Settings, prefix: str) -> set[tuple[object, ...]]:
    from confluent_kafka.admin import AclBindingFilter

    anything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,  # type: ignore[arg-type]
                                AclOperation.ANY, AclPermissionType.ANY)  # None = any name/principal/host
    admin = AdminClient(client_config(admin_settings))  # keep the handle alive until the result is in
    found = admin.describe_acls(anything, request_timeout=30).result()
    return {_acl_key(b) for b in found if b.name.startswith(prefix)}


@pytest.mark.timeout(240)
def test_documented_acl_commands_create_the_tested_layout(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    """The ``kafka-acls`` block of docs/security.md, run verbatim, creates exactly :func:`layout_acls`."""
    import subprocess

    doc = (infra.repo_root() / "docs" / "security.md").read_text()
    block = doc.split("<!-- acl-commands", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    prefix = f"doc-{uuid.uuid4().hex[:8]}."
    cfg = tmp_path / "admin.properties"
    cfg.write_text(
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="admin" password="{secure_kafka.passwords["admin"]}";\n'
        f"ssl.truststore.type=PEM\nssl.truststore.location={secure_kafka.pki.ca_pem}\n")
    lib = infra.repo_root() / "infra" / "kafka" / "lib"
    java = f'java -Xmx128m -XX:TieredStopAtLevel=1 -cp "{lib}/*"'
    script = (f'set -euo pipefail\nkafka-acls.sh() {{ {java} kafka.admin.AclCommand "$@"; }}\n'
              f'P="{prefix}" APP="evgrid" BOOT="{secure_kafka.sasl_ssl}" CFG="{cfg}"\n{block}')
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=200, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = _acls_under(secure_kafka.sasl("admin"), prefix)
    assert got == {_acl_key(b) for b in layout_acls(prefix)}
