"""Running a faust app as a process: faust's worker without its progress spinner's DEBUG root logger."""

from __future__ import annotations

import logging

import faust

__all__ = ["QuietWorker", "run"]


class QuietWorker(faust.Worker):
    """faust's worker, minus the start-up spinner.

    The spinner's log handler sets the root logger to DEBUG, whatever ``loglevel`` says, so every debug call in
    aiokafka and faust builds a log record: about 8 % of a loaded worker's time (py-spy, 10,000 chargers).
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None


def run(app: faust.App, loglevel: str) -> None:
    """Run ``app`` until interrupted, logging at ``loglevel``."""
    QuietWorker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
