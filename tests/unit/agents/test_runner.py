"""QuietWorker: the worker's log level holds (faust's spinner would set the root logger to DEBUG)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import faust
import pytest

from streams.agents.runner import QuietWorker


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    yield root
    root.setLevel(level)
    root.handlers[:] = handlers


@pytest.mark.parametrize(("worker", "debug"), [(faust.Worker, True), (QuietWorker, False)])
def test_debug_records_are_built_only_when_asked_for(root_logger: logging.Logger, worker: type[faust.Worker],
                                                     debug: bool) -> None:
    app = faust.App("evgrid-test-runner", broker="kafka://127.0.0.1:1")
    w = worker(app, loglevel="warning", quiet=True, redirect_stdouts=False)  # (pytest keeps its stdout)
    w._setup_logging()
    assert logging.getLogger("aiokafka.consumer.fetcher").isEnabledFor(logging.DEBUG) is debug
    assert logging.getLogger("streams").isEnabledFor(logging.WARNING)
