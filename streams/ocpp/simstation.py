"""A simulated OCPP 2.0.1 / 2.1 charging station written with the same ``ocpp`` library (client side), for the
gateway's tests and benchmark: it boots, runs transactions with meter values, and records (and answers) the
SetChargingProfile / ClearChargingProfile requests it receives after the library validated them against the
OCPP JSON schemas.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import ocpp.messages
from ocpp.routing import on
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v21 import call as call21
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from streams.ocpp.readback import StationProfiles

__all__ = ["Received", "SimStation", "connect_station"]


@dataclass(frozen=True)
class Received:
    action: str
    payload: dict[str, Any]
    """camelCase, as sent."""
    at: float
    """``time.perf_counter()`` when it arrived."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Mixin:
    version: str
    id: str
    _connection: ClientConnection
    route_message_base: Any

    def init_sim(self) -> None:
        # validate in the event loop, not in a thread pool: cheaper for 1,000 stations in one process, and
        # CPython 3.11 can corrupt its AST state when threads compile concurrently (gh-106905)
        ocpp.messages.ASYNC_VALIDATION = False
        self.received: asyncio.Queue[Received] = asyncio.Queue()
        self.answer = "Accepted"
        self.profiles = StationProfiles()
        """What the station holds and runs on (profiles it accepted, clears applied)."""
        self.seq = 0
        self.errors: list[list[Any]] = []
        self.answers: list[list[Any]] = []
        """Every CALLRESULT and CALLERROR received (including answers to raw frames)."""

    async def route_message(self, raw_msg: str) -> None:
        msg = json.loads(raw_msg)
        if msg[0] in (3, 4):
            self.answers.append(msg)
        if msg[0] == 4:
            self.errors.append(msg)
        await super().route_message(raw_msg)  # type: ignore[misc]
        if msg[0] == 2 and msg[2] in ("SetChargingProfile", "ClearChargingProfile"):
            if msg[2] == "ClearChargingProfile" or self.answer == "Accepted":
                self.profiles.apply(msg[2], msg[3])
            self.received.put_nowait(Received(msg[2], msg[3], time.perf_counter()))

    @on("SetChargingProfile")
    async def _on_set(self, **kwargs: Any) -> Any:
        return self._call_result.SetChargingProfile(status=self.answer)  # type: ignore[attr-defined]

    @on("ClearChargingProfile")
    async def _on_clear(self, **kwargs: Any) -> Any:
        return self._call_result.ClearChargingProfile(status="Accepted")  # type: ignore[attr-defined]

    @property
    def calls(self) -> Any:
        return call21 if self.version == "2.1" else call201

    async def boot(self) -> Any:
        return await self.call(self.calls.BootNotification(  # type: ignore[attr-defined]
            charging_station={"model": "sim", "vendor_name": "evgrid"}, reason="PowerUp"))

    async def transaction(self, event: str, tx_id: str, *, power_w: float | None = None,
                          energy_wh: float | None = None, soc: float | None = None, evse_id: int = 1,
                          trigger: str | None = None, phases: int | None = None, timestamp: str | None = None) -> Any:
        sampled = []
        if power_w is not None:
            sampled.append({"value": power_w, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}})
        if energy_wh is not None:
            sampled.append({"value": energy_wh, "measurand": "Energy.Active.Import.Register",
                            "unitOfMeasure": {"unit": "Wh"}})
        if soc is not None:
            sampled.append({"value": soc, "measurand": "SoC", "unitOfMeasure": {"unit": "Percent"}})
        ts = timestamp or _now()
        self.seq += 1
        trig = trigger or {"Started": "CablePluggedIn", "Updated": "MeterValuePeriodic", "Ended": "EVDeparted"}[event]
        return await self.call(self.calls.TransactionEvent(  # type: ignore[attr-defined]
            event_type=event, timestamp=ts, trigger_reason=trig, seq_no=self.seq,
            transaction_info={"transaction_id": tx_id,
                              "charging_state": "Idle" if event == "Ended" else "Charging"},
            evse={"id": evse_id, "connector_id": 1}, number_of_phases_used=phases,
            meter_value=[{"timestamp": ts, "sampled_value": sampled}] if sampled else None))

    async def next_received(self, timeout: float = 10.0) -> Received:
        return await asyncio.wait_for(self.received.get(), timeout)

    async def send_raw(self, text: str) -> None:
        await self._connection.send(text)


class _Sim201(_Mixin, ChargePoint201):
    version = "2.0.1"


class _Sim21(_Mixin, ChargePoint21):
    version = "2.1"


SimStation = _Sim201 | _Sim21


@dataclass
class _Session:
    station: Any
    ws: ClientConnection
    task: asyncio.Task[Any] = field(repr=False)

    async def close(self) -> None:
        await self.ws.close()
        self.task.cancel()


async def connect_station(url: str, station_id: str, version: str = "2.0.1", *, password: str | None = None,
                          ssl_context: ssl.SSLContext | None = None, user: str | None = None,
                          subprotocols: list[str] | None = None) -> _Session:
    """Connect ``station_id`` to the gateway at ``url`` and start serving its messages."""
    headers = {}
    if password is not None:
        token = base64.b64encode(f"{user or station_id}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    protos = subprotocols or [f"ocpp{version}"]
    ws = await connect(f"{url.rstrip('/')}/{station_id}", subprotocols=protos,  # type: ignore[arg-type]
                       additional_headers=headers, ssl=ssl_context, open_timeout=30, max_size=2**20)
    cls = _Sim21 if version == "2.1" else _Sim201
    st = cls(station_id, ws, response_timeout=30)
    st.init_sim()
    task = asyncio.create_task(_serve(st))
    return _Session(st, ws, task)


async def _serve(station: Any) -> None:
    """Serve the station's messages until its connection closes (the gateway may close it)."""
    with contextlib.suppress(ConnectionClosed):
        await station.start()
