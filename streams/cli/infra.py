"""``evgrid infra up|down|status``: the local Kafka broker and InfluxDB started by the repo."""

from __future__ import annotations

import typer

__all__ = ["register"]

SERVICES_HELP = "kafka, influxdb or all"


def register(app: typer.Typer) -> None:
    infra_app = typer.Typer(no_args_is_help=True, help="Start and stop the local Kafka broker and InfluxDB.")

    @infra_app.command("up")
    def up(services: str = typer.Argument("all", help=SERVICES_HELP)) -> None:
        """Install if needed, start in the background, wait until ready (idempotent)."""
        from streams import infra

        infra.up(services)

    @infra_app.command("down")
    def down(services: str = typer.Argument("all", help=SERVICES_HELP)) -> None:
        """Stop only the processes `up` started."""
        from streams import infra

        infra.down(services)

    @infra_app.command("status")
    def status(services: str = typer.Argument("all", help=SERVICES_HELP)) -> None:
        """Print each service's state; exit 3 if one is not ready."""
        from streams import infra

        states = infra.status(services)
        for name, st in states.items():
            typer.echo(f"{name}: {st}")
        if not all(st.ready for st in states.values()):
            raise typer.Exit(3)

    app.add_typer(infra_app, name="infra")
