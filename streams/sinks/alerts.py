"""Grafana-managed alert rules as code (grafana-foundation-sdk ``alerting.Rule``), InfluxQL queries.

Rules: feeder above its limit, forecast error far above the seasonal-naive baseline, consumer lag growing,
dead-letter rate spike, interconnection registry conflict, feeder checkpoints that do not decode, stale telemetry
share high, and a dead-man switch (no pipeline metrics for 2 minutes).
Where silence means trouble a rule goes to ``NoData`` (or ``Alerting``) without data, and to ``Error`` when its
query fails; each carries its runbook text, a runbook link and its dashboard panel. A webhook contact point and a
notification policy are provisioned beside them (:func:`notification_document`).

Each rule is: InfluxQL data queries (``A``, ``B``) over a relative time range → ``reduce`` expressions → a
``math`` or ``threshold`` condition. They are written into Grafana's file-provisioning format by
:func:`provisioning_document`.
"""

from __future__ import annotations

from typing import Any, Literal

from grafana_foundation_sdk.builders import alerting, expr
from grafana_foundation_sdk.models import alerting as alert_model
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from streams.sinks.influxql import DATASOURCE_UID, InfluxQL

__all__ = ["CONTACT_POINT", "FOLDER", "GROUP", "RUNBOOK_URL", "WEBHOOK_ENV", "alert_rules", "notification_document",
           "provisioning_document"]

FOLDER = "evgrid"
GROUP = "evgrid"
EXPR = DataSourceRef(type_val="__expr__", uid="__expr__")
Reducer = Literal["sum", "mean", "min", "max", "count", "last", "median"]


def _data(ref: str, query: str, seconds: int) -> alerting.Query:
    return (alerting.Query(ref).datasource_uid(DATASOURCE_UID).model(InfluxQL(query, ref))
            .relative_time_range(alert_model.RelativeTimeRange(from_val=seconds, to=0)))


def _reduce(ref: str, of: str, reducer: Reducer) -> alerting.Query:
    return (alerting.Query(ref).datasource_uid("__expr__")
            .model(expr.TypeReduce().ref_id(ref).expression(of).reducer(reducer).datasource(EXPR)))


def _math(ref: str, expression: str) -> alerting.Query:
    return alerting.Query(ref).datasource_uid("__expr__").model(
        expr.TypeMath().ref_id(ref).expression(expression).datasource(EXPR))


NoData = Literal["NoData", "Alerting", "OK"]
RUNBOOK_URL = ""
"""Base URL of a published runbook page; when set (``evgrid dashboards generate --runbook-url``) each rule gets a
``runbook_url`` to its section. The runbook text itself is always in the rule's ``description``."""
WEBHOOK_ENV = "EVGRID_ALERT_WEBHOOK_URL"
"""Environment variable Grafana reads (when it loads the provisioning files) for the webhook's URL."""
CONTACT_POINT = "evgrid-webhook"


def _rule(uid: str, title: str, summary: str, for_: str, severity: str, *queries: alerting.Query,
          condition: str, no_data: NoData, runbook: str, panel: tuple[str, str],
          runbook_url: str = RUNBOOK_URL) -> alert_model.Rule:
    """One rule. ``no_data``: the state when a query returns nothing (``NoData`` or ``Alerting`` where silence
    means trouble); ``runbook``: what it means and what to do; ``panel``: (dashboard name, panel title) it links to.
    """
    from streams.sinks.dashboards import DASHBOARDS, panel_id

    board = DASHBOARDS[panel[0]]()
    anchor = title.lower().replace(" ", "-").replace("/", "")
    links = {"runbook_url": f"{runbook_url}#{anchor}"} if runbook_url else {}
    rule = (alerting.Rule(title).uid(uid).rule_group(GROUP).folder_uid(FOLDER).org_id(1).condition(condition)
            .queries(list(queries)).for_val(for_).no_data_state(no_data).exec_err_state("Error")
            .labels({"team": "grid-ops", "severity": severity, "service": "evgrid"})
            .annotations({"summary": summary, "description": runbook, **links,
                          "__dashboardUid__": str(board.uid), "__panelId__": str(panel_id(board, panel[1]))}))
    return rule.build()


