"""``evgrid record``, ``evgrid replay`` and ``evgrid import acn|meters|weather|scenario``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from streams.contracts.timeparse import iso_utc, parse_duration_ms
from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, GRID_SIGNALS, METER_READINGS, WEATHER
from streams.replay.files import HistoryRecord, write_history
from streams.settings import Settings

__all__ = ["INPUT_TOPICS", "register"]

INPUT_TOPICS = (METER_READINGS, CHARGER_TELEMETRY, CHARGER_REGISTRY, WEATHER, GRID_SIGNALS)
"""What ``evgrid record inputs`` records: every topic the pipeline consumes."""

_console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=_console, transient=False)


def record_cmd(
    topics: Annotated[list[str], typer.Argument(help="Topics without prefix, or 'inputs' for all input topics.")],
    out: Annotated[Path, typer.Option("--out", help="Recording directory (created; resumable).")],
    from_beginning: Annotated[bool, typer.Option(help="Start new partitions at their earliest offset.")] = False,
    until_end: Annotated[bool, typer.Option(help="Stop at the end offsets seen at start.")] = False,
    prefix: Annotated[str | None, typer.Option(help="Topic prefix (default EVGRID_TOPIC_PREFIX).")] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    idle_seconds: Annotated[float | None, typer.Option(help="Stop after this long without records.")] = None,
) -> None:
    """Capture topics to Avro files in OUT with keys, timestamps, partitions and offsets (resumable)."""
    from streams.cli.preflight import require_broker
    from streams.kafka.clients import KafkaException
    from streams.replay.recorder import record_topics

    require_broker()
    names = [t for name in topics for t in (INPUT_TOPICS if name == "inputs" else (name,))]
    with _progress() as bar:
        task = bar.add_task("recording", total=None, rate="")

        def step(n: int, total: int | None) -> None:
            bar.update(task, advance=n, total=total)

        try:
            summary = record_topics(names, out, Settings(), prefix=prefix, from_beginning=from_beginning,
                                    until_end=until_end, max_seconds=max_seconds, idle_seconds=idle_seconds,
                                    progress=step, missing_ok="inputs" in topics)
        except KafkaException as exc:
            _console.print(f"[red]record failed: {exc}")
            raise typer.Exit(2) from exc
    typer.echo(json.dumps({"records": summary.records, "per_topic": summary.per_topic,
                           "seconds": round(summary.seconds, 2), "reached_end": summary.reached_end,
                           "next_offsets": summary.end_offsets, "missing_topics": summary.missing,
                           "out": str(out)}, indent=1))


def replay_cmd(
    files: Annotated[list[Path], typer.Argument(help="History files or recording directories.")],
    speed: Annotated[float | None, typer.Option(help="Event time runs X times faster than real time.")] = None,
    prefix: Annotated[str | None, typer.Option(help="Target topic prefix (default EVGRID_TOPIC_PREFIX).")] = None,
    keep_partitions: Annotated[bool, typer.Option(help="Send recorded records to their recorded partition.")
                               ] = False,
    create_topics: Annotated[bool, typer.Option(help="Create missing target topics (unlimited retention).")
                             ] = True,
) -> None:
    """Produce history back into its topics: original keys, event timestamps and per-key order."""
    from streams.replay.replayer import replay_sources
    from streams.replay.state import chunk_streams

    sources = chunk_streams(files)
    if not sources:
        raise typer.BadParameter("no history files found")
    _check_history_files([p for stream in sources for p in stream])
    settings = Settings()
    from streams.cli.preflight import require_broker

    require_broker(settings)
    with _progress() as bar:
        task = bar.add_task("replaying", total=None, rate="")
        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            elapsed = bar.tasks[task].elapsed or 0.0
            bar.update(task, advance=n, rate=f"{done / elapsed:,.0f} rec/s" if elapsed > 0 else "")

        summary = replay_sources(sources, settings, prefix=prefix, speed=speed, keep_partitions=keep_partitions,
                                 create_topics=create_topics, progress=step)
    out: dict[str, Any] = summary.to_dict()
    out["prefix"] = settings.topic_prefix if prefix is None else prefix
    if summary.min_event_ms is not None and summary.max_event_ms is not None:
        out["event_time"] = [iso_utc(summary.min_event_ms), iso_utc(summary.max_event_ms)]
    _console.print(f"replayed {summary.records:,} records in {summary.seconds:.2f} s "
                   f"({summary.rate:,.0f} rec/s), event time {out.get('event_time', '-')}")
    typer.echo(json.dumps(out, indent=1))


AVRO_MAGIC = b"Obj\x01"


def _check_history_files(paths: list[Path]) -> None:
    """Raise ``InputError`` naming the first path that is missing or not an Avro history file."""
    from streams.cli.errors import InputError

    for p in paths:
        if not p.exists():
            raise InputError(f"{p}: no such file or recording directory")
        with open(p, "rb") as fh:
            if fh.read(4) != AVRO_MAGIC:
                raise InputError(f"{p}: not a recording or history file (expected Avro written by `evgrid record` "
                                 "or `evgrid import`; a CSV goes through `evgrid import` first)")


import_app = typer.Typer(no_args_is_help=True, help="Import engineers' files into replayable history files.")


def _write(records: list[HistoryRecord], out: Path, source: str) -> None:
    if not records:
        from streams.cli.errors import InputError

        raise InputError(f"{source.rsplit(':', 1)[-1]}: no records in the file (only a header? see "
                         "`evgrid import --help` for the columns); nothing written")
    out.parent.mkdir(parents=True, exist_ok=True)
    n = write_history(out, records, metadata={"evgrid.source": source})
    span = f"{iso_utc(records[0].timestamp)} .. {iso_utc(records[-1].timestamp)}" if records else "-"
    counts: dict[str, int] = {}
    for r in records:
        counts[r.topic] = counts.get(r.topic, 0) + 1
    typer.echo(json.dumps({"out": str(out), "records": n, "per_topic": counts, "event_time": span}, indent=1))


@import_app.command("acn")
def import_acn_cmd(
    input: Annotated[Path, typer.Argument(help="ACN-Data-style sessions CSV.", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="History file to write (.avro).")],
    feeder_id: Annotated[str, typer.Option(help="Feeder of rows without a feeder_id column.")] = "feeder-1",
    step: Annotated[str, typer.Option(help="Heartbeat period while connected (e.g. 5m).")] = "5m",
    heartbeats: Annotated[bool, typer.Option(help="Connected heartbeats between plug-in and plug-out.")] = True,
    meter_kw: Annotated[float | None, typer.Option(help="Also emit a constant feeder-head load, kW.")] = None,
) -> None:
    """EV sessions → charger registrations + plug-in/heartbeat/plug-out telemetry."""
    from streams.replay.importers import import_acn

    records = import_acn(input, feeder_id=feeder_id, step_ms=parse_duration_ms(step), heartbeats=heartbeats,
                         meter_kw=meter_kw)
    _write(records, out, f"import:acn:{input.name}")


@import_app.command("meters")
def import_meters_cmd(
    input: Annotated[Path, typer.Argument(help="Meter CSV or Parquet.", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="History file to write (.avro).")],
    feeder_id: Annotated[str, typer.Option(help="Feeder when the file has no feeder_id column.")] = "feeder-1",
) -> None:
    """Meter readings (timestamp,kw or timestamp,meter_id,feeder_id,kw; timestamp = start of the period the value
    averages over) → MeterReading records, stamped at the period's end (start + the meter's usual spacing)."""
    from streams.replay.importers import import_meters

    _write(import_meters(input, feeder_id=feeder_id), out, f"import:meters:{input.name}")


@import_app.command("weather")
def import_weather_cmd(
    input: Annotated[Path, typer.Argument(help="Weather CSV or TMY3 file.", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="History file to write (.avro).")],
    station_id: Annotated[str | None, typer.Option(help="Station id (default weather-1 / tmy3-<USAF>).")] = None,
    year: Annotated[int | None, typer.Option(help="Year a TMY3 file is mapped onto.")] = None,
) -> None:
    """Weather observations (CSV or TMY3) → WeatherObservation records."""
    from streams.replay.importers import import_weather

    _write(import_weather(input, station_id=station_id, year=year), out, f"import:weather:{input.name}")


@import_app.command("scenario")
def import_scenario_cmd(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML.", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="Directory for one history file per input.")],
) -> None:
    """A scenario's file inputs and grid signals → OUT/<input>.avro (simulator inputs are not generated)."""
    from streams.replay.scenario import load_scenario, scenario_records

    sc = load_scenario(scenario)
    for name, records in scenario_records(sc).items():
        _write(records, out / f"{name}.avro", f"scenario:{sc.name}:{name}")


def register(app: typer.Typer) -> None:
    """Add ``record``, ``replay`` and the ``import`` group to the evgrid CLI."""
    app.command("record")(record_cmd)
    app.command("replay")(replay_cmd)
    app.add_typer(import_app, name="import")
