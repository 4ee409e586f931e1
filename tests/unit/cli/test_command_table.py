"""Every command group registers, and every command answers ``--help`` (exit 0, its own usage line)."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from streams.cli import app, main

EXPECTED = {
    "worker",
    "demo",
    "topics",
    "simulate",
    "forecast-eval",
    "record",
    "replay",
    "import",
    "dashboards",
    "monitor",
    "backtest",
    "ocpp-gateway",
    "chargers",
    "config",
    "infra",
    "sites",
    "report",
}


def _paths(cmd: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix]
    for name, sub in getattr(cmd, "commands", {}).items():  # a group (typer vendors click: no isinstance)
        out.extend(_paths(sub, (*prefix, name)))
    return out


ROOT = typer.main.get_command(app)
PATHS = _paths(ROOT)


def test_every_command_group_is_registered() -> None:
    assert set(ROOT.commands) == EXPECTED


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "evgrid")
def test_every_command_answers_help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage: evgrid" in out and " ".join(path) in out
