"""``evgrid topics create`` and ``evgrid worker``."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    topics_app = typer.Typer(no_args_is_help=True, help="Manage evgrid's Kafka topics.")

    @topics_app.command("create")
    def create() -> None:
        """Create all topics (partitions, cleanup policy, retention from the topic table); idempotent."""
        from streams.agents.topics import create_topics
        from streams.settings import Settings

        for name, state in sorted(create_topics(Settings()).items()):
            typer.echo(f"{state:8} {name}")

    @app.command("worker")
    def worker(loglevel: str = typer.Option("warning", help="faust log level")) -> None:
        """Run one stream-processing worker (faust) until interrupted."""
        from faust import Worker

        from streams.agents.app import create_app

        Worker(create_app(), loglevel=loglevel, quiet=True).execute_from_commandline()

    app.add_typer(topics_app, name="topics")
