"""Every panel, variable and alert query of every dashboard returns data from a real InfluxDB.

A realistic sample of every metric (2 feeders, 30 h of 15-minute intervals, 2 h of per-minute worker metrics,
built from contract models through the metric functions) is written through ``InfluxSink`` into a database of
this test's own on the shared InfluxDB; then each InfluxQL query, with Grafana's macros substituted the way
Grafana's InfluxDB datasource does, is run against ``/query`` and must return at least one non-null value.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("grafana_foundation_sdk", reason="dev dependency grafana-foundation-sdk is not installed")

from streams.sinks.alerts import provisioning_document
from streams.sinks.influx import InfluxSink, InfluxWriter
from streams.sinks.provisioning import dashboard_json
from streams.sinks.sample import sample_points

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

FEEDERS = ("feeder-1", "feeder-2")
WORKER = "evgrid-it"
HOUR_MS = 3_600_000


def influxql(url: str, db: str, query: str) -> dict[str, Any]:
    """Run one InfluxQL statement via ``/query`` (epoch ms); return its first result."""
    params = urllib.parse.urlencode({"db": db, "q": query, "epoch": "ms"})
    method = "GET" if query.lstrip().upper().startswith(("SELECT", "SHOW")) else "POST"
    req = urllib.request.Request(f"{url}/query?{params}", method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = json.load(resp)
    result: dict[str, Any] = body["results"][0]
    assert "error" not in result, f"{result['error']}: {query}"
    return result


def non_null_values(result: dict[str, Any]) -> int:
    """Non-null cells outside the time column."""
    n = 0
    for series in result.get("series", []):
        cols = series["columns"]
        for row in series["values"]:
            n += sum(1 for c, v in zip(cols, row, strict=True) if c != "time" and v is not None)
    return n


def regex_value(values: list[str]) -> str:
    """How Grafana renders a variable inside an InfluxQL regex: escaped, several values as ``(a|b)``."""
    escaped = [re.sub(r"([\\^$*+?.()|{}\[\]/])", r"\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(query: str, variables: dict[str, list[str]], from_ms: int, to_ms: int, interval: str) -> str:
    """Replace Grafana's InfluxQL macros and template variables."""
    out = query.replace("$timeFilter", f"time >= {from_ms}ms and time <= {to_ms}ms")
    out = out.replace("$__timeFilter", f"time >= {from_ms}ms and time <= {to_ms}ms")
    out = out.replace("$__interval", interval).replace("$interval", interval)
    for name, values in sorted(variables.items(), key=lambda kv: -len(kv[0])):
        out = out.replace(f"${name}", regex_value(values))
    assert not re.search(r"\$\w", out), f"unsubstituted macro in {out}"
    return out


def _panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


@pytest.fixture(scope="module")
def metrics_db(influx_url: str) -> Iterator[tuple[str, str, int]]:
    """(url, database, end ms): a private database on the shared InfluxDB holding the sample."""
    db = f"evgrid_it_{uuid.uuid4().hex[:10]}"
    influxql(influx_url, "", f'CREATE DATABASE "{db}"')
    end_ms = int(time.time() * 1000)
    sink = InfluxSink(InfluxWriter(influx_url, f"{db}/autogen"), batch_points=2_000, flush_seconds=0.1,
                      stats_seconds=0.2, worker=WORKER)
    try:
        points = sample_points(end_ms, feeders=FEEDERS, worker=WORKER)
        sink.write(points)
        assert sink.flush(60), sink.stats
        time.sleep(0.3)  # let the sink write its own counters once more
        assert sink.close(timeout=30), sink.stats
        assert sink.stats.written >= len(points) and sink.stats.dropped == 0 and sink.stats.rejected == 0
        yield influx_url, db, end_ms
    finally:
        influxql(influx_url, "", f'DROP DATABASE "{db}"')


def _relative(expr: str, now_ms: int) -> int:
    """``now``, ``now-24h``, ``now+6h`` → epoch ms."""
    m = re.fullmatch(r"now(?:([+-])(\d+)([mhd]))?", expr)
    assert m, expr
    if not m.group(1):
        return now_ms
    ms = int(m.group(2)) * {"m": 60_000, "h": HOUR_MS, "d": 24 * HOUR_MS}[m.group(3)]
    return now_ms + ms if m.group(1) == "+" else now_ms - ms


