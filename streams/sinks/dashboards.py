"""Grafana dashboards as code (grafana-foundation-sdk): Control room, Forecast quality, Pipeline health.

Every panel queries the measurements of :mod:`streams.sinks.metrics` with raw InfluxQL through the provisioned
datasource (uid ``evgrid-influxdb``), which InfluxDB 1.8, 2.x (DBRP mapping) and 3.x all serve. A ``$feeder``
variable (``SHOW TAG VALUES``) selects feeders; the Control room repeats its feeder row per selected feeder.
``python -m streams.sinks.provisioning`` or ``evgrid dashboards generate`` writes the JSON (and the provisioning
files, see :mod:`streams.sinks.provisioning`).
"""

from __future__ import annotations

from collections.abc import Iterator

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.builders.common import StackingConfig, VizLegendOptions
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import (
    GraphDrawStyle,
    LegendDisplayMode,
    LegendPlacement,
    StackingMode,
)

from streams.sinks.influxql import DATASOURCE, InfluxQL

__all__ = ["DASHBOARDS", "HEADROOM_OK_SHARE", "control_room", "forecast_quality", "iter_targets", "panel_id",
           "pipeline_health"]

FEEDER = '"feeder" =~ /^$feeder$/'
HEADROOM_OK_SHARE = 0.10
"""Import headroom (share of the feeder's limit) above which the Control room shows green."""
WORKER = '"worker" =~ /^$worker$/'
BY_TIME = "GROUP BY time($__interval)"


def _thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=v, color=c) for v, c in steps])


def _legend() -> VizLegendOptions:
    return (VizLegendOptions().display_mode(LegendDisplayMode.LIST).placement(LegendPlacement.BOTTOM)
            .show_legend(True))


def _series(title: str, unit: str, *targets: InfluxQL, description: str = "", bars: bool = False,
            stack: bool = False, w: int = 12, h: int = 8, count_series: str | None = None) -> timeseries.Panel:
    """A time series panel in ``unit``; ``count_series`` (a series name) is a count on its own right axis."""
    panel = (timeseries.Panel().title(title).description(description).datasource(DATASOURCE).unit(unit)
             .span(w).height(h).legend(_legend()).fill_opacity(40 if bars else 10))
    if count_series is not None:
        panel = panel.override_by_name(count_series, [
            model.DynamicConfigValue(id_val="unit", value="short"),
            model.DynamicConfigValue(id_val="decimals", value=0),
            model.DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
            model.DynamicConfigValue(id_val="custom.axisLabel", value=count_series),
            model.DynamicConfigValue(id_val="custom.fillOpacity", value=0)])
    if bars:
        panel = panel.draw_style(GraphDrawStyle.BARS)
    if stack:
        panel = panel.stacking(StackingConfig().mode(StackingMode.NORMAL))
    for t in targets:
        panel = panel.with_target(t)
    return panel


def _stat(title: str, unit: str, target: InfluxQL, *, description: str = "",
          thresholds: dash.ThresholdsConfig | None = None, w: int = 6, h: int = 4) -> stat.Panel:
    panel = (stat.Panel().title(title).description(description).datasource(DATASOURCE).unit(unit).span(w)
             .height(h).with_target(target))
    return panel.thresholds(thresholds) if thresholds is not None else panel


def _table(title: str, target: InfluxQL, *, description: str = "", w: int = 12, h: int = 8) -> table.Panel:
    return table.Panel().title(title).description(description).datasource(DATASOURCE).span(w).height(h) \
        .with_target(target)


def _query_variable(name: str, label: str, query: str) -> dash.QueryVariable:
    return (dash.QueryVariable(name).label(label).query(query).datasource(DATASOURCE).multi(True)
            .include_all(True).refresh(model.VariableRefresh.ON_DASHBOARD_LOAD)
            .sort(model.VariableSort.ALPHABETICAL_ASC))


FEEDER_VARIABLE = 'SHOW TAG VALUES FROM "feeder" WITH KEY = "feeder"'
WORKER_VARIABLE = 'SHOW TAG VALUES FROM "throughput" WITH KEY = "worker"'
HORIZON_VARIABLE = 'SHOW TAG VALUES FROM "forecast_error" WITH KEY = "horizon"'


def _number(board: dash.Dashboard) -> model.Dashboard:
    """Build and give every panel a stable id in layout order."""
    built = board.build()
    ids = iter(range(1, 1000))
    for panel in built.panels or []:
        panel.id_val = next(ids)
        for inner in getattr(panel, "panels", None) or []:
            inner.id_val = next(ids)
    return built


