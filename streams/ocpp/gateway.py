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
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from streams.contracts.models import ChargerRegistration, ChargerSetpoint, DeadLetter
from streams.ocpp.connection import Station21, Station201, StationConnection
from streams.ocpp.events import StationState
from streams.ocpp.handshake import basic_auth, peer_cn, station_id_of
from streams.ocpp.host import GatewayStats, Outputs, ProfileOutcome
from streams.ocpp.registry import Directory

__all__ = ["SUBPROTOCOLS", "Gateway", "GatewayConfig", "Outputs", "ProfileOutcome"]

log = logging.getLogger(__name__)

SUBPROTOCOLS = ("ocpp2.1", "ocpp2.0.1")
MAX_FRAME_BYTES = 256 * 1024
MAX_DEADLETTER_VALUE = 64 * 1024


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
    event_time: bool = False
    """The clock is the newest station timestamp seen (simulated stations), not the wall clock."""
    default_profile_kw: float | None = None
    """The fallback installed as each station's TxDefaultProfile at boot / connection (capped at its rating), kW;
    a setpoint asking for just that (a revocation) is sent as ClearChargingProfile. ``None``: no default
    profile (revocations go as SetChargingProfile)."""


class Gateway:
    """Registered stations, their states and setpoints, and the websocket server."""

    def __init__(self, directory: Directory, outputs: Outputs, config: GatewayConfig | None = None,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.directory = directory
        self.outputs = outputs
        self.config = config or GatewayConfig()
        self.event_ms = 0
        """The newest station timestamp seen (the clock when ``config.event_time``)."""
        if clock_ms is None:
            clock_ms = (lambda: self.event_ms) if self.config.event_time else (lambda: int(time.time() * 1000))
        self.clock_ms = clock_ms
        self.states: dict[str, StationState] = {}
        self.setpoints: dict[str, ChargerSetpoint | None] = {}
        self.connected: dict[str, StationConnection] = {}
        self.stats = GatewayStats()
        self._server: Server | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    def default_kw(self, reg: ChargerRegistration) -> float | None:
        """The limit of the TxDefaultProfile installed on ``reg``'s station (``None``: none installed)."""
        kw = self.config.default_profile_kw
        return None if kw is None else max(0.0, min(kw, reg.max_charge_kw))

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
        station_id = station_id_of(request.path)
        offered = [p.strip() for h in request.headers.get_all("Sec-WebSocket-Protocol") for p in h.split(",")]
        if not any(p in SUBPROTOCOLS for p in offered):
            return self._refuse(conn, HTTPStatus.BAD_REQUEST, "subprotocol", f"no supported subprotocol in {offered}")
        if not station_id or self.directory.active(station_id) is None:
            return self._refuse(conn, HTTPStatus.NOT_FOUND, "unregistered", f"station {station_id!r} is not registered")
        if self.config.security_profile == 3:
            cn = peer_cn(conn)
            if cn != station_id:
                return self._refuse(conn, HTTPStatus.FORBIDDEN, "certificate",
                                    f"client certificate CN {cn!r} is not station {station_id!r}")
            return None
        user, password = basic_auth(request.headers.get("Authorization"))
        if user != station_id or password is None:
            return self._refuse(conn, HTTPStatus.UNAUTHORIZED, "credentials", "basic auth user must be the station id")
        ok = await asyncio.to_thread(self.directory.check_password, station_id, password)
        if not ok:
            return self._refuse(conn, HTTPStatus.UNAUTHORIZED, "credentials", f"wrong password for {station_id}")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        station_id = station_id_of(ws.request.path if ws.request else "")
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