def _variable_values(url: str, db: str, board: dict[str, Any]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for var in board["templating"]["list"]:
        result = influxql(url, db, var["query"])
        values[var["name"]] = sorted(row[1] for s in result.get("series", []) for row in s["values"])
        assert values[var["name"]], f"variable {var['name']} has no values: {var['query']}"
    return values


@pytest.mark.parametrize("name", ["control-room", "forecast-quality", "pipeline-health"])
def test_every_panel_query_returns_data(metrics_db: tuple[str, str, int], name: str) -> None:
    url, db, end_ms = metrics_db
    board = dashboard_json(name)
    all_values = _variable_values(url, db, board)
    if "feeder" in all_values:
        assert all_values["feeder"] == list(FEEDERS)
    now_ms = int(time.time() * 1000)  # Grafana's "now" when the dashboard is opened, after the writes
    assert now_ms >= end_ms
    from_ms, to_ms = _relative(board["time"]["from"], now_ms), _relative(board["time"]["to"], now_ms)
    checked = 0
    for panel in _panels(board):
        repeat = panel.get("repeat")
        for target in panel.get("targets", []):
            selections: list[dict[str, list[str]]] = [all_values]  # "All" selected
            if "$feeder" in target["query"]:  # and each feeder on its own (the repeated row's case)
                selections += [{**all_values, "feeder": [f]} for f in all_values["feeder"]]
            for variables in selections:
                q = substitute(target["query"], variables, from_ms, to_ms, "15m")
                assert non_null_values(influxql(url, db, q)) > 0, f"{panel['title']!r} returned no data: {q}"
                checked += 1
        assert repeat in (None, "feeder")
    assert checked >= sum(len(p.get("targets", [])) for p in _panels(board)) > 0


def test_every_alert_rule_query_returns_data(metrics_db: tuple[str, str, int]) -> None:
    url, db, end_ms = metrics_db
    now_ms = min(int(time.time() * 1000), end_ms + 30_000)  # evaluated while the sample is current
    rules = provisioning_document()["groups"][0]["rules"]
    checked = 0
    for rule in rules:
        for q in rule["data"]:
            if q["datasourceUid"] == "__expr__":
                continue
            span_s = q["relativeTimeRange"]["from"]
            query = substitute(q["model"]["query"], {}, now_ms - span_s * 1000, now_ms, "1m")
            assert non_null_values(influxql(url, db, query)) > 0, f"rule {rule['title']!r}: {query}"
            checked += 1
    assert checked >= 8


def test_dead_man_query_is_empty_when_the_pipeline_is_silent(metrics_db: tuple[str, str, int]) -> None:
    """With metrics the dead-man query counts points (its condition is false); two minutes after the last point it
    returns nothing, which the rule's noDataState turns into Alerting."""
    url, db, end_ms = metrics_db
    (rule,) = [r for r in provisioning_document()["groups"][0]["rules"] if r["uid"] == "evgrid-pipeline-silent"]
    assert rule["noDataState"] == "Alerting"
    (q,) = [q for q in rule["data"] if q["datasourceUid"] != "__expr__"]
    span_ms = q["relativeTimeRange"]["from"] * 1000
    live = substitute(q["model"]["query"], {}, end_ms + 30_000 - span_ms, end_ms + 30_000, "1m")
    result = influxql(url, db, live)
    assert result["series"][0]["values"][0][1] >= 1
    silent = substitute(q["model"]["query"], {}, end_ms + 1_000, end_ms + 1_000 + span_ms, "1m")
    assert non_null_values(influxql(url, db, silent)) == 0


def test_limit_alert_query_sees_the_overloaded_feeder(metrics_db: tuple[str, str, int]) -> None:
    """The sample drives feeder-2 near its 380 kW limit; the headroom the alert reads has the right sign."""
    url, db, end_ms = metrics_db
    result = influxql(url, db, f'SELECT min("import_headroom_kw"), max("load_kw"), max("import_limit_kw") FROM '
                               f'"feeder" WHERE time >= {end_ms - 30 * HOUR_MS}ms GROUP BY "feeder"')
    by_feeder = {s["tags"]["feeder"]: s["values"][0] for s in result["series"]}
    for _, min_headroom, max_load, limit in by_feeder.values():
        assert min_headroom == pytest.approx(limit - max_load, abs=1e-6)
