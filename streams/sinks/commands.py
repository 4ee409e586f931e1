"""``evgrid dashboards generate|check``: Grafana dashboards and provisioning from code."""

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
) -> None:
    """Write dashboards/*.json and provisioning/{datasources,dashboards,alerting}/*.yaml."""
    from streams.sinks.provisioning import generate as write_all

    for path in write_all(out, influx_url=influx_url, dashboards_path=dashboards_path, database=database):
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


def register(app: typer.Typer) -> None:
    """Add the ``dashboards`` command group to the ``evgrid`` CLI."""
    app.add_typer(dashboards_app, name="dashboards")
