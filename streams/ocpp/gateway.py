"""The CSMS side of OCPP 2.0.1 / 2.1 over websockets: one asyncio process serves thousands of stations.

* ``ws(s)://HOST:PORT/<station_id>`` with subprotocol ``ocpp2.1`` or ``ocpp2.0.1`` (the station's choice, 2.1
  preferred). The handshake is refused (HTTP 4xx, no websocket) when no offered subprotocol is supported, the
  station is not registered (or not active), or its credentials fail: security profile 1/2 = HTTP basic auth
  (user = station id, password checked against a scrypt hash; profile 2 runs over TLS), profile 3 = TLS client
  certificate signed by the configured CA whose subject CN is the station id.
* Every station message is unpacked and schema-validated by the ``ocpp`` library. A frame that is not OCPP-J
  gets a CALLERROR ``RpcFrameworkError`` (message id ``-1`` when unreadable), a schema violation the library's
  error (FormatViolation, TypeConstraintViolation, ...), a physically impossible value (SoC 140 %) a
  ``PropertyConstraintViolation``, an action the gateway does not serve ``NotImplemented``; every one of them is
  also dead-lettered. Nothing a station sends stops the gateway or another station.
* Schema-valid messages fold into the station's :class:`~streams.ocpp.events.StationState` and become a
  ``ChargerTelemetry`` on the charger's feeder (:class:`Outputs`).
* Setpoints (and revocations) arrive through :meth:`Gateway.apply_setpoint`; each connected station has one
  delivery task that sends the newest one as SetChargingProfile (ClearChargingProfile for a revocation) once per
  connection and transaction, so a reconnecting station gets its profile again. The answer is a
  :class:`ProfileOutcome`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import ssl
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal, Protocol
from urllib.parse import unquote

from ocpp.exceptions import FormatViolationError, OCPPError, PropertyConstraintViolationError
from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.messages import Call, CallError, CallResult, unpack
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v201 import ChargePoint as ChargePoint201
from pydantic import ValidationError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from streams.contracts.models import ChargerRegistration, ChargerSetpoint, ChargerTelemetry, DeadLetter
from streams.contracts.models import describe_validation_error as describe
from streams.ocpp import events
from streams.ocpp.events import StationState
from streams.ocpp.profiles import StationTarget, clear_request, iso_utc, setpoint_request
from streams.ocpp.registry import Directory
from streams.ocpp.schemas import to_payload, validate

__all__ = ["SUBPROTOCOLS", "Gateway", "GatewayConfig", "Outputs", "ProfileOutcome"]

log = logging.getLogger(__name__)

SUBPROTOCOLS = ("ocpp2.1", "ocpp2.0.1")
MAX_FRAME_BYTES = 256 * 1024
MAX_DEADLETTER_VALUE = 64 * 1024


@dataclass(frozen=True)
class ProfileOutcome:
    """What became of one setpoint (or revocation) sent to a station."""

    station_id: str
    feeder_id: str
    action: Literal["SetChargingProfile", "ClearChargingProfile"]
    status: str
    """The station's answer (``Accepted``, ``Rejected``, ``Unknown``), ``CallError:<code>`` or ``Timeout``."""
    sequence: int | None
    setpoint_kw: float | None
    clipped: bool
    """The setpoint asked for discharge and the station may not discharge: sent clipped at 0 W."""
    discharge: bool
    version: str
    latency_ms: float
    at_ms: int


class Outputs(Protocol):
    """Where the gateway's results go (Kafka and InfluxDB in production, a list in unit tests)."""

    def telemetry(self, record: ChargerTelemetry) -> None: ...

    def dead_letter(self, record: DeadLetter) -> None: ...

    def outcome(self, outcome: ProfileOutcome) -> None: ...


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 9000
    security_profile: int = 2
    """1 = basic auth without TLS (behind a TLS-terminating proxy only), 2 = basic auth over TLS, 3 = mTLS."""
    ssl_context: ssl.SSLContext | None = None
    heartbeat_seconds: int = 300
    response_timeout_seconds: float = 30.0
    connect_grace_seconds: float = 5.0
    """A station the gateway knows nothing about (after a gateway restart) gets the setpoint of its session
    this long after connecting, unless it booted or reported a transaction meanwhile."""
    name: str = "ocpp-gateway"


