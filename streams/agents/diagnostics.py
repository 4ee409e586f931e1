"""Where a stalled worker is: ``kill -USR1`` prints every thread's stack (works even when the event loop is
blocked), ``kill -USR2`` every asyncio task's (when the loop runs but a task waits for ever). Both go to stderr."""

from __future__ import annotations

import asyncio
import faulthandler
import signal
import sys
from typing import TextIO

__all__ = ["install_stack_dumps", "print_tasks"]


def print_tasks(file: TextIO | None = None) -> None:
    """Print the stack of every task of the running loop (to the process's stderr: faust wraps ``sys.stderr``)."""
    out = file or sys.__stderr__
    if out is None:
        return
    tasks = asyncio.all_tasks()
    print(f"--- {len(tasks)} asyncio tasks ---", file=out)
    for task in sorted(tasks, key=lambda t: t.get_name()):
        task.print_stack(limit=12, file=out)
    out.flush()


def install_stack_dumps(loop: asyncio.AbstractEventLoop) -> None:
    """SIGUSR1: thread stacks (from C, the loop may be stuck); SIGUSR2: task stacks (run by ``loop``)."""
    faulthandler.register(signal.SIGUSR1, file=2, all_threads=True)  # fd 2: faust wraps sys.stderr
    loop.add_signal_handler(signal.SIGUSR2, print_tasks)