def _base(uid: str, title: str, description: str, tags: list[str]) -> dash.Dashboard:
    return (dash.Dashboard(title).uid(uid).description(description).tags(["evgrid", *tags]).editable()
            .timezone("browser").refresh("30s").time("now-24h", "now+6h")
            .tooltip(model.DashboardCursorSync.CROSSHAIR)
            .timepicker(dash.TimePicker().refresh_intervals(["10s", "30s", "1m", "5m", "15m"])))


def control_room() -> model.Dashboard:
    """Per-feeder load vs forecast vs limit, EV charging and V2G, connected cars, flexibility, incentives, and the
    notices sent to the utility."""
    alerts = (dash.Panel().type("alertlist").title("Firing and pending alerts").span(12).height(8)
              .options({"alertInstanceLabelFilter": "", "alertName": "", "dashboardAlerts": False,
                        "groupBy": [], "groupMode": "default", "maxItems": 20, "sortOrder": 1,
                        "stateFilter": {"error": True, "firing": True, "noData": False, "normal": False,
                                        "pending": True}, "viewMode": "list"}))
    headroom = _table("Tightest limit headroom per feeder (negative = limit violated)", InfluxQL(
        'SELECT min("import_headroom_kw") AS "import headroom kW", min("export_headroom_kw") AS '
        f'"export headroom kW", last("load_kw") AS "last load kW", last("import_limit_kw") AS "import limit kW" '
        f'FROM "feeder" WHERE {FEEDER} AND $timeFilter GROUP BY "feeder"').table())
    feeder_panels: list[Builder[model.Panel]] = [
        _series("Load vs forecast vs limit", "kW",
            InfluxQL(f'SELECT mean("load_kw") AS "measured" FROM "feeder" WHERE {FEEDER} AND $timeFilter '
                     f'{BY_TIME} fill(null)', "A"),
            InfluxQL(f'SELECT mean("kw") AS "forecast 1h ahead", mean("lower_kw") AS "lower", mean("upper_kw") AS '
                     f'"upper" FROM "forecast" WHERE {FEEDER} AND "horizon" = \'1h\' AND $timeFilter {BY_TIME} '
                     'fill(null)', "B"),
            InfluxQL(f'SELECT last("import_limit_kw") AS "import limit", last("export_limit_kw") * -1 AS '
                     f'"export limit" FROM "feeder" WHERE {FEEDER} AND $timeFilter {BY_TIME} fill(previous)', "C"),
            description="Measured feeder load, the 1-hour-ahead forecast with its prediction interval, and the "
                        "import/export limits in force (export shown negative).", w=16, h=9),
        _stat("Import headroom now, share of the limit", "percentunit", InfluxQL(
            f'SELECT last("import_headroom_kw") / last("import_limit_kw") FROM "feeder" WHERE {FEEDER} AND '
            '$timeFilter'),
            thresholds=_thresholds((None, "red"), (0.0, "orange"), (HEADROOM_OK_SHARE, "green")), w=4, h=9,
            description="(Import limit − measured load) / import limit in the latest interval, so the colours mean "
                        f"the same on every feeder: red = over the limit, orange = under {HEADROOM_OK_SHARE:.0%} "
                        "of it left, green = more. The kW figures are in the table above."),
        _stat("Connected cars", "short", InfluxQL(
            f'SELECT last("connected_cars") FROM "fleet" WHERE {FEEDER} AND $timeFilter'), w=4, h=9,
            description="Cars plugged in on this feeder in the latest interval (a count)."),
        _series("EV charging and V2G export", "kW",
            InfluxQL(f'SELECT mean("charge_kw") AS "charging", mean("discharge_kw") AS "V2G export" FROM "fleet" '
                     f'WHERE {FEEDER} AND $timeFilter {BY_TIME} fill(null)'),
            description="Fleet power from charger telemetry: charging (+) and V2G discharge to the grid."),
        _series("Setpoints issued by reason", "none",
            InfluxQL(f'SELECT sum("count") FROM "setpoints" WHERE {FEEDER} AND $timeFilter {BY_TIME}, "reason" '
                     'fill(0)').alias("$tag_reason"), bars=True, stack=True),
        _series("Flexibility (kW) and connected cars (count, right axis)", "kW",
            InfluxQL(f'SELECT mean("up_kw") AS "can raise", mean("down_kw") AS "can lower" FROM "flexibility" '
                     f'WHERE {FEEDER} AND $timeFilter {BY_TIME} fill(null)', "A"),
            InfluxQL(f'SELECT mean("connected_cars") AS "connected cars" FROM "fleet" WHERE {FEEDER} AND '
                     f'$timeFilter {BY_TIME} fill(null)', "B"),
            description="How far the fleet could move its power this interval (kW, left axis), beside the cars "
                        "plugged in (a count, right axis).",
            count_series="connected cars"),
        _series("Flexible energy available", "kwatth",
            InfluxQL(f'SELECT mean("energy_up_kwh") AS "absorb", mean("energy_down_kwh") AS "defer or export" '
                     f'FROM "flexibility" WHERE {FEEDER} AND $timeFilter {BY_TIME} fill(null)')),
        _series("Incentives offered and accepted", "none",
            InfluxQL(f'SELECT sum("offered") AS "offered", sum("accepted") AS "accepted", sum("declined") AS '
                     f'"declined" FROM "incentives" WHERE {FEEDER} AND $timeFilter {BY_TIME} fill(0)'),
            bars=True, w=8),
        _stat("Active incentives", "none", InfluxQL(
            f'SELECT last("active") FROM "incentives" WHERE {FEEDER} AND $timeFilter'), w=4, h=8,
            description="Accepted offers whose window is running now."),
        _series("Utility notices: status changes, refused pathways, backup episodes", "none",
            InfluxQL(f'SELECT sum("count") FROM "utility_events" WHERE {FEEDER} AND $timeFilter {BY_TIME}, "kind" '
                     'fill(0)').alias("$tag_kind"), bars=True, stack=True,
            description="UtilityEvent records sent to the utility on evgrid.utility.events (a count per "
                        "interval, by kind): interconnection status changes, chargers refused for their inverter "
                        "pathway, islanded (backup power) episodes started and ended."),
    ]
    board = (_base("evgrid-control-room", "evgrid — Control room",
                   "Per-feeder load against forecast and limits, EV charging and V2G, flexibility and incentives.",
                   ["control-room"])
             .with_variable(_query_variable("feeder", "Feeder", FEEDER_VARIABLE))
             .with_row(dash.Row("Alerts").collapsed(False))
             .with_panel(alerts).with_panel(headroom)
             .with_row(dash.Row("Feeder $feeder").collapsed(False).repeat("feeder")))
    for panel in feeder_panels:
        board = board.with_panel(panel)
    return _number(board)


