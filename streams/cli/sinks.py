"""``evgrid dashboards generate|check|sample-data`` (Grafana as code) and ``evgrid monitor`` (the monitoring sink)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

dashboards_app = typer.Typer(no_args_is_help=True, help="Grafana dashboards, datasource and alert rules as code.")

COMPOSE_INFLUX_URL = "http://influxdb:8086"
COMPOSE_DASHBOARDS_PATH = "/var/lib/grafana/dashboards"


@dashboards_app.command("generate")
def generate(
    out: Annotated[Path | None, typer.Option(help="Output folder (default: the repo's grafana/).")] = None,
    influx_url: Annotated[str, typer.Option(help="URL Grafana uses to reach InfluxDB.")] = COMPOSE_INFLUX_URL,
    dashboards_path: Annotated[str, typer.Option(help="Where Grafana reads the dashboard JSON.")] = (
        COMPOSE_DASHBOARDS_PATH),
    database: Annotated[str, typer.Option(help="InfluxDB database (DBRP-mapped name on 2.x/3.x).")] = "evgrid",
    runbook_url: Annotated[str | None, typer.Option(help="Where docs/runbook.md is published (alert links).")
                           ] = None,
) -> None:
    """Write dashboards/*.json and provisioning/{datasources,dashboards,alerting}/*.yaml.

    The alert webhook's URL is read by Grafana from EVGRID_ALERT_WEBHOOK_URL when it loads the files.
    """
    from streams.sinks.alerts import RUNBOOK_URL
    from streams.sinks.provisioning import generate as write_all

    for path in write_all(out, influx_url=influx_url, dashboards_path=dashboards_path, database=database,
                          runbook_url=runbook_url or RUNBOOK_URL):
        typer.echo(str(path))


@dashboards_app.command("check")
def check() -> None:
    """Exit 1 if the committed grafana/ files differ from what the code generates."""
    from streams.sinks.provisioning import render_all, repo_grafana_dir

    root = repo_grafana_dir()
    stale = [rel for rel, text in render_all().items()
             if not (root / rel).exists() or (root / rel).read_text(encoding="utf-8") != text]
    for rel in stale:
        typer.echo(f"out of date: grafana/{rel}")
    if stale:
        raise typer.Exit(1)
    typer.echo("grafana/ is up to date")


@dashboards_app.command("sample-data")
def sample_data(
    hours: Annotated[int, typer.Option(help="Hours of per-feeder history (over 24 gives naive baselines).")] = 30,
    feeders: Annotated[int, typer.Option(help="Number of feeders.")] = 2,
) -> None:
    """Write a realistic sample of every metric, ending now, to EVGRID_INFLUX_* (to look at the dashboards)."""
    import time

    from streams.settings import Settings
    from streams.sinks.influx import InfluxSink
    from streams.sinks.sample import sample_points

    points = sample_points(int(time.time() * 1000), feeders=[f"feeder-{i + 1}" for i in range(feeders)],
                           hours=hours, worker="evgrid-sample")
    sink = InfluxSink.from_settings(Settings(), worker="evgrid-sample")
    sink.write(points)
    ok = sink.close(timeout=60)
    stats = sink.stats
    typer.echo(f"wrote {stats.written} points, dropped {stats.dropped}, rejected {stats.rejected}"
               + ("" if ok else f"; not all written: {stats.last_error}"))
    if not ok:
        raise typer.Exit(1)


def monitor(loglevel: Annotated[str, typer.Option(help="faust log level")] = "warning") -> None:
    """Run the monitoring sink (own faust app and consumer group): per-feeder metrics to InfluxDB."""
    from streams.agents.monitor import create_monitor_app
    from streams.agents.runner import run
    from streams.cli.preflight import require_broker

    require_broker()
    run(create_monitor_app(), loglevel)


def register(app: typer.Typer) -> None:
    """Add the ``dashboards`` command group and the ``monitor`` command to the ``evgrid`` CLI."""
    app.add_typer(dashboards_app, name="dashboards")
    app.command("monitor")(monitor)
