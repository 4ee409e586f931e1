"""``evgrid simulate``: produce a realistic, deterministic stream to the input topics."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from streams.contracts.topics import CHARGER_TELEMETRY, METER_READINGS, TOPICS, WEATHER, topic_name
from streams.settings import Settings
from streams.simulate.bad import ALL_KINDS
from streams.simulate.config import SimConfig
from streams.simulate.produce import RunResult, TopicsMissing, run_simulation

__all__ = ["parse_start", "register"]


def parse_start(text: str, now_ms: int | None = None) -> int:
    """``2026-01-05T00:00Z`` (any ISO 8601; naive = UTC) or ``now`` (floored to 15 min) → UTC epoch ms."""
    if text.strip().lower() == "now":
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return now - now % 900_000
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def _print_summary(console: Console, result: RunResult, prefix: str) -> None:
    s = result.summary
    table = Table(title="simulated messages" + (" (dry run)" if result.dry_run else ""))
    table.add_column("topic")
    table.add_column("messages", justify="right")
    for topic, n in sorted(s.per_topic.items()):
        table.add_row(topic_name(topic, prefix), str(n))
    table.add_row("[bold]total[/]", f"[bold]{s.total}[/]")
    console.print(table)
    if s.bad_total:
        bad = Table(title=f"injected bad messages ({s.bad_total})")
        bad.add_column("reason code")
        bad.add_column("kinds")
        bad.add_column("count", justify="right")
        for reason, n in sorted(s.bad_per_reason.items()):
            kinds = ", ".join(sorted(k for k in s.bad_per_kind if k in _kinds_of(reason)))
            bad.add_row(reason, kinds, str(n))
        console.print(bad)
    if s.first_ts is not None and s.last_ts is not None:
        span_h = (s.last_ts - s.first_ts) / 3_600_000
        first, last = (datetime.fromtimestamp(t / 1000, UTC) for t in (s.first_ts, s.last_ts))
        console.print(f"event time {first:%Y-%m-%dT%H:%MZ} .. {last:%Y-%m-%dT%H:%MZ} ({span_h:.2f} h)")
    console.print(f"{s.total} messages, {s.bytes / 1e6:.2f} MB in {result.wall_seconds:.2f} s "
                  f"= {result.rate:,.0f} msgs/s")
    if not result.dry_run:
        d = result.delivery
        console.print(f"delivered {d.delivered}, failed {d.failed}" + (f" {dict(d.errors)}" if d.failed else ""))


def _kinds_of(reason: str) -> set[str]:
    from streams.simulate.bad import KIND_REASON

    return {k for k, r in KIND_REASON.items() if r == reason}


def register(app: typer.Typer) -> None:
    """Add ``evgrid simulate`` to the CLI."""

    @app.command("simulate")
    def simulate_cmd(
        feeders: int = typer.Option(3, help="Number of feeders."),
        homes: int = typer.Option(50, help="Households (meters) per feeder."),
        chargers: int = typer.Option(20, help="Home EV chargers per feeder."),
        hours: float = typer.Option(24.0, help="Event-time length of the run, hours."),
        start: str = typer.Option("2026-01-05T00:00Z", help="First event time, ISO 8601 (UTC if no offset) or 'now'."),
        seed: int = typer.Option(42, help="Random seed; the same seed gives a byte-identical stream."),
        speed: float = typer.Option(0.0, help="0 = as fast as possible; X = X times real time."),
        bad_rate: float = typer.Option(0.0, help="Share of injected bad messages (0-0.5)."),
        bad_kinds: str = typer.Option("", help=f"Comma-separated bad kinds (default all: {','.join(ALL_KINDS)})."),
        telemetry_seconds: int = typer.Option(60, help="Charger telemetry period while connected, s."),
        meter_interval_seconds: int = typer.Option(900, help="Meter reading interval, s."),
        pv_share: float = typer.Option(0.3, help="Share of homes with PV."),
        bidirectional_share: float = typer.Option(0.4, help="Share of bidirectional chargers."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Do not produce to Kafka."),
        out: Annotated[Path | None, typer.Option("--out", help="Also write every message as JSON lines.")] = None,
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
        follow_setpoints: bool = typer.Option(False, "--follow-setpoints",
                                              help="Chargers answer the pipeline's setpoints (read from the "
                                                   "namespace's setpoints topic); use with --speed."),
    ) -> None:
        """Produce realistic meter, charger and weather streams (deterministic for a seed) to the input topics."""
        settings = Settings()
        kinds = tuple(k.strip() for k in bad_kinds.split(",") if k.strip())
        unknown = [k for k in kinds if k not in ALL_KINDS]
        if unknown:
            raise typer.BadParameter(f"unknown bad kinds {unknown}; known: {', '.join(ALL_KINDS)}")
        try:
            cfg = SimConfig(
                feeders=feeders, homes=homes, chargers=chargers, hours=hours, start_ms=parse_start(start),
                seed=seed, bad_rate=bad_rate, bad_kinds=kinds, telemetry_s=telemetry_seconds,
                meter_interval_s=meter_interval_seconds, pv_share=pv_share,
                bidirectional_share=bidirectional_share, timezone=settings.local_timezone,
                latitude=settings.sim_latitude, longitude=settings.sim_longitude,
                acn_path=settings.sim_acn_sessions_path,
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        console = Console(stderr=True)
        if not dry_run:
            from streams.cli.preflight import require_broker

            require_broker(settings)
        retention_ms = min(TOPICS[t].retention_ms for t in (METER_READINGS, CHARGER_TELEMETRY, WEATHER))
        keeps_forever = getattr(settings, "topic_retention_ms", None) is not None
        if not dry_run and not keeps_forever and cfg.end_ms < time.time() * 1000 - retention_ms:
            console.print(f"[yellow]warning:[/] the run's event time ends more than {retention_ms // 86_400_000} "
                          "days ago; the broker ages records by event time and will delete them within minutes "
                          "(use --start now, or topics created with EVGRID_TOPIC_RETENTION_MS=-1)")
        listener = None
        if follow_setpoints and not dry_run:
            from streams.simulate.follow import LatestSetpoints, SetpointListener

            store = LatestSetpoints(int(settings.setpoint_schedule_hours * 3_600_000))
            listener = SetpointListener(settings, store).start()
        try:
            result = run_simulation(settings, cfg, speed=speed, dry_run=dry_run, out=out, progress=not quiet,
                                    console=console, setpoint_fn=listener.store if listener else None)
        except TopicsMissing as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from exc
        finally:
            if listener is not None:
                listener.stop()
                console.print(f"setpoints received {listener.store.received} for {len(listener.store.latest)} "
                              "chargers")
        _print_summary(Console(), result, settings.topic_prefix)
        if result.delivery.failed:
            raise typer.Exit(1)