def alert_rules(runbook_url: str = RUNBOOK_URL) -> list[alert_model.Rule]:
    """The evgrid alert rules, in a stable order (runbooks: docs/runbook.md)."""
    return [
        _rule("evgrid-feeder-over-limit", "Feeder above its limit",
              "Feeder {{ $labels.feeder }} is outside its import or export limit.", "0s", "critical",
              _data("A", 'SELECT min("import_headroom_kw") FROM "feeder" WHERE $timeFilter GROUP BY time(15m), '
                         '"feeder" fill(none)', 3600),
              _data("B", 'SELECT min("export_headroom_kw") FROM "feeder" WHERE $timeFilter GROUP BY time(15m), '
                         '"feeder" fill(none)', 3600),
              _reduce("RA", "A", "last"), _reduce("RB", "B", "last"),
              _math("C", "$RA < 0 || $RB < 0"), condition="C", no_data="NoData",
              runbook="The measured load broke the feeder's limit in the last closed interval. Check the Control "
                      "room: if EV charging is high, are setpoints reaching the chargers (reason counts, stale "
                      "telemetry)? If the base load alone is over the limit, call the network operator: chargers "
                      "cannot fix that. No data for an hour means the feeder's metrics stopped: treat as an outage.",
              panel=("control-room", "Load vs forecast vs limit"), runbook_url=runbook_url),
        _rule("evgrid-forecast-error-high", "Forecast error far above baseline",
              "Forecast MAE on {{ $labels.feeder }} at {{ $labels.horizon }} is over 1.5x the seasonal-naive MAE.",
              "1h", "warning",
              _data("A", 'SELECT mean("abs_error_kw") / mean("naive_abs_error_kw") FROM "forecast_error" WHERE '
                         '$timeFilter GROUP BY "feeder", "horizon"', 6 * 3600),
              _reduce("R", "A", "last"), _math("C", "$R > 1.5"), condition="C", no_data="NoData",
              runbook="The online forecast is much worse than 'same time last week'. Look for a meter that "
                      "changed (a new site, a wrong unit), a holiday calendar missing, or weather data stopped. "
                      "Plans stay safe (the envelope uses measured load) but less efficient. No data for six hours "
                      "means forecasts are not being scored: check the monitor sink.",
              panel=("forecast-quality", "MAE over time, model (solid) and naive"), runbook_url=runbook_url),
        _rule("evgrid-consumer-lag-growing", "Consumer lag growing",
              "Lag of {{ $labels.worker }} on {{ $labels.topic }} grew by more than 1000 messages in 10 minutes.",
              "5m", "warning",
              _data("A", 'SELECT last("lag") - first("lag") FROM "consumer_lag" WHERE $timeFilter GROUP BY '
                         '"worker", "topic"', 600),
              _reduce("R", "A", "last"), _math("C", "$R > 1000"), condition="C", no_data="NoData",
              runbook="A worker falls behind its input, so setpoints come late. Check the worker's CPU and log, "
                      "the Events per second panel, and whether a partition lost its consumer (rebalance). Add a "
                      "worker if the input rate grew. No data means the workers stopped reporting lag.",
              panel=("pipeline-health", "Consumer lag by topic"), runbook_url=runbook_url),
        _rule("evgrid-dead-letter-spike", "Dead-letter rate spike",
              "{{ $labels.worker }} dead-lettered over 20 records in 5 minutes, 3x its hourly rate.", "0s",
              "warning",
              _data("A", 'SELECT sum("count") FROM "dead_letters" WHERE $timeFilter GROUP BY "worker"', 300),
              _data("B", 'SELECT sum("count") FROM "dead_letters" WHERE $timeFilter GROUP BY "worker"', 3600),
              _reduce("RA", "A", "last"), _reduce("RB", "B", "last"),
              _math("C", "$RA > 20 && $RA > 3 * $RB / 12"), condition="C",
              no_data="OK",  # no dead letters is the good case; a silent pipeline fires the dead-man rule
              runbook="Many input records are being rejected. The Dead letters by reason panel names the reason; "
                      "the evgrid.deadletter topic holds each record with its reason. Usually a producer shipped a "
                      "new format or wrong units: fix the producer, the pipeline keeps running meanwhile.",
              panel=("pipeline-health", "Dead letters by reason"), runbook_url=runbook_url),
        _rule("evgrid-registry-conflict", "Interconnection registry conflict",
              "{{ $labels.worker }} refused a charger registered on a second feeder (duplicate_charger) or applied "
              "the stricter rules to one that disagrees with its site (site_conflict); see the dead-letter topic.",
              "0s", "warning",
              _data("A", 'SELECT sum("count") FROM "dead_letters" WHERE ("reason" = \'duplicate_charger\' OR '
                         '"reason" = \'site_conflict\') AND $timeFilter GROUP BY "worker"', 900),
              _reduce("R", "A", "sum"), _math("C", "$R > 0"), condition="C",
              no_data="OK",  # no conflicting registration is the good case
              runbook="A charger registration disagrees with another one: the same charger on a second feeder (the "
                      "first keeps it), or a charger whose class or limits disagree with its site's registration "
                      "(the stricter rules apply meanwhile). Find the record on evgrid.deadletter and correct the "
                      "registry at its source (the CSMS or `evgrid chargers register`).",
              panel=("pipeline-health", "Dead letters by reason"), runbook_url=runbook_url),
        _rule("evgrid-state-decode-failure", "Feeder checkpoint did not decode",
              "{{ $labels.worker }} found a feeder checkpoint it could not decode and started that feeder fresh.",
              "0s", "warning",
              _data("A", 'SELECT max("state_decode_failures") FROM "worker_state" WHERE $timeFilter '
                         'GROUP BY "worker"', 900),
              _reduce("R", "A", "max"), _math("C", "$R > 0"), condition="C",
              no_data="OK",  # the dead-man rule covers a silent worker
              runbook="A feeder-state changelog record did not decode (corrupt, written by another version, or "
                      "forged): the worker logged the feeder and started it fresh, so its forecasts warm up again. "
                      "Check who can write the changelog topic (docs/security.md) and the worker's log.",
              panel=("pipeline-health", "Feeder checkpoint size"), runbook_url=runbook_url),
        _rule("evgrid-stale-telemetry", "Stale telemetry share high",
              "Over 20 % of the chargers on {{ $labels.feeder }} have not reported recently; they get the safe "
              "fallback setpoint.", "10m", "warning",
              _data("A", 'SELECT mean("stale_share") FROM "fleet" WHERE $timeFilter GROUP BY time(5m), "feeder" '
                         'fill(none)', 1800),
              _reduce("R", "A", "mean"), _math("C", "$R > 0.2"), condition="C", no_data="NoData",
              runbook="Chargers stopped sending telemetry, so they get the safe fallback power and the feeder "
                      "loses flexibility. Check the charger gateway (OCPP) and its connection to Kafka; if one "
                      "site, its network. No data means fleet metrics stopped: check the workers.",
              panel=("pipeline-health", "Stale telemetry share by feeder"), runbook_url=runbook_url),
        _rule("evgrid-pipeline-silent", "Pipeline metrics stopped",
              "No worker has written throughput metrics for 2 minutes: the pipeline or its monitoring is down.",
              "0s", "critical",
              _data("A", 'SELECT count("events") FROM "throughput" WHERE $timeFilter', 120),
              _reduce("R", "A", "sum"), _math("C", "$R < 1"), condition="C",
              no_data="Alerting",  # the dead-man switch: silence is the alarm
              runbook="Dead-man switch: workers write throughput every few seconds, even when idle. Silence "
                      "means no worker is running, they cannot reach InfluxDB, or the broker is down (workers "
                      "stall). Run `evgrid infra status`, check the worker processes and their logs, then the "
                      "Monitoring sink panel (dropped points). Until it clears, no figure on these dashboards is "
                      "current.",
              panel=("pipeline-health", "Events per second by topic"), runbook_url=runbook_url),
    ]


