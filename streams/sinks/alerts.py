"""Grafana-managed alert rules as code (grafana-foundation-sdk ``alerting.Rule``), InfluxQL queries.

Rules: feeder above its limit, forecast error far above the seasonal-naive baseline, consumer lag growing,
dead-letter rate spike, interconnection registry conflict (issue 14), stale telemetry share high. Each rule
is: InfluxQL data queries (``A``, ``B``) over a relative time range → ``reduce`` expressions → a ``math`` or
``threshold`` condition. They are written into Grafana's file-provisioning format by
:func:`provisioning_document`.
"""

from __future__ import annotations

from typing import Any, Literal

from grafana_foundation_sdk.builders import alerting, expr
from grafana_foundation_sdk.models import alerting as alert_model
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from streams.sinks.influxql import DATASOURCE_UID, InfluxQL

__all__ = ["FOLDER", "GROUP", "alert_rules", "provisioning_document"]

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


def _rule(uid: str, title: str, summary: str, for_: str, severity: str, *queries: alerting.Query,
          condition: str) -> alert_model.Rule:
    rule = (alerting.Rule(title).uid(uid).rule_group(GROUP).folder_uid(FOLDER).org_id(1).condition(condition)
            .queries(list(queries)).for_val(for_).no_data_state("OK").exec_err_state("Error")
            .labels({"team": "grid-ops", "severity": severity, "service": "evgrid"})
            .annotations({"summary": summary}))
    return rule.build()


def alert_rules() -> list[alert_model.Rule]:
    """The evgrid alert rules, in a stable order."""
    return [
        _rule("evgrid-feeder-over-limit", "Feeder above its limit",
              "Feeder {{ $labels.feeder }} is outside its import or export limit.", "0s", "critical",
              _data("A", 'SELECT min("import_headroom_kw") FROM "feeder" WHERE $timeFilter GROUP BY time(15m), '
                         '"feeder" fill(none)', 3600),
              _data("B", 'SELECT min("export_headroom_kw") FROM "feeder" WHERE $timeFilter GROUP BY time(15m), '
                         '"feeder" fill(none)', 3600),
              _reduce("RA", "A", "last"), _reduce("RB", "B", "last"),
              _math("C", "$RA < 0 || $RB < 0"), condition="C"),
        _rule("evgrid-forecast-error-high", "Forecast error far above baseline",
              "Forecast MAE on {{ $labels.feeder }} at {{ $labels.horizon }} is over 1.5x the seasonal-naive MAE.",
              "1h", "warning",
              _data("A", 'SELECT mean("abs_error_kw") / mean("naive_abs_error_kw") FROM "forecast_error" WHERE '
                         '$timeFilter GROUP BY "feeder", "horizon"', 6 * 3600),
              _reduce("R", "A", "last"), _math("C", "$R > 1.5"), condition="C"),
        _rule("evgrid-consumer-lag-growing", "Consumer lag growing",
              "Lag of {{ $labels.worker }} on {{ $labels.topic }} grew by more than 1000 messages in 10 minutes.",
              "5m", "warning",
              _data("A", 'SELECT last("lag") - first("lag") FROM "consumer_lag" WHERE $timeFilter GROUP BY '
                         '"worker", "topic"', 600),
              _reduce("R", "A", "last"), _math("C", "$R > 1000"), condition="C"),
        _rule("evgrid-dead-letter-spike", "Dead-letter rate spike",
              "{{ $labels.worker }} dead-lettered over 20 records in 5 minutes, 3x its hourly rate.", "0s",
              "warning",
              _data("A", 'SELECT sum("count") FROM "dead_letters" WHERE $timeFilter GROUP BY "worker"', 300),
              _data("B", 'SELECT sum("count") FROM "dead_letters" WHERE $timeFilter GROUP BY "worker"', 3600),
              _reduce("RA", "A", "last"), _reduce("RB", "B", "last"),
              _math("C", "$RA > 20 && $RA > 3 * $RB / 12"), condition="C"),
        _rule("evgrid-registry-conflict", "Interconnection registry conflict",
              "{{ $labels.worker }} refused a charger registered on a second feeder (duplicate_charger) or applied "
              "the stricter rules to one that disagrees with its site (site_conflict); see the dead-letter topic.",
              "0s", "warning",
              _data("A", 'SELECT sum("count") FROM "dead_letters" WHERE ("reason" = \'duplicate_charger\' OR '
                         '"reason" = \'site_conflict\') AND $timeFilter GROUP BY "worker"', 900),
              _reduce("R", "A", "sum"), _math("C", "$R > 0"), condition="C"),
        _rule("evgrid-stale-telemetry", "Stale telemetry share high",
              "Over 20 % of the chargers on {{ $labels.feeder }} have not reported recently; they get the safe "
              "fallback setpoint.", "10m", "warning",
              _data("A", 'SELECT mean("stale_share") FROM "fleet" WHERE $timeFilter GROUP BY time(5m), "feeder" '
                         'fill(none)', 1800),
              _reduce("R", "A", "mean"), _math("C", "$R > 0.2"), condition="C"),
    ]


def provisioning_document(rules: list[alert_model.Rule] | None = None) -> dict[str, Any]:
    """Grafana alerting file-provisioning document (``provisioning/alerting/*.yaml``) for ``rules``."""
    import json

    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    out_rules = []
    for rule in rules if rules is not None else alert_rules():
        doc = json.loads(json.dumps(rule, cls=JSONEncoder))
        for group_level in ("folderUID", "orgID", "ruleGroup"):
            doc.pop(group_level, None)
        out_rules.append(doc)
    return {"apiVersion": 1, "groups": [
        {"orgId": 1, "name": GROUP, "folder": FOLDER, "interval": "1m", "rules": out_rules}]}
