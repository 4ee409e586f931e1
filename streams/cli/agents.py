"""``evgrid topics create`` and ``evgrid worker``."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    topics_app = typer.Typer(no_args_is_help=True, help="Manage evgrid's Kafka topics.")

    @topics_app.command("create")
    def create() -> None:
        """Create all topics (partitions, cleanup policy, retention from the topic table); idempotent."""
        from streams.cli.preflight import require_broker
        from streams.kafka.admin import create_topics
        from streams.settings import Settings

        require_broker()
        for name, state in sorted(create_topics(Settings()).items()):
            typer.echo(f"{state:8} {name}")

    @app.command("worker")
    def worker(loglevel: str = typer.Option("warning", help="faust log level")) -> None:
        """Run one stream-processing worker (faust) until interrupted (``kill -USR1`` / ``-USR2`` print every
        thread's / task's stack)."""
        from streams.agents.app import create_app, tune_gc
        from streams.agents.runner import run
        from streams.cli.preflight import quiet_solver_banner, require_broker
        from streams.settings import Settings

        require_broker()
        quiet_solver_banner()
        app = create_app()
        tune_gc(Settings().gc_gen0_threshold)
        run(app, loglevel)

    @app.command("demo")
    def demo(
        feeders: int = typer.Option(3, help="simulated feeders"),
        homes: int = typer.Option(40, help="homes per feeder"),
        chargers: int = typer.Option(15, help="EV chargers per feeder"),
        hours: float = typer.Option(12.0, help="hours of event time, ending now"),
        bad_rate: float = typer.Option(0.01, help="share of bad messages injected"),
        seed: int = typer.Option(42, help="simulator seed"),
    ) -> None:
        """Start Kafka and InfluxDB, create topics, run a worker and the simulator, print what happened."""
        from streams.agents.demo import run_demo
        from streams.cli.stopping import exit_on_sigterm

        exit_on_sigterm()  # the demo's worker subprocess is stopped on the way out
        run_demo(feeders, homes, chargers, hours, bad_rate, seed)

    app.add_typer(topics_app, name="topics")