def notification_document(webhook_env: str = WEBHOOK_ENV) -> dict[str, Any]:
    """Grafana file provisioning of the contact point (a webhook whose URL comes from ``$webhook_env`` when
    Grafana loads the file) and the notification policy routing every evgrid alert to it."""
    return {
        "apiVersion": 1,
        "contactPoints": [{"orgId": 1, "name": CONTACT_POINT, "receivers": [{
            "uid": CONTACT_POINT, "type": "webhook", "disableResolveMessage": False,
            "settings": {"url": f"${{{webhook_env}}}", "httpMethod": "POST"}}]}],
        "policies": [{"orgId": 1, "receiver": CONTACT_POINT,
                      "group_by": ["grafana_folder", "alertname", "feeder"],
                      "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"}],
    }


def provisioning_document(rules: list[alert_model.Rule] | None = None, runbook_url: str = RUNBOOK_URL
                          ) -> dict[str, Any]:
    """Grafana alerting file-provisioning document (``provisioning/alerting/*.yaml``) for ``rules``."""
    import json

    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    out_rules = []
    for rule in rules if rules is not None else alert_rules(runbook_url):
        doc = json.loads(json.dumps(rule, cls=JSONEncoder))
        for group_level in ("folderUID", "orgID", "ruleGroup"):
            doc.pop(group_level, None)
        out_rules.append(doc)
    return {"apiVersion": 1, "groups": [
        {"orgId": 1, "name": GROUP, "folder": FOLDER, "interval": "1m", "rules": out_rules}]}
