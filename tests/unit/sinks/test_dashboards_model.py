"""Dashboards and alert rules: SDK model round-trip, committed files up to date, queries use the metric schema."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

pytest.importorskip("grafana_foundation_sdk", reason="dev dependency grafana-foundation-sdk is not installed")

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import alerting as alert_model
from grafana_foundation_sdk.models import dashboard as model

from streams.sinks.alerts import alert_rules, provisioning_document
from streams.sinks.dashboards import DASHBOARDS, iter_targets
from streams.sinks.influxql import DATASOURCE_UID, InfluxQLQuery, register
from streams.sinks.metrics import MEASUREMENTS
from streams.sinks.provisioning import dashboard_json, render_all, repo_grafana_dir
from tests.fixtures.fresh_process import evaluate

register()


def _to_json(obj: object) -> Any:
    return json.loads(json.dumps(obj, cls=JSONEncoder))


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_committed_dashboard_round_trips_through_the_sdk_model(name: str) -> None:
    committed = json.loads((repo_grafana_dir() / "dashboards" / f"{name}.json").read_text(encoding="utf-8"))
    decoded = model.Dashboard.from_json(committed)
    targets = list(iter_targets(decoded))
    assert targets, "dashboard has no queries"
    assert all(isinstance(t, InfluxQLQuery) for _, t in targets)  # decoded into the typed variant
    assert _to_json(decoded) == committed


def test_committed_alert_rules_round_trip_through_the_sdk_model() -> None:
    doc = yaml.safe_load((repo_grafana_dir() / "provisioning/alerting/rules.yaml").read_text(encoding="utf-8"))
    (group,) = doc["groups"]
    assert group["folder"] and group["interval"]
    for rule_doc in group["rules"]:
        rule = alert_model.Rule.from_json(rule_doc)
        assert any(isinstance(q.model, InfluxQLQuery) for q in rule.data)
        back = _to_json(rule)
        for group_level in ("folderUID", "orgID", "ruleGroup"):
            back.pop(group_level)
        assert back == rule_doc
        refs = {q["refId"] for q in rule_doc["data"]}
        assert rule_doc["condition"] in refs


def test_committed_files_equal_a_fresh_generation() -> None:
    root = repo_grafana_dir()
    for rel, text in render_all().items():
        stale = f"grafana/{rel} is stale: run evgrid dashboards generate"
        assert (root / rel).read_text(encoding="utf-8") == text, stale


def test_generation_is_deterministic() -> None:
    """Equal in fresh processes with other hash seeds (set order), not only twice in this one."""
    setup = "import json\nfrom streams.sinks.provisioning import render_all"
    others = {evaluate(setup, "json.dumps(render_all(), sort_keys=True)", seed) for seed in (1, 2)}
    assert others == {json.dumps(render_all(), sort_keys=True)}


def test_alert_rules_cover_the_required_conditions() -> None:
    titles = {r.title for r in alert_rules()}
    assert titles == {"Feeder above its limit", "Forecast error far above baseline", "Consumer lag growing",
                      "Dead-letter rate spike", "Stale telemetry share high", "Pipeline metrics stopped",
                      "Interconnection registry conflict", "Feeder checkpoint did not decode"}
    assert len({r.uid for r in alert_rules()}) == 8


def _committed_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((repo_grafana_dir() / "provisioning/alerting/rules.yaml").read_text(encoding="utf-8"))
    rules: list[dict[str, Any]] = doc["groups"][0]["rules"]
    return rules


def test_silence_is_not_green() -> None:
    """Only counts of bad events (none = fine) resolve to OK without data; the dead-man rule fires."""
    states = {r["uid"]: (r["noDataState"], r["execErrState"]) for r in _committed_rules()}
    assert all(err == "Error" for _, err in states.values())
    assert {uid for uid, (nd, _) in states.items() if nd == "OK"} == {
        "evgrid-dead-letter-spike", "evgrid-registry-conflict", "evgrid-state-decode-failure"}
    assert states["evgrid-pipeline-silent"][0] == "Alerting"
    assert all(nd in ("NoData", "Alerting", "OK") for nd, _ in states.values())


def test_dead_man_rule_watches_two_minutes_of_worker_throughput() -> None:
    (rule,) = [r for r in _committed_rules() if r["uid"] == "evgrid-pipeline-silent"]
    (data,) = [q for q in rule["data"] if q["datasourceUid"] != "__expr__"]
    assert data["relativeTimeRange"]["from"] == 120
    assert 'FROM "throughput"' in data["model"]["query"]


def test_every_rule_carries_a_runbook_and_a_link_to_a_panel_showing_its_measurement() -> None:
    boards = {dashboard_json(name)["uid"]: dashboard_json(name) for name in DASHBOARDS}
    for rule in _committed_rules():
        notes = rule["annotations"]
        assert len(notes["description"]) > 80 and notes["summary"]
        board = boards[notes["__dashboardUid__"]]
        (panel,) = [p for p in _panels(board) if str(p.get("id")) == notes["__panelId__"]]
        rule_measurements = {m for q in rule["data"] for m in FROM.findall(q["model"].get("query", ""))}
        panel_measurements = {m for t in panel["targets"] for m in FROM.findall(t["query"])}
        assert rule_measurements & panel_measurements, (rule["title"], panel["title"])
        assert "runbook_url" not in notes  # only with --runbook-url
    with_url = provisioning_document(runbook_url="https://ops.example/runbook")["groups"][0]["rules"]
    assert with_url[0]["annotations"]["runbook_url"] == "https://ops.example/runbook#feeder-above-its-limit"


def test_contact_point_and_policy_are_provisioned_with_a_configurable_webhook() -> None:
    doc = yaml.safe_load((repo_grafana_dir() / "provisioning/alerting/notifications.yaml").read_text())
    (cp,) = doc["contactPoints"]
    (receiver,) = cp["receivers"]
    assert receiver["type"] == "webhook" and receiver["settings"]["url"] == "${EVGRID_ALERT_WEBHOOK_URL}"
    (policy,) = doc["policies"]
    assert policy["receiver"] == cp["name"] and "feeder" in policy["group_by"]
    compose = yaml.safe_load((repo_grafana_dir().parent / "infra/docker-compose.yml").read_text())
    assert "EVGRID_ALERT_WEBHOOK_URL" in compose["services"]["grafana"]["environment"]


KW_UNITS = ("kW", "kwatth")


def _overridden_units(panel: dict[str, Any]) -> dict[str, str]:
    out = {}
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        for prop in o["properties"]:
            if prop["id"] == "unit":
                out[o["matcher"]["options"]] = prop["value"]
    return out


def test_no_count_on_a_kw_axis() -> None:
    """In a panel whose unit is kW or kWh, every selected field is a _kw/_kwh field, or its series has its own unit."""
    for name in DASHBOARDS:
        for panel in _panels(dashboard_json(name)):
            unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
            if unit not in KW_UNITS:
                continue
            overrides = _overridden_units(panel)
            for target in panel["targets"]:
                for field, alias in re.findall(r'\w+\("([a-z_]+)"\)(?:\s*\*\s*-1)?(?: AS "([^"]+)")?',
                                               target["query"]):
                    if field != "kw" and not field.endswith(("_kw", "_kwh")):
                        assert overrides.get(alias) not in (None, *KW_UNITS), (panel["title"], field)


def test_headroom_colours_are_relative_to_each_feeders_limit() -> None:
    board = dashboard_json("control-room")
    (stat,) = [p for p in _panels(board) if p["type"] == "stat" and "headroom" in p["title"].lower()]
    assert stat["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert '/ last("import_limit_kw")' in stat["targets"][0]["query"]
    steps = [s["value"] for s in stat["fieldConfig"]["defaults"]["thresholds"]["steps"]]
    assert steps[0] is None and all(0 <= v < 1 for v in steps[1:])  # shares, not kW


def test_every_panel_uses_the_provisioned_datasource_and_feeder_variable() -> None:
    datasource = yaml.safe_load(render_all()["provisioning/datasources/influxdb.yaml"])["datasources"][0]
    assert datasource["uid"] == DATASOURCE_UID and datasource["jsonData"]["version"] == "InfluxQL"
    for name in DASHBOARDS:
        board = dashboard_json(name)
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["feeder"]["query"] == 'SHOW TAG VALUES FROM "feeder" WITH KEY = "feeder"'
        for panel in _panels(board):
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] == DATASOURCE_UID


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in board["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


SELECT_FIELDS = re.compile(r'\b(?:mean|max|min|last|first|sum|count)\("([a-z_]+)"\)')
FROM = re.compile(r'FROM "([a-z_]+)"')


def _all_queries() -> list[str]:
    queries = [t.query for name in DASHBOARDS for _, t in iter_targets(DASHBOARDS[name]())
               if isinstance(t, InfluxQLQuery)]
    for rule in provisioning_document()["groups"][0]["rules"]:
        queries += [q["model"]["query"] for q in rule["data"] if "query" in q["model"]]
    return queries


def test_queries_only_name_documented_measurements_and_fields() -> None:
    fields = {f for _, fs in MEASUREMENTS.values() for f in fs}
    used_measurements = set()
    for query in _all_queries():
        for m in FROM.findall(query):
            assert m in MEASUREMENTS, query
            used_measurements.add(m)
        aliases = set(re.findall(r'AS "([^"]+)"', query))  # a subquery's columns
        for f in SELECT_FIELDS.findall(query):
            assert f in fields or f in aliases, query
    assert used_measurements == set(MEASUREMENTS)  # every measurement is shown somewhere
