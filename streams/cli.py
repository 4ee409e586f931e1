"""The ``evgrid`` command line.

Each area registers its own commands from a ``commands`` module (``register(app)``), so this file stays
a table of contents.
"""

from __future__ import annotations

import importlib
import json

import typer

from streams.settings import Settings

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, add_completion=False, help="evgrid: EV smart charging and V2G on Kafka.")
config_app = typer.Typer(no_args_is_help=True, help="Show configuration.")
app.add_typer(config_app, name="config")

COMMAND_MODULES = (
    "streams.infra_commands",
    "streams.agents.commands",
    "streams.simulate.commands",
    "streams.forecasting.commands",
    "streams.dispatch.commands",
    "streams.replay.commands",
    "streams.sinks.commands",
    "streams.backtest.commands",
    "streams.ocpp.commands",
)


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings (secrets redacted) and the environment variable of each."""
    try:
        settings = Settings()
    except ValueError as exc:
        typer.echo(f"error: {str(exc).splitlines()[0]}", err=True)
        raise typer.Exit(2) from None
    out = {}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        out[name] = {"value": str(value) if hasattr(value, "get_secret_value") else value,
                     "env": f"EVGRID_{name.upper()}", "doc": (field.description or "").split(": ", 1)[-1]}
    typer.echo(json.dumps(out, indent=2, default=str))


for _module in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(_module)
    except ModuleNotFoundError as _exc:  # an area not built yet
        if _exc.name is None or not _module.startswith(_exc.name):
            raise
        continue
    _mod.register(app)


if __name__ == "__main__":
    app()
