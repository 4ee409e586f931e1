"""A private least-privilege broker: SASL_SSL (SCRAM-SHA-512), mTLS, ACLs, no anonymous access (docs/security.md).

The module starts one broker from ``infra/kafka/server-sasl-ssl.properties`` on free ports with certificates
generated here: an infra CA (the broker's certificate and the operator's, the only super users, by exact DN)
and a client CA (client certificates, ``CN=<principal>,OU=evgrid-clients,O=evgrid``). Every evgrid principal is
a SCRAM user; each test gets a fresh topic namespace with the layout of :mod:`streams.acls` applied. It shows
that no listener serves an unauthenticated client, that the broker start shows no secret on any command line,
that every principal can read and write exactly the topics of the access matrix of docs/security.md, that only
infra certificates are super users, and that the pipeline runs with the worker's and monitor's ACLs only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from streams import acls, infra
from streams.contracts.codec import default_codec
from streams.contracts.models import DeadLetter, decode_record
from streams.contracts.topics import (
    DEADLETTER,
    FORECASTS,
    METER_READINGS,
    SETPOINTS,
    TOPICS,
)
from streams.kafka.admin import create_topics
from streams.kafka.clients import client_config, consume_all, make_consumer, make_producer, produce_records
from streams.kafka.config import KafkaConnection
from streams.settings import Settings

pytestmark = [pytest.mark.integration]

MECHANISM = "SCRAM-SHA-512"
PRINCIPALS = tuple(acls.PRINCIPALS)
CLIENT_OU = "evgrid-clients"
INFRA_OU = "evgrid-infra"


# ------------------------------------------------------------------ certificates


def _name(cn: str, ou: str) -> x509.Name:
    # sequence O, OU, CN: the RFC 2253 form Kafka matches is "CN=<cn>,OU=<ou>,O=evgrid"
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "evgrid"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
          issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool = False, server: bool = False) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
         .not_valid_after(now + dt.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    else:
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
        b = b.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if server:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write_private(path: Path, data: bytes) -> Path:
    """Create ``path`` owner-only before writing (never a moment world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


@dataclass(frozen=True)
class Identity:
    """A certificate and its unencrypted key (PEM); ``chain`` holds both (a Java PEM keystore)."""

    cert: Path
    key: Path
    chain: Path
    dn: str


@dataclass(frozen=True)
class Pki:
    infra_ca: Path  # signs the broker and the operator (super users); clients verify the broker with it
    client_ca: Path  # signs client certificates
    broker_p12: Path
    store_password: str
    super_users: tuple[str, ...]  # exact DNs
    ids: dict[str, Identity] = field(default_factory=dict)


def make_pki(out: Path) -> Pki:
    """Two CAs, the broker keystore, and client identities (good ones, impostors, a rogue CA's)."""
    out.mkdir(parents=True, exist_ok=True)

    def ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        return _cert(_name(cn, "ca"), key, _name(cn, "ca"), key, ca=True), key

    infra_ca, infra_key = ca("evgrid-infra-ca")
    client_ca, client_key = ca("evgrid-client-ca")
    rogue_ca, rogue_key = ca("rogue-ca")
    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker = _cert(_name("kafka-broker", INFRA_OU), broker_key, infra_ca.subject, infra_key, server=True)
    password = secrets.token_hex(12)
    pki = Pki(out / "infra-ca.pem", out / "client-ca.pem", out / "broker.p12", password,
              (broker.subject.rfc4514_string(), _name("evgrid-admin", INFRA_OU).rfc4514_string()))
    pki.infra_ca.write_bytes(infra_ca.public_bytes(serialization.Encoding.PEM))
    pki.client_ca.write_bytes(client_ca.public_bytes(serialization.Encoding.PEM))
    _write_private(pki.broker_p12, pkcs12.serialize_key_and_certificates(
        b"broker", broker_key, broker, [infra_ca], serialization.BestAvailableEncryption(password.encode())))
    issuers = {"infra": (infra_ca, infra_key), "client": (client_ca, client_key), "rogue": (rogue_ca, rogue_key)}
    for label, cn, ou, issuer in (
        ("admin", "evgrid-admin", INFRA_OU, "infra"),  # the operator: a super user by its exact DN
        ("worker", "evgrid-worker", CLIENT_OU, "client"),  # a client certificate -> User:evgrid-worker
        ("cn-admin", "admin", CLIENT_OU, "client"),  # CN=admin from the client CA is nobody special
        ("fake-admin", "evgrid-admin", INFRA_OU, "client"),  # the operator's DN, issued by the client CA
        ("odd-dn", "evgrid-worker", "elsewhere", "client"),  # a DN outside the client rule
        ("rogue", "evgrid-worker", CLIENT_OU, "rogue"),  # the right DN from an untrusted CA
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(_name(cn, ou), key, issuers[issuer][0].subject, issuers[issuer][1])
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        (out / f"{label}.pem").write_bytes(cert_pem)
        pki.ids[label] = Identity(out / f"{label}.pem", _write_private(out / f"{label}.key", key_pem),
                                  _write_private(out / f"{label}-chain.pem", key_pem + cert_pem),
                                  cert.subject.rfc4514_string())
    return pki


# ------------------------------------------------------------------ the secured broker


class CommandLineWatch:
    """Scans every process's command line while the broker starts, for any of ``secrets_``."""

    def __init__(self, secrets_: list[str]) -> None:
        self.needles = [s.encode() for s in secrets_]
        self.seen: list[str] = []
        self.scans = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for d in Path("/proc").iterdir():
                if not d.name.isdigit():
                    continue
                try:
                    cmd = (d / "cmdline").read_bytes()
                except OSError:
                    continue
                if any(n in cmd for n in self.needles):
                    self.seen.append(cmd.replace(b"\0", b" ").decode(errors="replace")[:200])
            self.scans += 1
            time.sleep(0.005)

    def __enter__(self) -> CommandLineWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class SecureKafka:
    broker: infra.PrivateKafka
    pki: Pki
    sasl_ssl: str
    ssl: str
    internal: str
    controller: str
    passwords: dict[str, str]
    watch: CommandLineWatch

    def sasl(self, user: str, password: str | None = None, **kw: object) -> Settings:
        """Settings of ``user`` on the SASL_SSL listener (its real password unless one is given)."""
        return Settings(bootstrap_servers=self.sasl_ssl, security_protocol="SASL_SSL", sasl_mechanism=MECHANISM,
                        sasl_username=user, sasl_password=SecretStr(password or self.passwords[user]),
                        ssl_cafile=str(self.pki.infra_ca), **kw)  # type: ignore[arg-type]

    def mtls(self, ident: str | None, listener: str | None = None, **kw: object) -> Settings:
        """Settings of a certificate-authenticated client (``pki.ids[ident]``, None = no certificate)."""
        i = self.pki.ids[ident] if ident else None
        return Settings(bootstrap_servers=listener or self.ssl, security_protocol="SSL",
                        ssl_cafile=str(self.pki.infra_ca), ssl_certfile=str(i.cert) if i else None,
                        ssl_keyfile=str(i.key) if i else None, **kw)  # type: ignore[arg-type]

    def admin(self, **kw: object) -> Settings:
        """The operator: infra-CA certificate on the INTERNAL listener (a super user)."""
        return self.mtls("admin", self.internal, **kw)


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    root = tmp_path_factory.mktemp("secure-kafka")
    pki = make_pki(root / "pki")
    passwords = {u: secrets.token_urlsafe(18).replace("-", "x").replace("_", "y") for u in PRINCIPALS}
    port, controller, internal, ssl_port = infra.free_ports(4)
    with CommandLineWatch([pki.store_password, *passwords.values()]) as watch:
        broker = infra.start_private_kafka(
            port, controller, root / "kafka",
            template=infra.repo_root() / "infra" / "kafka" / "server-sasl-ssl.properties",
            template_vars={"INTERNAL_PORT": str(internal), "SSL_PORT": str(ssl_port),
                           "KEYSTORE": str(pki.broker_p12), "KEYSTORE_PASSWORD": pki.store_password,
                           "INFRA_CA": str(pki.infra_ca), "CLIENT_CA": str(pki.client_ca),
                           "SUPER_USERS": ";".join(f"User:{dn}" for dn in pki.super_users)},
            scram=[f"{MECHANISM}=[name={u},password={p}]" for u, p in passwords.items()],
        )
    try:
        yield SecureKafka(broker, pki, f"127.0.0.1:{port}", f"127.0.0.1:{ssl_port}", f"127.0.0.1:{internal}",
                          f"127.0.0.1:{controller}", passwords, watch)
    finally:
        broker.kill()


# ------------------------------------------------------------------ ACL layout (streams.acls, docs/security.md)

_OPS = {"Read": AclOperation.READ, "Write": AclOperation.WRITE, "Create": AclOperation.CREATE,
        "Delete": AclOperation.DELETE, "Describe": AclOperation.DESCRIBE,
        "DescribeConfigs": AclOperation.DESCRIBE_CONFIGS, "AlterConfigs": AclOperation.ALTER_CONFIGS}


def binding(g: acls.Grant) -> AclBinding:
    return AclBinding(ResourceType.TOPIC if g.resource == "topic" else ResourceType.GROUP, g.name,
                      ResourcePatternType.PREFIXED if g.prefixed else ResourcePatternType.LITERAL,
                      f"User:{g.principal}", "*", _OPS[g.operation], AclPermissionType.ALLOW)


def apply_acls(admin_settings: Settings, grants: list[acls.Grant]) -> None:
    admin = AdminClient(client_config(admin_settings))
    for future in admin.create_acls([binding(g) for g in grants], request_timeout=30).values():
        future.result()


@dataclass(frozen=True)
class Namespace:
    prefix: str
    sandbox: str  # this test's backtest sandbox prefix (bt-…)


@pytest.fixture
def namespace(secure_kafka: SecureKafka) -> Iterator[Namespace]:
    """A fresh topic prefix and sandbox with the layout applied; topics created by the ops principal."""
    tag = uuid.uuid4().hex[:8]
    ns = Namespace(f"sec-{tag}.", f"{acls.SANDBOX}{tag}-")
    apply_acls(secure_kafka.admin(), acls.layout(ns.prefix, sandbox=ns.sandbox))
    created = create_topics(secure_kafka.sasl("evgrid-ops", topic_prefix=ns.prefix, topic_retention_ms=-1,
                                              partitions=2))
    assert set(created.values()) == {"created"} and len(created) == len(TOPICS)
    yield ns


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


def observe_writes(settings: Settings, topics: list[str], timeout: float = 30.0) -> dict[str, str]:
    """Produce one record to partition 0 of each topic: ``topic -> "ok"`` or the delivery error's name."""
    got: dict[str, str] = {}

    def report(err: KafkaError | None, msg: object) -> None:
        got[msg.topic()] = "ok" if err is None else err.name()  # type: ignore[attr-defined]

    producer = Producer(client_config(settings) | {"enable.idempotence": False, "acks": "all",
                                                   "message.timeout.ms": int(timeout * 1000) - 5000})
    for t in topics:
        producer.produce(t, b"matrix-probe", key=b"k", partition=0, on_delivery=report)
    producer.flush(timeout)
    return got


def observe_reads(settings: Settings, topics: list[str], timeout: float = 30.0) -> dict[str, str]:
    """Fetch partition 0 of each topic from the start without a consumer group (no offsets fetched or
    committed): ``topic -> "ok"`` once a record arrives, else the error reported for that topic. A topic the
    principal may not even describe gets no fetch (its metadata answer, TOPIC_AUTHORIZATION_FAILED, is the
    refusal; librdkafka would wait for it silently)."""
    got: dict[str, str] = {}
    consumer = Consumer(client_config(settings) | {"group.id": f"matrix-{uuid.uuid4().hex}",
                                                   "enable.auto.commit": False})
    try:
        for t in topics:
            err = consumer.list_topics(t, timeout=10).topics[t].error
            if err is not None:
                got[t] = err.name()
        fetch = [t for t in topics if t not in got]
        consumer.assign([TopicPartition(t, 0, OFFSET_BEGINNING) for t in fetch])
        deadline = time.monotonic() + timeout
        while len(got) < len(topics) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            topic = msg.topic() if msg is not None else None
            if msg is None or topic is None:
                continue
            err = msg.error()
            if err is None:
                got[topic] = "ok"
            elif err.code() != KafkaError._PARTITION_EOF:
                got.setdefault(topic, err.name())
    finally:
        consumer.close()
    return got


# ------------------------------------------------------------------ tests


@pytest.mark.timeout(120)
def test_broker_start_keeps_secrets_off_command_lines_and_files_owner_only(secure_kafka: SecureKafka) -> None:
    """Rendering the config and formatting the storage with the SCRAM users put no password in any argv."""
    sk = secure_kafka
    assert sk.watch.scans > 100, "the command-line scanner barely ran"
    assert sk.watch.seen == []
    conf = sk.broker.data_dir / "server.properties"
    assert conf.stat().st_mode & 0o777 == 0o600
    assert sk.pki.store_password in conf.read_text()  # the secret is in the file, which only the owner reads
    assert not (sk.broker.data_dir / "format.args").exists()  # the SCRAM argument file is gone
    broker_cmd = Path(f"/proc/{sk.broker.pid}/cmdline").read_bytes()
    assert not any(p.encode() in broker_cmd for p in [sk.pki.store_password, *sk.passwords.values()])


@pytest.mark.timeout(180)
def test_no_listener_serves_an_unauthenticated_client(secure_kafka: SecureKafka) -> None:
    """No PLAINTEXT listener, no anonymous principal: every port refuses a client without credentials."""
    sk = secure_kafka
    for addr in (sk.sasl_ssl, sk.ssl, sk.internal, sk.controller):
        for settings in (Settings(bootstrap_servers=addr),  # PLAINTEXT
                         Settings(bootstrap_servers=addr, security_protocol="SSL", ssl_cafile=str(sk.pki.infra_ca))):
            _, exc = _errors_of_admin(settings, timeout=3.0)
            assert exc is not None, f"{addr} served metadata to {settings.security_protocol} without credentials"
    conf = [line for line in (sk.broker.data_dir / "server.properties").read_text().splitlines()
            if not line.startswith("#")]
    assert not [line for line in conf if "ANONYMOUS" in line or "PLAINTEXT" in line]
    # the operator's certificate works, on the infra listener
    assert AdminClient(client_config(sk.admin())).list_topics(timeout=30).brokers


@pytest.mark.timeout(240)
def test_sasl_ssl_produce_and_consume_through_kafka_io(secure_kafka: SecureKafka, namespace: Namespace) -> None:
    meters = secure_kafka.sasl("evgrid-meter-headend", topic_prefix=namespace.prefix)
    topic = namespace.prefix + METER_READINGS
    sent = _readings(20)  # once: stamped from the clock's quarter hour, a second call may fall in the next one
    stats = produce_records(make_producer(meters), topic, sent)
    assert (stats.delivered, stats.failed) == (20, 0)
    got = consume_all(secure_kafka.admin(), [topic], timeout=60, expected=20)
    assert sorted(m.value() or b"" for m in got) == sorted(v for _, v, _, _ in sent)


@pytest.mark.timeout(180)
def test_wrong_password_is_refused(secure_kafka: SecureKafka) -> None:
    errors, exc = _errors_of_admin(secure_kafka.sasl("evgrid-meter-headend", password="not-the-password"))
    assert exc is not None, "metadata request with a wrong password must fail"
    auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    assert auth, f"no authentication error reported: {errors}"
    assert "SASL authentication error" in auth[0].str()
    assert not any("not-the-password" in e.str() for e in errors)
    # unknown user (e.g. the old shared super user name): same refusal
    for user in ("mallory", "admin"):
        errors, exc = _errors_of_admin(secure_kafka.sasl("evgrid-worker", password="x").model_copy(
            update={"sasl_username": user}))
        assert exc is not None and any(e.code() == KafkaError._AUTHENTICATION for e in errors), user
    # the faust transport (aiokafka) with the same wrong password is refused too
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError as AIOKafkaError
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    async def start(settings: Settings) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=10_000,
                                    **credentials_to_aiokafka_auth(KafkaConnection.from_settings(settings).faust_credentials()))
        try:
            await producer.start()
        finally:
            await producer.stop()

    with pytest.raises(AIOKafkaError):
        asyncio.run(start(secure_kafka.sasl("evgrid-worker", password="not-the-password")))
    asyncio.run(start(secure_kafka.sasl("evgrid-worker")))  # the right one is accepted


def _doc_matrix() -> dict[tuple[str, str], str]:
    """The access matrix table of docs/security.md: ``(principal, topic column) -> R/W/RW/-``."""
    doc = (infra.repo_root() / "docs" / "security.md").read_text()
    table = doc.split("<!-- access-matrix", 1)[1].split("\n\n", 1)[1].split("\n\n", 1)[0]
    rows = [[c.strip().strip("`") for c in line.strip().strip("|").split("|")] for line in table.splitlines()]
    header, body = rows[0], rows[2:]
    out = {}
    for row in body:
        for principal, cell in zip(header[1:], row[1:], strict=True):
            out[principal, row[0]] = {"–": "-", "": "-"}.get(cell, cell)
    return out


def matrix_topics(ns: Namespace) -> dict[str, str]:
    """The topic columns of the doc table -> this namespace's topic names."""
    cols = {t: ns.prefix + t for t in (*acls.INPUTS, *acls.OUTPUTS)}
    cols["<app>-feeder-state-changelog"] = acls.changelog_topic(ns.prefix)
    cols["bt-…"] = f"{ns.sandbox}x.{METER_READINGS}"
    return cols


@pytest.mark.timeout(300)
def test_denial_matrix_every_principal_every_topic(secure_kafka: SecureKafka, namespace: Namespace) -> None:
    """Each principal reads and writes exactly the topics of the docs/security.md matrix, on a real broker."""
    sk, ns = secure_kafka, namespace
    cols = matrix_topics(ns)
    topics = list(cols.values())
    # the changelog as the worker creates it (prefixed Create); the sandbox topic by the backtest principal
    for who, topic in (("evgrid-worker", cols["<app>-feeder-state-changelog"]), ("evgrid-backtest", cols["bt-…"])):
        admin = AdminClient(client_config(sk.sasl(who)))  # keep the handle alive until the result is in
        futures = admin.create_topics(
            [NewTopic(topic, 1, 1, config={"cleanup.policy": "compact"} if who == "evgrid-worker" else {})])
        futures[topic].result(30)
    # nobody else may create topics in the sandbox or the live namespace (ops only under P.evgrid.)
    for who, topic in (("evgrid-worker", f"{ns.prefix}evgrid.sneaky"), ("evgrid-backtest", ns.prefix + "evgrid.x"),
                       ("evgrid-ops", f"{ns.sandbox}y")):
        admin = AdminClient(client_config(sk.sasl(who)))
        futures = admin.create_topics([NewTopic(topic, 1, 1)])
        with pytest.raises(KafkaException) as exc:
            futures[topic].result(30)
        assert exc.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (who, topic)
    # one record in partition 0 of every topic, written by the operator, so that a permitted read gets data
    seeded = observe_writes(sk.admin(), topics)
    assert seeded == dict.fromkeys(topics, "ok"), seeded

    expected = _doc_matrix()
    assert {p for p, _ in expected} == set(acls.PRINCIPALS) and {c for _, c in expected} == set(cols)
    observed: dict[tuple[str, str], str] = {}
    for principal in acls.PRINCIPALS:
        settings = sk.sasl(principal)
        writes, reads = observe_writes(settings, topics), observe_reads(settings, topics)
        for col, topic in cols.items():
            for outcome in (writes.get(topic, "no answer"), reads.get(topic, "no answer")):
                assert outcome in ("ok", "TOPIC_AUTHORIZATION_FAILED"), (principal, topic, outcome)
            cell = ("R" if reads[topic] == "ok" else "") + ("W" if writes[topic] == "ok" else "")
            observed[principal, col] = cell or "-"
    wrong = {k: (observed[k], expected[k]) for k in expected if observed[k] != expected[k]}
    assert not wrong, f"(principal, topic): (observed, documented) {wrong}"
    # the layout module agrees with the table (checked without a broker in tests/unit/test_acl_layout.py)
    layout = acls.access_matrix(acls.layout(ns.prefix, sandbox=ns.sandbox), topics)
    assert {(p, c): layout[p, t] for p in acls.PRINCIPALS for c, t in cols.items()} == observed
    # only the worker writes the changelog
    assert [p for p in acls.PRINCIPALS if "W" in observed[p, "<app>-feeder-state-changelog"]] == ["evgrid-worker"]


@pytest.mark.timeout(240)
def test_consumer_groups_are_per_principal(secure_kafka: SecureKafka, namespace: Namespace) -> None:
    """The CSMS reads setpoints in its own ``csms-`` groups only, not in the worker's group."""
    sk, ns = secure_kafka, namespace
    setpoint = [(b"C1", b"setpoint-bytes", None, None)]
    assert produce_records(make_producer(sk.sasl("evgrid-worker")), ns.prefix + SETPOINTS, setpoint).delivered == 1
    consumer = make_consumer(sk.sasl("evgrid-csms"), f"{ns.prefix}csms-site-1")
    consumer.subscribe([ns.prefix + SETPOINTS])
    values: list[bytes | None] = []
    deadline = time.monotonic() + 60
    while not values and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None:
            assert msg.error() is None, msg.error()
            values.append(msg.value())
    consumer.close()
    assert values == [b"setpoint-bytes"]
    for who, group in (("evgrid-csms", f"{ns.prefix}evgrid"), ("evgrid-monitor", f"{ns.prefix}csms-x"),
                       ("evgrid-incentive-app", f"{ns.prefix}csms-x")):
        topic = ns.prefix + (SETPOINTS if who != "evgrid-incentive-app" else "evgrid.incentives")
        consumer = make_consumer(sk.sasl(who), group)
        consumer.subscribe([topic])
        err, deadline = None, time.monotonic() + 30
        while err is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is not None:
                err = msg.error()
        consumer.close()
        assert err is not None and err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, (who, group, err)


@pytest.mark.timeout(420)
def test_pipeline_runs_over_sasl_ssl_with_worker_acls_only(secure_kafka: SecureKafka, namespace: Namespace,
                                                          start_worker, tmp_path: Path) -> None:
    sk, prefix = secure_kafka, namespace.prefix
    influx_token = "influx-" + secrets.token_hex(8)
    readings = _readings(12)
    bad = [(b"F1", b"\x00garbage-not-avro", int(time.time() * 1000), None)]
    meters = sk.sasl("evgrid-meter-headend", topic_prefix=prefix)
    stats = produce_records(make_producer(meters), prefix + METER_READINGS, readings + bad)
    assert stats.failed == 0

    env = {
        "EVGRID_BOOTSTRAP_SERVERS": sk.sasl_ssl, "EVGRID_TOPIC_PREFIX": prefix, "EVGRID_PARTITIONS": "2",
        "EVGRID_SECURITY_PROTOCOL": "SASL_SSL", "EVGRID_SASL_MECHANISM": MECHANISM,
        "EVGRID_SASL_USERNAME": "evgrid-worker", "EVGRID_SASL_PASSWORD": sk.passwords["evgrid-worker"],
        "EVGRID_SSL_CAFILE": str(sk.pki.infra_ca),
        # monitoring on, pointed at a closed port: its write failures must not leak the token
        "EVGRID_INFLUX_URL": f"http://127.0.0.1:{infra.free_ports(1)[0]}", "EVGRID_INFLUX_TOKEN": influx_token,
        "EVGRID_MONITOR_PIPELINE_SECONDS": "1",
    }
    worker = start_worker(env)
    st = worker.wait_for(lambda s: s["accepted"].get(METER_READINGS, 0) >= len(readings)
                         and sum(s["rejected"].values()) >= 1, timeout=180, what="readings processed over SASL_SSL")
    assert st["accepted"] == {METER_READINGS: len(readings)}
    assert st["rejected"] == {f"{METER_READINGS}/bad_magic": 1}

    dead = consume_all(sk.admin(), [prefix + DEADLETTER], timeout=60, expected=1)
    letters = [decode_record(default_codec(), m.value() or b"", "DeadLetter") for m in dead]
    assert len(letters) == 1 and isinstance(letters[0], DeadLetter)
    assert letters[0].source_topic == METER_READINGS and letters[0].value == bad[0][1]
    assert letters[0].reason_code == "bad_magic"
    assert letters[0].offset == len(readings)  # the one bad message, after the good ones on partition of F1
    # the worker's changelog went through its prefixed ACL
    names = AdminClient(client_config(sk.admin())).list_topics(timeout=30).topics
    assert f"{prefix}evgrid-feeder-state-changelog" in names

    worker.stop()
    log = worker.log.read_text()
    assert sk.passwords["evgrid-worker"] not in log and influx_token not in log

    # evgrid monitor with only the monitor principal's ACLs consumes and commits in its own group
    monitor_env = env | {"EVGRID_SASL_USERNAME": "evgrid-monitor",
                         "EVGRID_SASL_PASSWORD": sk.passwords["evgrid-monitor"]}
    committed = _run_monitor_until_committed(sk, monitor_env, tmp_path, prefix + METER_READINGS, len(readings) + 1)
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
    admin = AdminClient(client_config(sk.admin()))
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
def test_mtls_client_certificates_and_super_users(secure_kafka: SecureKafka, namespace: Namespace) -> None:
    """A client-CA certificate CN=<name>,OU=evgrid-clients,O=evgrid is User:<name> with that principal's ACLs;
    any other certificate is refused, and only the infra CA's exact DNs are super users."""
    sk, ns = secure_kafka, namespace
    good = sk.mtls("worker")
    payload = [(b"F1", f"forecast-{i}".encode(), None, None) for i in range(5)]
    assert produce_records(make_producer(good), ns.prefix + FORECASTS, payload).delivered == 5
    assert "TOPIC_AUTHORIZATION_FAILED" in _delivery_errors(good, ns.prefix + METER_READINGS)
    got = consume_all(sk.admin(), [ns.prefix + FORECASTS], timeout=60, expected=5)
    assert sorted(m.value() or b"" for m in got) == sorted(v for _, v, _, _ in payload)

    # faust/aiokafka over the same listener with the credentials built from the same settings
    from aiokafka import AIOKafkaProducer
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    async def send() -> None:
        credentials = KafkaConnection.from_settings(good).faust_credentials()
        producer = AIOKafkaProducer(bootstrap_servers=good.bootstrap_servers,
                                    **credentials_to_aiokafka_auth(credentials))
        await producer.start()
        try:
            await producer.send_and_wait(ns.prefix + FORECASTS, b"via-aiokafka", key=b"F1")
        finally:
            await producer.stop()

    asyncio.run(send())
    got = consume_all(sk.admin(), [ns.prefix + FORECASTS], timeout=60, expected=6)
    assert b"via-aiokafka" in {m.value() for m in got}

    # CN=admin from the client CA is User:admin: no ACL, no super user
    assert "TOPIC_AUTHORIZATION_FAILED" in _delivery_errors(sk.mtls("cn-admin"), ns.prefix + SETPOINTS)
    # refused outright: no certificate, an untrusted CA, a DN outside the client rule, the operator's DN from
    # the client CA (on the client listener it matches no rule; the infra listener does not trust the client CA)
    for name, settings in (("no client certificate", sk.mtls(None)), ("untrusted CA", sk.mtls("rogue")),
                           ("DN outside the client rule", sk.mtls("odd-dn")),
                           ("operator DN from the client CA", sk.mtls("fake-admin")),
                           ("operator DN from the client CA, infra listener", sk.mtls("fake-admin", sk.internal)),
                           ("client certificate on the infra listener", sk.mtls("worker", sk.internal))):
        _, exc = _errors_of_admin(settings, timeout=4.0)
        assert exc is not None, f"{name}: metadata request must fail"
    # the real operator certificate is a super user: it may read the ACLs and write any topic
    assert _acls_under(sk.admin(), ns.prefix)
    assert observe_writes(sk.admin(), [ns.prefix + SETPOINTS]) == {ns.prefix + SETPOINTS: "ok"}


def _acl_key(b: AclBinding) -> tuple[object, ...]:
    return (b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation, b.permission_type)


def _acls_under(admin_settings: Settings, prefix: str) -> set[tuple[object, ...]]:
    anything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,  # type: ignore[arg-type]
                                AclOperation.ANY, AclPermissionType.ANY)  # None = any name/principal/host
    admin = AdminClient(client_config(admin_settings))  # keep the handle alive until the result is in
    found = admin.describe_acls(anything, request_timeout=30).result()
    return {_acl_key(b) for b in found if b.name.startswith(prefix)}