def forecast_quality() -> model.Dashboard:
    """Forecast error by horizon against the seasonal-naive baseline."""
    fe = f'FROM "forecast_error" WHERE {FEEDER} AND $timeFilter'
    board = (_base("evgrid-forecast-quality", "evgrid — Forecast quality",
                   "Mean absolute error of the online forecasts by horizon, against a seasonal-naive forecast "
                   "(same interval one season earlier).", ["forecasting"])
             .with_variable(_query_variable("feeder", "Feeder", FEEDER_VARIABLE))
             .with_variable(_query_variable("horizon", "Horizon", HORIZON_VARIABLE))
             .with_panel(_table("MAE by horizon: model vs seasonal naive", InfluxQL(
                 f'SELECT mean("abs_error_kw") AS "model MAE kW", mean("naive_abs_error_kw") AS "naive MAE kW", '
                 f'1 - mean("abs_error_kw") / mean("naive_abs_error_kw") AS "skill", mean("covered") AS '
                 f'"interval coverage", count("abs_error_kw") AS "n" {fe} GROUP BY "horizon"').table(),
                 description="Skill = 1 − MAE(model) / MAE(naive); above 0 the model beats the baseline.", w=12))
             .with_panel(_series("Skill vs seasonal naive by horizon", "percentunit", InfluxQL(
                 f'SELECT 1 - mean("abs_error_kw") / mean("naive_abs_error_kw") {fe} GROUP BY time(6h), "horizon" '
                 'fill(none)').alias("$tag_horizon"), w=12))
             .with_panel(_series("MAE over time, model (solid) and naive", "kW",
                 InfluxQL(f'SELECT mean("abs_error_kw") {fe} AND "horizon" =~ /^$horizon$/ {BY_TIME}, "horizon" '
                          'fill(null)', "A").alias("model $tag_horizon"),
                 InfluxQL(f'SELECT mean("naive_abs_error_kw") {fe} AND "horizon" =~ /^$horizon$/ {BY_TIME}, '
                          '"horizon" fill(null)', "B").alias("naive $tag_horizon"), w=24))
             .with_panel(_series("Forecast and naive vs measured", "kW",
                 InfluxQL(f'SELECT mean("actual_kw") AS "measured", mean("forecast_kw") AS "forecast", '
                          f'mean("naive_kw") AS "seasonal naive" {fe} AND "horizon" =~ /^$horizon$/ {BY_TIME} '
                          'fill(null)'), w=16))
             .with_panel(_series("Prediction interval coverage", "percentunit",
                 InfluxQL(f'SELECT mean("covered") {fe} GROUP BY time(1h), "horizon" fill(none)')
                 .alias("$tag_horizon"), w=8)))
    return _number(board)


