"""Named points where a test can stop a worker, to SIGKILL it exactly there (``EVGRID_FAILPOINT=NAME[:N]``).

At the N-th arrival at point ``NAME`` the worker writes ``failpoint-NAME`` (its pid) into its data directory and
sleeps; the test waits for that file and kills the process. With the setting empty a point costs one comparison.

Points: ``emit`` (half of a chunk's outputs sent), ``delivery`` (a checkpoint sent, its delivery not yet
confirmed, its inputs not acknowledged), ``acked`` (inputs acknowledged: faust may commit them meanwhile).
"""

from __future__ import annotations

import asyncio
import os

__all__ = ["Failpoints"]


class Failpoints:
    """The failpoint of ``spec`` (``NAME[:N]``, empty: none) for a worker whose data directory is ``data_dir``."""

    def __init__(self, spec: str, data_dir: str) -> None:
        name, _, nth = spec.partition(":")
        self.name, self.nth, self.data_dir, self.seen = name, int(nth or 1), data_dir, 0

    async def reach(self, name: str) -> None:
        """Stop here (for good) if this is the configured point's N-th arrival."""
        if name != self.name:
            return
        self.seen += 1
        if self.seen == self.nth:
            with open(os.path.join(self.data_dir, f"failpoint-{name}"), "w") as fh:
                fh.write(str(os.getpid()))
            while True:
                await asyncio.sleep(3600)
