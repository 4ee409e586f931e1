"""``evgrid backtest``: run a scenario (or a sessions file) through the real pipeline and write the report.

By default the twins' closed loop goes through a Kafka namespace and a worker process; ``--in-process`` runs the
same worker code without a broker.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from streams.cli.stopping import exit_on_sigterm

__all__ = ["in_process_settings", "register", "run_backtest_cli", "run_in_process_cli"]


def _parse_sets(items: list[str]) -> dict[str, Any]:
    from streams.settings import Settings

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise typer.BadParameter(f"--set wants NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        k = k.strip().lower().removeprefix("evgrid_")
        if k not in Settings.model_fields:
            raise typer.BadParameter(f"unknown setting {k!r}")
        out[k] = v
    return out


def _parse_step(text: str) -> int:
    from streams.contracts.timeparse import parse_duration_ms

    try:
        ms = parse_duration_ms(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--step'") from None
    if ms % 60_000 or not 1 <= ms // 60_000 <= 60:
        raise typer.BadParameter(f"{text!r}: the planning step is a whole number of minutes from 1 to 60",
                                 param_hint="'--step'")
    return ms


def _read_scenario(path: Path) -> Any:
    """The scenario at ``path``; its YAML or schema errors name the file (and line)."""
    import yaml
    from pydantic import ValidationError

    from streams.cli.errors import file_error
    from streams.replay.scenario import load_scenario

    try:
        return load_scenario(path)
    except (yaml.YAMLError, ValidationError, ValueError) as exc:
        raise file_error(path, exc) from None


def in_process_settings(inputs: Any, base: Any) -> Any:
    """The Settings a worker of this run would see (its environment from ``worker_env``), for ``--in-process``."""
    from streams.backtest.orchestrator import worker_env
    from streams.settings import Settings

    with tempfile.TemporaryDirectory(prefix="evgrid-inprocess-") as data_dir:
        env = worker_env(inputs, base, base.topic_prefix, data_dir)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            return Settings()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def run_in_process_cli(inputs: Any, base: Any, echo: Any = typer.echo, progress: bool = True) -> Any:
    """``inputs`` through :func:`~streams.backtest.inprocess.run_in_process`, as ``PipelineOutputs``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from streams.backtest.inprocess import run_in_process
    from streams.backtest.inputs import merged_records
    from streams.backtest.orchestrator import PipelineOutputs
    from streams.contracts.topics import DEADLETTER, FORECASTS, INCENTIVES, SETPOINTS, SETTLEMENTS

    settings = in_process_settings(inputs, base)
    flushed = inputs.with_flush()
    t0 = time.perf_counter()
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), transient=True, disable=not progress)
    with bar:
        task = bar.add_task("in-process pipeline", total=flushed.n_records)

        def counted() -> Iterator[dict[str, Any]]:
            for i, d in enumerate(merged_records(flushed), 1):
                if i % 500 == 0:
                    bar.update(task, completed=i)
                yield d
            bar.update(task, completed=flushed.n_records)

        dec = run_in_process(inputs, settings, records=counted())
    out = PipelineOutputs(prefix="(in-process)", records_replayed=flushed.n_records)
    out.setpoints, out.forecasts = dec.get(SETPOINTS, []), dec.get(FORECASTS, [])
    out.incentives, out.settlements = dec.get(INCENTIVES, []), dec.get(SETTLEMENTS, [])
    out.deadletters = dec.get(DEADLETTER, [])
    out.timings.processing = out.timings.total = round(time.perf_counter() - t0, 2)
    echo(f"in-process pipeline: {flushed.n_records} records in {out.timings.total} s, "
         f"{len(out.setpoints)} setpoints, {len(out.forecasts)} forecasts")
    return out