def pipeline_health() -> model.Dashboard:
    """Throughput, consumer lag, dead letters, latency, stale telemetry and the monitoring sink itself."""
    board = (_base("evgrid-pipeline-health", "evgrid — Pipeline health",
                   "Stream processing health: events/s, consumer lag, dead letters, end-to-end latency, stale "
                   "telemetry and dropped monitoring points.", ["pipeline"])
             .time("now-6h", "now")
             .with_variable(_query_variable("worker", "Worker", WORKER_VARIABLE))
             .with_variable(_query_variable("feeder", "Feeder", FEEDER_VARIABLE))
             .with_panel(_series("Events per second by topic", "ops", InfluxQL(
                 f'SELECT mean("events_per_s") FROM "throughput" WHERE {WORKER} AND $timeFilter {BY_TIME}, '
                 '"topic", "worker" fill(null)').alias("$tag_topic ($tag_worker)")))
             .with_panel(_series("Consumer lag by topic", "short", InfluxQL(
                 f'SELECT max("lag") FROM "consumer_lag" WHERE {WORKER} AND $timeFilter {BY_TIME}, "topic", '
                 '"worker" fill(null)').alias("$tag_topic ($tag_worker)")))
             .with_panel(_series("Dead letters by reason", "short", InfluxQL(
                 f'SELECT sum("count") FROM "dead_letters" WHERE {WORKER} AND $timeFilter {BY_TIME}, "reason" '
                 'fill(0)').alias("$tag_reason"), bars=True, stack=True))
             .with_panel(_series("End-to-end latency (event time → setpoint)", "ms", InfluxQL(
                 f'SELECT max("p95_ms") AS "p95", mean("p50_ms") AS "p50", max("max_ms") AS "max" FROM "latency" '
                 f'WHERE {WORKER} AND $timeFilter {BY_TIME}, "stage" fill(null)').alias("$tag_stage $col")))
             .with_panel(_series("Stale telemetry share by feeder", "percentunit", InfluxQL(
                 f'SELECT mean("stale_share") FROM "fleet" WHERE {FEEDER} AND $timeFilter {BY_TIME}, "feeder" '
                 'fill(null)').alias("$tag_feeder")))
             .with_panel(_series("Feeder checkpoint size", "bytes", InfluxQL(
                 f'SELECT max("checkpoint_bytes") FROM "feeder_state" WHERE {WORKER} AND $timeFilter {BY_TIME}, '
                 '"feeder" fill(previous)').alias("$tag_feeder"), InfluxQL(
                 f'SELECT max("state_decode_failures") AS "checkpoints not decoded" FROM "worker_state" WHERE '
                 f'{WORKER} AND $timeFilter {BY_TIME}, "worker" fill(previous)').alias("$col ($tag_worker)"),
                 count_series="checkpoints not decoded",
                 description="Bytes of each feeder's last checkpoint (state + forecaster): it depends on the fleet, "
                             "not on time or backlog. Checkpoints that did not decode started their feeder fresh."))
             .with_panel(_series("Monitoring sink: buffered and dropped points", "short", InfluxQL(
                 f'SELECT last("buffered_points") AS "buffered", last("dropped_points") AS "dropped (total)", '
                 f'last("rejected_points") AS "rejected (total)" FROM "sink" WHERE {WORKER} AND $timeFilter '
                 f'{BY_TIME}, "worker" fill(previous)').alias("$tag_worker $col"), w=16))
             .with_panel(_stat("Dropped monitoring points", "short", InfluxQL(
                 f'SELECT sum("dropped") FROM (SELECT last("dropped_points") AS "dropped" FROM "sink" WHERE '
                 f'{WORKER} AND $timeFilter GROUP BY "worker")'),
                 thresholds=_thresholds((None, "green"), (1.0, "orange")), w=8, h=8,
                 description="Points the sinks discarded (oldest first) while InfluxDB was slow or down.")))
    return _number(board)


DASHBOARDS = {"control-room": control_room, "forecast-quality": forecast_quality,
              "pipeline-health": pipeline_health}
"""File stem → dashboard factory."""


def panel_id(board: model.Dashboard, title: str) -> int:
    """The id of the panel titled ``title`` (also inside rows); ``KeyError`` if there is none."""
    for panel in board.panels or []:
        for p in [panel, *(getattr(panel, "panels", None) or [])]:
            if getattr(p, "title", None) == title and getattr(p, "id_val", None) is not None:
                return int(p.id_val)
    raise KeyError(f"no panel {title!r} on {board.uid}")


def iter_targets(board: model.Dashboard) -> Iterator[tuple[str, object]]:
    """(panel title, target) of every panel, including panels inside rows."""
    for panel in board.panels or []:
        inner = getattr(panel, "panels", None)
        for p in (inner if inner is not None else [panel]):
            for t in getattr(p, "targets", None) or []:
                yield p.title or "", t

