"""How a command that runs a worker subprocess stops: SIGTERM (``kill``, a scheduler's stop) unwinds like Ctrl-C.

Python's default for SIGTERM ends the process at once, skipping ``finally``: the command's worker subprocess would
run on, reparented, and what the command cleans up on the way out (a backtest's topics) would stay.
"""

from __future__ import annotations

import signal
import sys
import threading

__all__ = ["exit_on_sigterm"]


def exit_on_sigterm() -> None:
    """Make SIGTERM raise ``SystemExit(143)`` (128 + SIGTERM), so ``finally`` blocks run. Only the main thread may set
    a handler: elsewhere (a CLI called from a worker thread) this does nothing."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