def run_backtest_cli(scenario: Path | None, sessions: Path | None, load: Path | None, weather: Path | None,
                     weather_year: int | None, step: str | None, import_limit_kw: float | None,
                     export_limit_kw: float | None, json_out: Path | None, html_out: Path | None,
                     setpoints_out: Path | None, keep_topics: bool, sets: list[str], optimum: bool,
                     echo: Any = typer.echo, in_process: bool = False, open_loop: bool = False,
                     curves_out: Path | None = None) -> dict[str, Any]:
    """The command's body (also used by tests and benchmarks); returns the report figures.

    Closed loop (default): charger twins (:mod:`streams.backtest.closedloop`) answer the setpoints of one worker
    subprocess through the broker, in lockstep (:mod:`streams.backtest.brokerloop`; ``in_process``: of the
    worker's code run in this process). ``open_loop``: replay the recorded telemetry through the broker and one
    worker subprocess (``in_process``: through the worker's code in this process), and score the setpoints it
    emitted.
    """
    from streams.backtest.inputs import from_flags, from_scenario
    from streams.backtest.orchestrator import run_pipeline
    from streams.backtest.report import compute_report
    from streams.cli.preflight import quiet_solver_banner, require_broker
    from streams.settings import Settings

    t0 = time.perf_counter()
    overrides = _parse_sets(sets)
    step_ms = _parse_step(step) if step else None
    if scenario is not None:
        if sessions is not None or load is not None or weather is not None:
            raise typer.BadParameter("give a scenario or --sessions/--load/--weather, not both")
        inputs = from_scenario(_read_scenario(scenario), import_limit_kw=import_limit_kw, step_ms=step_ms,
                               settings=overrides)
        if export_limit_kw is not None:
            inputs.export_limit_kw = export_limit_kw
    elif sessions is not None:
        inputs = from_flags(sessions, load=load, weather=weather, weather_year=weather_year,
                            step_ms=step_ms or 300_000, import_limit_kw=import_limit_kw,
                            export_limit_kw=export_limit_kw, settings=overrides)
    else:
        raise typer.BadParameter("give a SCENARIO file or --sessions")
    echo(f"backtest {inputs.name}: {len(inputs.sessions)} sessions, {len(inputs.readings)} meter readings, "
         f"{inputs.n_records} records, step {inputs.step_ms // 60_000} min")
    quiet_solver_banner()
    if not open_loop:
        return _closed_loop(inputs, json_out, html_out, setpoints_out, optimum, echo, t0, curves_out,
                            in_process=in_process, keep_topics=keep_topics)
    base = Settings()
    if in_process:
        out = run_in_process_cli(inputs, base, echo=echo)
    else:
        require_broker(base)
        out = run_pipeline(inputs, base, keep_topics=keep_topics, log=echo)
    run_settings = Settings(**{**{k: v for k, v in inputs.settings.items()},
                               "interval_minutes": inputs.step_ms // 60_000})
    t_rep = time.perf_counter()
    echo(f"scoring: chargers following {len(out.setpoints)} setpoints, uncontrolled charging"
         + (", the perfect-foresight optimum (one LP)" if optimum else ""))
    run = {"loop": "open", "engine": "in-process" if in_process else "broker", "prefix": out.prefix,
           "topics_kept": keep_topics and not in_process, "records_replayed": out.records_replayed,
           "worker": out.worker_stats, "seconds": {**out.timings.__dict__}}
    rep = compute_report(inputs, setpoints=out.setpoints, forecasts=out.forecasts, incentives=out.incentives,
                         settlements=out.settlements, deadletters=out.deadletters, settings=run_settings,
                         run=run, optimum=optimum)
    return _finish(rep, out.setpoints, json_out, html_out, setpoints_out, echo, t0, t_rep, curves_out)


def _closed_loop(inputs: Any, json_out: Path | None, html_out: Path | None, setpoints_out: Path | None,
                 optimum: bool, echo: Any, t0: float, curves_out: Path | None = None, in_process: bool = False,
                 keep_topics: bool = False) -> dict[str, Any]:
    from streams.backtest.closedloop import run_closed_loop, run_settings
    from streams.backtest.report import compute_report
    from streams.contracts.topics import DEADLETTER, FORECASTS, INCENTIVES, SETPOINTS, SETTLEMENTS

    settings = run_settings(inputs)
    run: dict[str, Any] = {"loop": "closed"}
    if in_process:
        echo("closed loop in-process: charger twins answer the setpoints")
        cl = run_closed_loop(inputs, settings)
        run["engine"] = "in-process"
    else:
        from streams.backtest.brokerloop import BrokerPipeline
        from streams.cli.preflight import require_broker
        from streams.settings import Settings

        base = Settings()
        require_broker(base)
        echo("closed loop through the broker: charger twins answer the setpoints of one worker, in lockstep")
        with BrokerPipeline(inputs, base, keep_topics=keep_topics, log=echo) as pipe:
            cl = run_closed_loop(inputs, settings, pipeline=pipe)
        run.update({"engine": "broker", "prefix": pipe.prefix, "topics_kept": keep_topics,
                    "lockstep_syncs": pipe.syncs, "lockstep_wait_s": round(pipe.wait_s, 2),
                    "worker_peak_rss_mb": pipe.worker_rss_mb})
    t_rep = time.perf_counter()
    o = cl.outputs
    run.update({"telemetry": cl.telemetry, "rounds": cl.rounds,
                "worker": {"accepted": dict(cl.accepted), "rejected": cl.rejected},
                "seconds": {"pipeline": round(t_rep - t0, 2)}})
    rep = compute_report(inputs, setpoints=o.get(SETPOINTS, []), forecasts=o.get(FORECASTS, []),
                         incentives=o.get(INCENTIVES, []), settlements=o.get(SETTLEMENTS, []),
                         deadletters=o.get(DEADLETTER, []), settings=settings, run=run, optimum=optimum, twins=cl)
    return _finish(rep, o.get(SETPOINTS, []), json_out, html_out, setpoints_out, echo, t0, t_rep, curves_out)


VERSIONED = ("evgrid", "highspy", "river", "numpy", "scipy", "pandas")
"""Distributions whose version can move a backtest's figures (the solver picks among equal-cost plans)."""


def engine_versions() -> dict[str, str]:
    """Python's and :data:`VERSIONED`'s versions, for the report's ``run.versions`` (``?``: not installed)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "?"
    return out


def _finish(rep: Any, setpoints: Any, json_out: Path | None, html_out: Path | None, setpoints_out: Path | None,
            echo: Any, t0: float, t_rep: float, curves_out: Path | None = None) -> dict[str, Any]:
    from streams.backtest.curves import write_curves_csv
    from streams.backtest.report import write_setpoints_csv
    from streams.backtest.report_html import render_page

    rep.figures["run"]["seconds"]["report"] = round(time.perf_counter() - t_rep, 2)
    rep.figures["run"]["seconds"]["wall"] = round(time.perf_counter() - t0, 2)
    rep.figures["run"]["versions"] = engine_versions()
    if json_out is not None:
        json_out.write_text(json.dumps(rep.figures, indent=1, default=str))
    if html_out is not None:
        html_out.write_text(render_page(rep))
    if setpoints_out is not None:
        write_setpoints_csv(setpoints, setpoints_out)
    if curves_out is not None:
        write_curves_csv(rep, curves_out)
    t = rep.figures["total"]
    opt = "not computed" if t["optimal_peak_kw"] is None else t["optimal_peak_kw"]
    echo(f"peak {t['peak_kw']} kW (uncontrolled {t['uncontrolled_peak_kw']}, optimum {opt}); "
         f"delivered {t['energy_delivered_pct']} % of requested ({t['energy_delivered_pct_of_deliverable']} % of "
         f"deliverable); V2G {t['v2g_exported_kwh']} kWh; limit violation {t['limit_violation_kwh']} kWh; "
         f"safety violations {t['safety_violations']}; wall {rep.figures['run']['seconds']['wall']} s")
    return rep.figures


def register(app: typer.Typer) -> None:
    """Add ``evgrid backtest`` to ``app``."""

    @app.command("backtest")
    def backtest(
        scenario: Annotated[Path | None, typer.Argument(help="Scenario YAML (see scenarios/).")] = None,
        sessions: Annotated[Path | None, typer.Option(help="ACN-Data-style sessions CSV (one feeder).")] = None,
        load: Annotated[Path | None, typer.Option(help="Feeder load CSV/Parquet (timestamp,kw).")] = None,
        weather: Annotated[Path | None, typer.Option(help="Weather CSV or TMY3 file.")] = None,
        weather_year: Annotated[int | None, typer.Option(help="Year a TMY3 file is mapped onto.")] = None,
        step: Annotated[str | None, typer.Option(help="Planning step, e.g. 5m (default: scenario's, else 5m).")
                        ] = None,
        import_limit_kw: Annotated[float | None, typer.Option(help="Feeder import limit, kW.")] = None,
        export_limit_kw: Annotated[float | None, typer.Option(help="Feeder export limit, kW.")] = None,
        json_out: Annotated[Path | None, typer.Option("--json", help="Write the figures here.")] = None,
        html_out: Annotated[Path | None, typer.Option("--html", help="Write the HTML report here.")] = None,
        setpoints_out: Annotated[Path | None, typer.Option("--setpoints", help="Write every setpoint (CSV).")
                                 ] = None,
        curves_out: Annotated[Path | None, typer.Option("--curves", help="Write the load curves per feeder and "
                                                        "step: base, controlled, uncontrolled, limits, optimum (CSV; "
                                                        "read by `evgrid report nwa`).")] = None,
        keep_topics: Annotated[bool, typer.Option(help="Keep the run's topic namespace.")] = False,
        sets: Annotated[list[str] | None, typer.Option("--set", help="Setting override NAME=VALUE (repeatable).")
                        ] = None,
        optimum: Annotated[bool, typer.Option(help="Compute the perfect-foresight optimum (one LP).")] = True,
        in_process: Annotated[bool, typer.Option(
            "--in-process", help="Run the worker's code in this process, without a Kafka broker.")] = False,
        open_loop: Annotated[bool, typer.Option(help="Replay the recorded telemetry through the broker and a "
                                                     "worker (default: closed loop, twins answer setpoints).")
                             ] = False,
    ) -> None:
        """Run history through the pipeline's code and score what control did.

        Closed loop (default): charger and car twins plug in, answer every setpoint and report telemetry,
        through the real broker and one worker subprocess in lockstep (--in-process: through the worker's code
        in this process). --open-loop: replay the recorded telemetry through the real
        broker and one worker subprocess (or, with --in-process, the worker's code in this process).
        Input formats (columns, units): docs/backtest.md.
        """
        exit_on_sigterm()  # the worker subprocess is stopped and the run's topics deleted
        run_backtest_cli(scenario, sessions, load, weather, weather_year, step, import_limit_kw, export_limit_kw,
                         json_out, html_out, setpoints_out, keep_topics, sets or [], optimum, in_process=in_process,
                         open_loop=open_loop, curves_out=curves_out)


if __name__ == "__main__":
    _app = typer.Typer(add_completion=False)
    register(_app)

    @_app.callback()
    def _main() -> None:
        """evgrid backtest (standalone)."""

    _app()
