"""What a station's connection needs from the gateway that holds it (a Protocol, so that
:mod:`streams.ocpp.connection` does not import :mod:`streams.ocpp.gateway`), the gateway's outputs and counters."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from streams.contracts.models import ChargerRegistration, ChargerSetpoint, ChargerTelemetry, DeadLetter
from streams.ocpp.events import StationState
from streams.ocpp.registry import Directory

__all__ = ["GatewayStats", "Host", "HostConfig", "Outputs", "ProfileOutcome"]


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


class HostConfig(Protocol):
    @property
    def heartbeat_seconds(self) -> int: ...


class Host(Protocol):
    """The gateway as its connections see it (:class:`streams.ocpp.gateway.Gateway`)."""

    directory: Directory
    outputs: Outputs
    stats: GatewayStats
    states: dict[str, StationState]
    setpoints: dict[str, ChargerSetpoint | None]
    event_ms: int
    clock_ms: Callable[[], int]

    @property
    def config(self) -> HostConfig: ...

    def dead_letter(self, station_id: str, raw: str, code: str, reason: str, ts_ms: int | None = None) -> None: ...

    def default_kw(self, reg: ChargerRegistration) -> float | None: ...