class RpcFrameworkError(OCPPError):
    code = "RpcFrameworkError"
    default_description = "Not a valid OCPP-J RPC frame"


@dataclass
class GatewayStats:
    connections: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    messages: Counter[str] = field(default_factory=Counter)
    call_errors: Counter[str] = field(default_factory=Counter)
    telemetry: int = 0
    dead_letters: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    clipped: int = 0
    reaction_ms: dict[str, deque[float]] = field(default_factory=lambda: {
        "started": deque(maxlen=100_000), "setpoint": deque(maxlen=100_000)})
    """TransactionEvent Started handled, or a new setpoint taken from Kafka → the SetChargingProfile it caused
    written to the socket (gateway clock, ms)."""

    def to_dict(self) -> dict[str, Any]:
        return {"connections": self.connections, "refused": dict(self.refused), "messages": dict(self.messages),
                "call_errors": dict(self.call_errors), "telemetry": self.telemetry,
                "dead_letters": self.dead_letters, "answers": dict(self.answers), "clipped": self.clipped,
                "started_to_profile_sent_ms": _percentiles(self.reaction_ms["started"]),
                "setpoint_to_profile_sent_ms": _percentiles(self.reaction_ms["setpoint"])}


def _percentiles(xs: deque[float]) -> dict[str, float] | None:
    if not xs:
        return None
    s = sorted(xs)
    return {"n": len(s), "p50": round(s[len(s) // 2], 2), "p99": round(s[min(len(s) - 1, int(0.99 * len(s)))], 2),
            "max": round(s[-1], 2)}


Handler = Callable[["StationConnection", dict[str, Any]], Awaitable[Any]]


class StationConnection:
    """One connected station: routes its calls, sends it profiles. Mixed into the library's ChargePoint."""

    gateway: Gateway
    state_version: Literal["2.0.1", "2.1"]
    _call_result: Any
    _ocpp_version: str
    id: str
    _response_queue: asyncio.Queue[Any]
    _call_lock: asyncio.Lock
    _response_timeout: float
    _unique_id_generator: Callable[[], Any]
    _get_specific_response: Callable[[str, float], Awaitable[Any]]
    _send: Callable[[str], Awaitable[None]]

    def setup(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.wake = asyncio.Event()
        self.sent: object = None
        self.booted = False
        self.trigger: tuple[str, float] | None = None

    # --- station -> gateway ---------------------------------------------------------------------------

    async def route_message(self, raw_msg: str | bytes) -> None:
        """Every frame gets an answer or a CALLERROR when it is a CALL; nothing raises out of here."""
        g = self.gateway
        text = raw_msg if isinstance(raw_msg, str) else raw_msg.decode("utf-8", errors="replace")
        try:
            msg = unpack(text)
        except OCPPError as exc:
            uid = _message_id(text)
            await self._error(uid, RpcFrameworkError(details={"cause": str(exc.description)[:200]}), text, None)
            return
        if isinstance(msg, CallResult | CallError):
            self._response_queue.put_nowait(msg)
            return
        if not isinstance(msg.payload, dict) or not isinstance(msg.action, str):
            await self._error(str(msg.unique_id), RpcFrameworkError(details={"cause": "payload is not an object"}),
                              text, None)
            return
        g.stats.messages[msg.action] += 1
        handler = HANDLERS.get(msg.action)
        if handler is None:
            await self._error(msg.unique_id, OcppNotImplemented(
                details={"cause": f"{msg.action} is not served by this CSMS"}), text, msg.action)
            return
        try:
            validate(msg, self._ocpp_version)
            result = await handler(self, msg.payload)
        except OCPPError as exc:
            await self._error(msg.unique_id, exc, text, msg.action)
            return
        except ValidationError as exc:
            await self._error(msg.unique_id, PropertyConstraintViolationError(
                details={"cause": describe(exc)[:500]}), text, msg.action)
            return
        except (ValueError, KeyError, TypeError) as exc:
            await self._error(msg.unique_id, FormatViolationError(
                details={"cause": f"{type(exc).__name__}: {exc}"[:500]}), text, msg.action)
            return
        payload = to_payload(result)
        response = msg.create_call_result(payload)
        try:
            validate(response, self._ocpp_version)
        except OCPPError:  # our bug, never the station's: answer anyway, loudly
            log.exception("%s: invalid %s response %s", self.id, msg.action, payload)
        await self._send(response.to_json())

    async def _error(self, uid: str, exc: OCPPError, raw: str, action: str | None) -> None:
        g = self.gateway
        code = exc.code
        g.stats.call_errors[code] += 1
        cause = str((exc.details or {}).get("cause", exc.description))[:500]
        g.dead_letter(self.id, raw, f"ocpp_{code}", f"{action or 'frame'}: {cause}")
        frame = CallError(uid, code, exc.description or code, {"cause": cause})
        with contextlib.suppress(ConnectionClosed):
            await self._send(frame.to_json())

    def _update(self, new: StationState, ts_ms: int) -> None:
        """Keep ``new`` when its telemetry validates (raises pydantic ``ValidationError`` otherwise)."""
        g = self.gateway
        reg = g.directory.active(self.id)
        if reg is None:
            raise PropertyConstraintViolationError(details={"cause": f"station {self.id} is no longer registered"})
        record = events.telemetry(new, reg, ts_ms)
        g.states[self.id] = new
        g.stats.telemetry += 1
        g.outputs.telemetry(record)

    @property
    def state(self) -> StationState:
        st = self.gateway.states.get(self.id)
        if st is None or st.version != self.state_version:
            old = st
            st = StationState(self.id, self.state_version)
            if old is not None:  # same station, other protocol version: keep the session
                st = StationState(self.id, self.state_version, evse_id=old.evse_id,
                                  transaction_id=old.transaction_id, connected=old.connected)
            self.gateway.states[self.id] = st
        return st

    # --- gateway -> station ---------------------------------------------------------------------------

    async def deliver_forever(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            try:
                await self._deliver()
            except ConnectionClosed:
                return
            except Exception:  # a station's bad answer must not end its delivery task
                log.exception("%s: delivery failed", self.id)

    async def _deliver(self) -> None:
        g = self.gateway
        if self.id not in g.setpoints:
            return
        sp = g.setpoints[self.id]
        reg = g.directory.active(self.id)
        if reg is None:
            return
        known = g.states.get(self.id)  # None: nothing heard from the station since the gateway started
        evse_id = known.evse_id if known is not None else 1
        if sp is None:
            if self.sent != "cleared":
                status = await self._send_request("ClearChargingProfile", clear_request(self.state_version, evse_id),
                                                  None, reg, clipped=False, discharge=False)
                if status != "Timeout":
                    self.sent = "cleared"
            return
        tx = known.transaction_id if known is not None else sp.session_id
        if tx is None or (sp.session_id is not None and sp.session_id != tx):
            return  # no transaction on the station, or a setpoint of an earlier session
        if sp.valid_until <= g.clock_ms():
            g.stats.answers["expired_not_sent"] += 1
            return
        key = (sp.plan_id, sp.sequence, tx, evse_id)
        if self.sent == key:
            return
        v2x = events.may_discharge(known or StationState(self.id, self.state_version), reg)
        target = StationTarget(version=self.state_version, evse_id=evse_id, transaction_id=tx, v2x=v2x,
                               max_charge_kw=reg.max_charge_kw, max_discharge_kw=reg.max_discharge_kw,
                               number_phases=known.number_phases if known is not None else None)
        cmd = setpoint_request(sp, target)
        if cmd.clipped:
            g.stats.clipped += 1
        status = await self._send_request("SetChargingProfile", cmd.request, sp, reg, clipped=cmd.clipped,
                                          discharge=cmd.discharge)
        if status != "Timeout":
            self.sent = key

    async def request(self, payload: Any) -> dict[str, Any]:
        """Send a request (an ``ocpp`` call dataclass) and return the answer's payload, both schema-validated.

        The library's ``call`` with the compiled validator (:mod:`streams.ocpp.schemas`); raises the station's
        CALLERROR as ``OCPPError`` and ``TimeoutError`` after the response timeout.
        """
        body = to_payload(payload)
        msg = Call(unique_id=str(self._unique_id_generator()), action=type(payload).__name__, payload=body)
        validate(msg, self._ocpp_version)
        async with self._call_lock:
            await self._send(msg.to_json())
            if self.trigger is not None and msg.action == "SetChargingProfile":
                what, since = self.trigger
                self.gateway.stats.reaction_ms[what].append((time.perf_counter() - since) * 1000.0)
                self.trigger = None
            response = await self._get_specific_response(msg.unique_id, self._response_timeout)
        if isinstance(response, CallError):
            raise response.to_exception()
        response.action = msg.action
        validate(response, self._ocpp_version)
        return dict(response.payload)

    async def _send_request(self, action: Literal["SetChargingProfile", "ClearChargingProfile"], request: Any,
                            sp: ChargerSetpoint | None, reg: ChargerRegistration, *, clipped: bool,
                            discharge: bool) -> str:
        g = self.gateway
        t0 = time.perf_counter()
        try:
            answer = await self.request(request)
            status = str(answer.get("status", "Unknown"))
        except OCPPError as exc:
            status = f"CallError:{exc.code}"
        except TimeoutError:
            status = "Timeout"
        g.stats.answers[status] += 1
        g.outputs.outcome(ProfileOutcome(
            station_id=self.id, feeder_id=reg.feeder_id, action=action, status=status,
            sequence=sp.sequence if sp else None, setpoint_kw=sp.setpoint_kw if sp else None, clipped=clipped,
            discharge=discharge, version=self.state_version, latency_ms=(time.perf_counter() - t0) * 1000.0,
            at_ms=g.clock_ms()))
        return status


async def _boot(c: StationConnection, p: dict[str, Any]) -> Any:
    reg = c.gateway.directory.active(c.id)
    now = c.gateway.clock_ms()
    if reg is None:
        return c._call_result.BootNotification(current_time=iso_utc(now), interval=c.gateway.config.heartbeat_seconds,
                                               status="Rejected")
    c.booted = True
    c.sent = None  # a rebooted station lost its profiles
    c._update(c.state, now)
    c.wake.set()
    return c._call_result.BootNotification(current_time=iso_utc(now), interval=c.gateway.config.heartbeat_seconds,
                                           status="Accepted")


async def _heartbeat(c: StationConnection, p: dict[str, Any]) -> Any:
    now = c.gateway.clock_ms()
    c._update(c.state, now)
    return c._call_result.Heartbeat(current_time=iso_utc(now))


async def _status(c: StationConnection, p: dict[str, Any]) -> Any:
    c._update(*events.on_status(c.state, p))
    return c._call_result.StatusNotification()


async def _transaction(c: StationConnection, p: dict[str, Any]) -> Any:
    before = c.state.transaction_id
    c._update(*events.on_transaction_event(c.state, p))
    if c.state.transaction_id != before or p["eventType"] == "Started":
        c.sent = None  # a new transaction gets its profile even if one was sent (and refused) before it began
        c.trigger = ("started", time.perf_counter())
        c.wake.set()
    return c._call_result.TransactionEvent()


async def _meter_values(c: StationConnection, p: dict[str, Any]) -> Any:
    c._update(*events.on_meter_values(c.state, p))
    return c._call_result.MeterValues()


async def _charging_needs(c: StationConnection, p: dict[str, Any]) -> Any:
    c._update(*events.on_charging_needs(c.state, p, c.gateway.clock_ms()))
    c.wake.set()
    return c._call_result.NotifyEVChargingNeeds(status="Accepted")


async def _authorize(c: StationConnection, p: dict[str, Any]) -> Any:
    return c._call_result.Authorize(id_token_info={"status": "Accepted"})


def _acknowledge(action: str) -> Handler:
    """A handler answering ``action`` with its empty response (the gateway only acknowledges it)."""
    async def handler(c: StationConnection, p: dict[str, Any]) -> Any:
        return getattr(c._call_result, action)()
    return handler


HANDLERS: dict[str, Handler] = {
    "BootNotification": _boot, "Heartbeat": _heartbeat, "StatusNotification": _status,
    "TransactionEvent": _transaction, "MeterValues": _meter_values, "NotifyEVChargingNeeds": _charging_needs,
    "Authorize": _authorize,
    **{a: _acknowledge(a) for a in ("SecurityEventNotification", "NotifyEvent", "NotifyReport")},
}


def _message_id(text: str) -> str:
    """The message id of a broken frame when it can be read, else ``-1`` (OCPP-J)."""
    try:
        data = json.loads(text)
        if isinstance(data, list) and len(data) > 1 and isinstance(data[1], str):
            return data[1]
    except ValueError:
        pass
    return "-1"


class Station201(StationConnection, ChargePoint201):
    state_version = "2.0.1"


class Station21(StationConnection, ChargePoint21):
    state_version = "2.1"


class Gateway:
    """Registered stations, their states and setpoints, and the websocket server."""

    def __init__(self, directory: Directory, outputs: Outputs, config: GatewayConfig | None = None,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.directory = directory
        self.outputs = outputs
        self.config = config or GatewayConfig()
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.states: dict[str, StationState] = {}
        self.setpoints: dict[str, ChargerSetpoint | None] = {}
        self.connected: dict[str, StationConnection] = {}
        self.stats = GatewayStats()
        self._server: Server | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    # --- from the Kafka edge (on the event loop) ------------------------------------------------------

    def apply_setpoint(self, charger_id: str, sp: ChargerSetpoint | None) -> None:
        """The newest setpoint of ``charger_id`` (``None`` = revoked); its station is woken when connected."""
        held = self.setpoints.get(charger_id)
        if sp is not None and held is not None and (sp.issued_at, sp.sequence) < (held.issued_at, held.sequence):
            return
        self.setpoints[charger_id] = sp
        conn = self.connected.get(charger_id)
        if conn is not None:
            if sp is not None and conn.trigger is None:
                conn.trigger = ("setpoint", time.perf_counter())
            conn.wake.set()

    def apply_registration(self, reg: ChargerRegistration) -> None:
        self.directory.register(reg)
        conn = self.connected.get(reg.charger_id)
        if conn is not None and self.directory.active(reg.charger_id) is None:
            task = asyncio.ensure_future(conn._connection.close(1008, "station deregistered"))  # type: ignore[attr-defined]
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def dead_letter(self, station_id: str, raw: str, code: str, reason: str, ts_ms: int | None = None) -> None:
        self.stats.dead_letters += 1
        self.outputs.dead_letter(DeadLetter(
            source_topic=f"ocpp:{station_id}", partition=-1, offset=-1, key=station_id.encode(),
            value=raw.encode()[:MAX_DEADLETTER_VALUE], reason_code=code, reason=reason[:1000],
            record_timestamp=ts_ms, rejected_at=self.clock_ms(), worker=self.config.name))

    # --- websocket server -----------------------------------------------------------------------------

    async def start(self) -> Server:
        """Listen (``config.port`` 0 picks a free port: see :attr:`port`)."""
        cfg = self.config
        if cfg.security_profile in (2, 3) and cfg.ssl_context is None:
            raise ValueError(f"security profile {cfg.security_profile} needs TLS (certificate and key)")
        self._server = await serve(
            self._handle, cfg.host, cfg.port, subprotocols=list(SUBPROTOCOLS),  # type: ignore[arg-type]
            process_request=self._process_request, ssl=cfg.ssl_context, max_size=MAX_FRAME_BYTES,
            ping_interval=60, ping_timeout=60, open_timeout=30)
        return self._server

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(next(iter(self._server.sockets)).getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _refuse(self, conn: ServerConnection, status: HTTPStatus, why: str, reason: str) -> Response:
        self.stats.refused[why] += 1
        log.info("refused %s: %s", conn.remote_address, reason)
        resp = conn.respond(status, reason + "\n")
        if status == HTTPStatus.UNAUTHORIZED:
            resp.headers["WWW-Authenticate"] = 'Basic realm="evgrid", charset="UTF-8"'
        return resp

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        station_id = _station_id(request.path)
        offered = [p.strip() for h in request.headers.get_all("Sec-WebSocket-Protocol") for p in h.split(",")]
        if not any(p in SUBPROTOCOLS for p in offered):
            return self._refuse(conn, HTTPStatus.BAD_REQUEST, "subprotocol", f"no supported subprotocol in {offered}")
        if not station_id or self.directory.active(station_id) is None:
            return self._refuse(conn, HTTPStatus.NOT_FOUND, "unregistered", f"station {station_id!r} is not registered")
        if self.config.security_profile == 3:
            cn = _peer_cn(conn)
            if cn != station_id:
                return self._refuse(conn, HTTPStatus.FORBIDDEN, "certificate",
                                    f"client certificate CN {cn!r} is not station {station_id!r}")
            return None
        user, password = _basic_auth(request.headers.get("Authorization"))
        if user != station_id or password is None:
            return self._refuse(conn, HTTPStatus.UNAUTHORIZED, "credentials", "basic auth user must be the station id")
        ok = await asyncio.to_thread(self.directory.check_password, station_id, password)
        if not ok:
            return self._refuse(conn, HTTPStatus.UNAUTHORIZED, "credentials", f"wrong password for {station_id}")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        station_id = _station_id(ws.request.path if ws.request else "")
        cls = Station21 if ws.subprotocol == "ocpp2.1" else Station201
        conn = cls(station_id, ws, response_timeout=self.config.response_timeout_seconds)
        conn.setup(self)
        old = self.connected.get(station_id)
        self.connected[station_id] = conn
        self.stats.connections += 1
        if old is not None:  # the station reconnected before its old socket timed out
            await old._connection.close(1000, "replaced by a new connection")  # type: ignore[attr-defined]
        if station_id in self.states:
            conn.wake.set()  # a station that reconnects gets its profile again
        else:  # nothing heard since the gateway started: give it time to boot or report its transaction first
            loop = asyncio.get_running_loop()
            loop.call_later(self.config.connect_grace_seconds, conn.wake.set)
        deliverer = asyncio.create_task(conn.deliver_forever())
        try:
            await conn.start()
        except ConnectionClosed:
            pass
        finally:
            deliverer.cancel()
            if self.connected.get(station_id) is conn:
                del self.connected[station_id]


def _station_id(path: str) -> str:
    return unquote(path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])


def _basic_auth(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return user, password


def _peer_cn(conn: ServerConnection) -> str | None:
    sslobj = conn.transport.get_extra_info("ssl_object")
    cert = sslobj.getpeercert() if sslobj is not None else None
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def server_ssl_context(certfile: str, keyfile: str, cafile: str | None, require_client_cert: bool) -> ssl.SSLContext:
    """TLS 1.2+ server context; with ``require_client_cert`` (profile 3) clients need a cert signed by ``cafile``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile, keyfile)
    if require_client_cert:
        if not cafile:
            raise ValueError("security profile 3 needs the CA that signs station certificates")
        ctx.load_verify_locations(cafile)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