@pytest.mark.timeout(240)
def test_documented_acl_commands_create_the_tested_layout(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    """The ``kafka-acls`` block of docs/security.md, run verbatim as the operator (its documented mTLS
    config), creates exactly :func:`streams.acls.layout`."""
    import subprocess

    doc = (infra.repo_root() / "docs" / "security.md").read_text()
    block = doc.split("<!-- acl-commands", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    config = doc.split("<!-- admin-config", 1)[1].split("```properties\n", 1)[1].split("```", 1)[0]
    prefix = f"doc-{uuid.uuid4().hex[:8]}."
    ids = secure_kafka.pki.ids["admin"]
    cfg = tmp_path / "admin.properties"
    cfg.write_text(config.replace("/etc/evgrid/infra-ca.pem", str(secure_kafka.pki.infra_ca))
                   .replace("/etc/evgrid/evgrid-admin.pem", str(ids.chain)))
    assert "/etc/evgrid" not in cfg.read_text()
    lib = infra.repo_root() / "infra" / "kafka" / "lib"
    java = f'java -Xmx128m -XX:TieredStopAtLevel=1 -cp "{lib}/*"'
    script = (f'set -euo pipefail\nkafka-acls.sh() {{ {java} kafka.admin.AclCommand "$@"; }}\n'
              f'P="{prefix}" APP="evgrid" SANDBOX="{prefix}bt-" BOOT="{secure_kafka.internal}" CFG="{cfg}"\n'
              f"{block}")
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=200, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = _acls_under(secure_kafka.admin(), prefix)
    assert got == {_acl_key(binding(g)) for g in acls.layout(prefix, sandbox=f"{prefix}bt-")}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_backtest_runs_in_its_sandbox_as_the_backtest_principal(secure_kafka: SecureKafka,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    """``evgrid backtest`` with only the ``evgrid-backtest`` ACLs (everything ``bt-*``) creates its namespace,
    replays, runs its worker, settles and deletes its topics, on the secured broker."""
    import json

    import typer
    from typer.testing import CliRunner

    from streams.cli.backtest import register
    from streams.replay.scenario import REPO_ROOT

    sk = secure_kafka
    # the real sandbox prefix (the namespace fixture grants only a per-test one): backtests name theirs bt-<id>.
    apply_acls(sk.admin(), [g for g in acls.layout(sandbox=acls.SANDBOX) if g.principal == "evgrid-backtest"])
    for k, v in {"EVGRID_BOOTSTRAP_SERVERS": sk.sasl_ssl, "EVGRID_SECURITY_PROTOCOL": "SASL_SSL",
                 "EVGRID_SASL_MECHANISM": MECHANISM, "EVGRID_SASL_USERNAME": "evgrid-backtest",
                 "EVGRID_SASL_PASSWORD": sk.passwords["evgrid-backtest"], "EVGRID_SSL_CAFILE": str(sk.pki.infra_ca),
                 "EVGRID_MONITOR_ENABLED": "false"}.items():
        monkeypatch.setenv(k, v)
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """root"""

    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["backtest", str(REPO_ROOT / "scenarios/day-simulated-feeder.yaml"),
                                   "--open-loop", "--json", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    figs = json.loads(out.read_text())
    prefix = figs["run"]["prefix"]
    assert prefix.startswith(acls.SANDBOX) and figs["setpoints"]["count"] > 0
    assert figs["total"]["safety_violations"] == 0
    left = AdminClient(client_config(sk.admin())).list_topics(timeout=30).topics
    assert not [t for t in left if t.startswith(prefix)]  # it deleted its own namespace


@pytest.mark.timeout(240)
def test_documented_scram_command_adds_a_user_without_a_password_on_a_command_line(secure_kafka: SecureKafka,
                                                                                 tmp_path: Path) -> None:
    """The running-cluster SCRAM block of docs/security.md, run verbatim as the operator: the new user can log
    in, and its password never appears on a command line (scanned while the block runs)."""
    import subprocess

    doc = (infra.repo_root() / "docs" / "security.md").read_text()
    block = doc.split("<!-- scram-command", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    user, password = f"new-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(15).replace("-", "x").replace("_", "y")
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    _write_private(secrets_dir / user, password.encode())
    block = block.replace('PRINCIPAL="evgrid-csms"', f'PRINCIPAL="{user}"').replace("/run/secrets/", f"{secrets_dir}/")
    cfg = tmp_path / "admin.properties"
    config = doc.split("<!-- admin-config", 1)[1].split("```properties\n", 1)[1].split("```", 1)[0]
    cfg.write_text(config.replace("/etc/evgrid/infra-ca.pem", str(secure_kafka.pki.infra_ca))
                   .replace("/etc/evgrid/evgrid-admin.pem", str(secure_kafka.pki.ids["admin"].chain)))
    lib = infra.repo_root() / "infra" / "kafka" / "lib"
    java = f'java -Xmx128m -XX:TieredStopAtLevel=1 -cp "{lib}/*"'
    script = (f'set -euo pipefail\nkafka-configs.sh() {{ {java} kafka.admin.ConfigCommand "$@"; }}\n'
              f'BOOT="{secure_kafka.internal}" CFG="{cfg}"\n{block}')
    _, exc = _errors_of_admin(secure_kafka.sasl("evgrid-csms", password=password).model_copy(
        update={"sasl_username": user}), timeout=3.0)
    assert exc is not None  # not a user yet
    with CommandLineWatch([password]) as watch:
        proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=200, check=False,
                              cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert watch.scans > 10 and watch.seen == []
    assert not (tmp_path / "scram.properties").exists()
    login = secure_kafka.sasl("evgrid-csms", password=password).model_copy(update={"sasl_username": user})
    deadline = time.monotonic() + 30
    while (exc := _errors_of_admin(login, timeout=5.0)[1]) is not None and time.monotonic() < deadline:
        time.sleep(1)  # the credential reaches the broker through the metadata log
    assert exc is None, exc
