"""One connected station (the ``ocpp`` library's ChargePoint, CSMS side): routes its calls to handlers that fold
them into telemetry, answers every CALL with a result or a CALLERROR, and delivers its setpoints (see
:mod:`streams.ocpp.gateway` for the rules)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from ocpp.exceptions import FormatViolationError, OCPPError, PropertyConstraintViolationError
from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.messages import Call, CallError, CallResult, unpack
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v201 import ChargePoint as ChargePoint201
from pydantic import ValidationError
from websockets.exceptions import ConnectionClosed

from streams.contracts.models import ChargerRegistration, ChargerSetpoint
from streams.contracts.models import describe_validation_error as describe
from streams.ocpp import events
from streams.ocpp.events import StationState
from streams.ocpp.host import Host, ProfileOutcome
from streams.ocpp.profiles import StationTarget, clear_request, clears, default_request, iso_utc, setpoint_request
from streams.ocpp.schemas import to_payload, validate

__all__ = ["HANDLERS", "ProfileOutcome", "Station21", "Station201", "StationConnection"]

log = logging.getLogger(__name__)


class RpcFrameworkError(OCPPError):
    code = "RpcFrameworkError"
    default_description = "Not a valid OCPP-J RPC frame"


Handler = Callable[["StationConnection", dict[str, Any]], Awaitable[Any]]


class StationConnection:
    """One connected station: routes its calls, sends it profiles. Mixed into the library's ChargePoint."""

    gateway: Host
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

    def setup(self, gateway: Host) -> None:
        self.gateway = gateway
        self.wake = asyncio.Event()
        self.sent: object = None
        self.default_sent = False
        """The TxDefaultProfile (the fallback) is installed on this connection."""
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
        g.event_ms = max(g.event_ms, ts_ms)
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
        reg = g.directory.active(self.id)
        if reg is None:
            return
        default_kw = g.default_kw(reg)
        if default_kw is not None and not self.default_sent:  # first: never a cleared station on its own default
            status = await self._send_request("SetChargingProfile", default_request(self.state_version, default_kw),
                                              None, reg, clipped=False, discharge=False)
            self.default_sent = status != "Timeout"
        if self.id not in g.setpoints:
            return
        sp = g.setpoints[self.id]
        known = g.states.get(self.id)  # None: nothing heard from the station since the gateway started
        evse_id = known.evse_id if known is not None else 1
        if sp is not None and default_kw is not None and clears(sp, default_kw):
            done = ("cleared", sp.plan_id, sp.sequence, evse_id)  # a revocation: back to the installed default
            if self.sent != done:
                status = await self._send_request("ClearChargingProfile", clear_request(self.state_version, evse_id),
                                                  sp, reg, clipped=False, discharge=False)
                if status != "Timeout":
                    self.sent = done
            return
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
        if sp is not None:  # a clear of no profile (Unknown) leaves the station on its default, as asked
            self._answer(sp.sequence, "Accepted" if action == "ClearChargingProfile" and status == "Unknown"
                         else status)
        return status

    def _answer(self, sequence: int, status: str) -> None:
        """The station's answer to setpoint ``sequence`` as telemetry (its current state, the gateway's clock)."""
        g = self.gateway
        reg = g.directory.active(self.id)
        if reg is None:
            return
        answer = {"Accepted": "accepted", "Rejected": "rejected", "Timeout": "timeout"}.get(status, "error")
        try:
            record = events.telemetry(self.state, reg, g.clock_ms())
        except ValueError:  # pydantic's ValidationError: the state no longer validates; nothing to report
            return
        g.stats.telemetry += 1
        g.outputs.telemetry(record.model_copy(update={"setpoint_sequence": sequence, "setpoint_answer": answer}))


async def _boot(c: StationConnection, p: dict[str, Any]) -> Any:
    reg = c.gateway.directory.active(c.id)
    now = c.gateway.clock_ms()
    if reg is None:
        return c._call_result.BootNotification(current_time=iso_utc(now), interval=c.gateway.config.heartbeat_seconds,
                                               status="Rejected")
    c.sent = None  # a rebooted station lost its profiles
    c.default_sent = False
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
