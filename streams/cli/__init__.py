"""The ``evgrid`` command line.

Each command group is one module of this package with a ``register(app)``, so this file stays a table of
contents. A module that fails to import fails the CLI: nothing here is optional.
"""

from __future__ import annotations

import json
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import typer
from pydantic import ValidationError

from streams.cli import agents as cli_agents
from streams.cli import backtest as cli_backtest
from streams.cli import forecasting as cli_forecasting
from streams.cli import infra as cli_infra
from streams.cli import ocpp as cli_ocpp
from streams.cli import replay as cli_replay
from streams.cli import report as cli_report
from streams.cli import simulate as cli_simulate
from streams.cli import sinks as cli_sinks
from streams.cli import sites as cli_sites
from streams.cli.errors import describe
from streams.settings import Settings

try:  # typer >= 0.25 vendors click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover - older typer on click
    from click.exceptions import ClickException, NoArgsIsHelpError  # type: ignore[assignment]

__all__ = ["app", "main"]



class _Cli(typer.Typer):
    """A Typer app whose console-script call goes through :func:`main` (short errors, exit codes)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if "standalone_mode" in kwargs:
            return super().__call__(*args, **kwargs)
        sys.exit(main(kwargs.get("args")))

    def run_command(self, args: list[str]) -> Any:
        """Run without click's standalone handling (exceptions propagate)."""
        return super().__call__(args=args, prog_name="evgrid", standalone_mode=False)


app = _Cli(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
           help="evgrid: EV smart charging and V2G on Kafka.")
config_app = typer.Typer(no_args_is_help=True, help="Show configuration.")
app.add_typer(config_app, name="config")

COMMAND_MODULES = (cli_infra, cli_agents, cli_simulate, cli_forecasting, cli_replay, cli_sinks, cli_backtest, cli_ocpp,
                   cli_sites, cli_report)


def package_version() -> str:
    """The installed distribution's version (``0+unknown`` when run from a source tree without metadata)."""
    try:
        return version("evgrid")
    except PackageNotFoundError:
        return "0+unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"evgrid {package_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                      help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of an error (also EVGRID_DEBUG=1)."),
) -> None:
    """evgrid: EV smart charging and V2G on Kafka."""


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings (secrets redacted) and the environment variable of each."""
    try:
        settings = Settings()
    except ValidationError:
        raise  # the CLI's error handler names each variable
    except ValueError as exc:  # the settings file: unreadable, or readable by others
        typer.echo(f"error: {str(exc).splitlines()[0]}", err=True)
        raise typer.Exit(2) from None
    out = {}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        out[name] = {"value": str(value) if hasattr(value, "get_secret_value") else value,
                     "env": f"EVGRID_{name.upper()}", "doc": (field.description or "").split(": ", 1)[-1]}
    typer.echo(json.dumps(out, indent=2, default=str))


for _module in COMMAND_MODULES:
    _module.register(app)


def _usage_error(exc: ClickException) -> list[str]:
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "evgrid"
    lines = [f"{where}: error: {exc.format_message()}"]
    if ctx is not None:
        lines.append(f"see `{where} --help`")
    return lines


def _save_traceback(exc: BaseException) -> str:
    import tempfile
    import traceback

    with tempfile.NamedTemporaryFile("w", prefix="evgrid-error-", suffix=".txt", delete=False) as fh:
        fh.write("".join(traceback.format_exception(exc)))
        return fh.name


def main(argv: list[str] | None = None) -> int:
    """The ``evgrid`` entry point: run a command; report a failure in one or two lines (see
    :mod:`streams.cli.errors`) with exit 2 (bad input), 3 (broker unreachable) or 1."""

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("EVGRID_DEBUG", "") not in ("", "0", "false")
    try:
        rv = app.run_command([a for a in args if a != "--debug"] if debug else args)
    except NoArgsIsHelpError as exc:  # a group without a subcommand: its help
        typer.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        return 2
    except ClickException as exc:  # a bad option or argument (exit 2)
        for line in _usage_error(exc):
            typer.echo(line, err=True)
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as exc:
        if debug:
            raise
        failure = describe(exc)
        lines = list(failure.lines)
        if failure.code == 1:  # a bug, not the user's input: keep its traceback for the report
            lines[-1] = f"(traceback in {_save_traceback(exc)}; --debug prints it)"
        for line in lines:
            typer.echo(line, err=True)
        return failure.code
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
