"""The broker ACL layout of docs/security.md as data: one principal per source, least privilege.

:func:`layout` lists the grants of one deployment namespace (topic prefix ``P`` and faust app id) plus the
backtest sandbox (every topic and group whose name starts with ``sandbox``). :func:`allowed` evaluates them the
way Kafka's ``StandardAuthorizer`` does for ALLOW-only ACLs (literal = exact name, prefixed = name starts with
the pattern; ``Read``/``Write`` need an ACL of that operation), so :func:`access_matrix` is what the broker
must enforce: ``tests/unit/test_acl_layout.py`` checks it against the table of docs/security.md and
``tests/integration/test_security.py`` against a real broker. Pure data, no Kafka client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

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
    UTILITY_EVENTS,
    WEATHER,
)

__all__ = ["INPUTS", "MONITOR_READS", "OUTPUTS", "PRINCIPALS", "SANDBOX", "Grant", "access_matrix", "allowed",
           "changelog_topic", "layout"]

INPUTS: Final = (METER_READINGS, CHARGER_TELEMETRY, CHARGER_REGISTRY, WEATHER, GRID_SIGNALS, INCENTIVE_RESPONSES)
OUTPUTS: Final = (FORECASTS, SETPOINTS, INCENTIVES, SETTLEMENTS, FLEXIBILITY, UTILITY_EVENTS, DEADLETTER)
MONITOR_READS: Final = (*OUTPUTS, INCENTIVE_RESPONSES, METER_READINGS, CHARGER_TELEMETRY, GRID_SIGNALS)
SANDBOX: Final = "bt-"
"""Name prefix of the backtest/replay sandbox (``evgrid backtest`` namespaces are ``bt-<id>.``)."""

PRINCIPALS: Final = {
    "evgrid-ops": "topic administration (`evgrid topics create`)",
    "evgrid-meter-headend": "meter head-ends",
    "evgrid-csms": "OCPP gateway / charger backend (CSMS)",
    "evgrid-weather": "weather feed",
    "evgrid-dso": "grid operator (DSO) signals",
    "evgrid-incentive-app": "incentive app",
    "evgrid-worker": "`evgrid worker` (faust)",
    "evgrid-monitor": "`evgrid monitor`",
    "evgrid-backtest": "`evgrid backtest` / `evgrid replay` into the sandbox",
}


@dataclass(frozen=True, slots=True)
class Grant:
    """One ALLOW ACL: ``principal`` (without ``User:``) may ``operation`` on a topic or group."""

    principal: str
    resource: str  # "topic" | "group"
    name: str
    operation: str  # Kafka operation name: Read, Write, Create, Delete, Describe, DescribeConfigs, AlterConfigs
    prefixed: bool = False

    def matches(self, resource: str, name: str) -> bool:
        if resource != self.resource:
            return False
        return name.startswith(self.name) if self.prefixed else name == self.name


def changelog_topic(prefix: str = "", app_id: str = "evgrid") -> str:
    """The worker's feeder-state changelog (faust ``<app id>-<table>-changelog``)."""
    return f"{prefix}{app_id}-feeder-state-changelog"


def _each(principal: str, op: str, topics: tuple[str, ...], prefix: str) -> list[Grant]:
    return [Grant(principal, "topic", prefix + t, op) for t in topics]


def layout(prefix: str = "", app_id: str = "evgrid", sandbox: str = SANDBOX) -> list[Grant]:
    """Every grant of docs/security.md for namespace ``prefix`` and the sandbox ``sandbox``."""
    P, app = prefix, app_id
    g: list[Grant] = []
    for op in ("Create", "Delete", "Describe", "DescribeConfigs", "AlterConfigs"):
        g.append(Grant("evgrid-ops", "topic", f"{P}evgrid.", op, prefixed=True))
    # sources: each writes only its own topics
    g += _each("evgrid-meter-headend", "Write", (METER_READINGS,), P)
    g += _each("evgrid-csms", "Write", (CHARGER_TELEMETRY, CHARGER_REGISTRY), P)
    g += _each("evgrid-csms", "Read", (SETPOINTS,), P)
    g.append(Grant("evgrid-csms", "group", f"{P}csms-", "Read", prefixed=True))
    g += _each("evgrid-weather", "Write", (WEATHER,), P)
    g += _each("evgrid-dso", "Write", (GRID_SIGNALS,), P)
    g += _each("evgrid-incentive-app", "Write", (INCENTIVE_RESPONSES,), P)
    g += _each("evgrid-incentive-app", "Read", (INCENTIVES, SETTLEMENTS), P)
    g.append(Grant("evgrid-incentive-app", "group", f"{P}incentive-app-", "Read", prefixed=True))
    # worker: inputs -> outputs, and its own changelog/leader topics and group
    g += _each("evgrid-worker", "Read", INPUTS, P)
    g += _each("evgrid-worker", "Write", OUTPUTS, P)
    for op in ("Create", "Read", "Write"):
        g.append(Grant("evgrid-worker", "topic", f"{P}{app}-", op, prefixed=True))
    g.append(Grant("evgrid-worker", "group", f"{P}{app}", "Read"))
    # monitor: read only
    g += _each("evgrid-monitor", "Read", MONITOR_READS, P)
    g.append(Grant("evgrid-monitor", "topic", f"{P}{app}-monitor-", "Read", prefixed=True))
    g.append(Grant("evgrid-monitor", "group", f"{P}{app}-monitor", "Read"))
    # backtest/replay: everything inside the sandbox, nothing outside
    for op in ("Create", "Delete", "Read", "Write", "DescribeConfigs"):
        g.append(Grant("evgrid-backtest", "topic", sandbox, op, prefixed=True))
    for op in ("Read", "Delete"):
        g.append(Grant("evgrid-backtest", "group", sandbox, op, prefixed=True))
    return g


def allowed(grants: list[Grant], principal: str, resource: str, name: str, operation: str) -> bool:
    """Whether ``principal`` may ``operation`` on ``name`` (no DENY ACLs, no ``All``; ``Read``/``Write`` imply
    ``Describe``)."""
    ops = {operation, "Read", "Write"} if operation == "Describe" else {operation}
    return any(g.principal == principal and g.operation in ops and g.matches(resource, name) for g in grants)


def access_matrix(grants: list[Grant], topics: list[str]) -> dict[tuple[str, str], str]:
    """``(principal, topic) -> "RW" | "R" | "W" | "-"`` for every principal of :data:`PRINCIPALS`."""
    out: dict[tuple[str, str], str] = {}
    for p in PRINCIPALS:
        for t in topics:
            cell = ("R" if allowed(grants, p, "topic", t, "Read") else "") + (
                "W" if allowed(grants, p, "topic", t, "Write") else "")
            out[p, t] = cell or "-"
    return out
