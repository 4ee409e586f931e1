"""The backtest's load curves as CSV (``evgrid backtest --curves``), read back by ``evgrid report nwa``. Pure I/O.

One row per feeder and step: ``start`` (UTC ISO 8601, the step's start), ``feeder``, ``step_minutes``, and kW
averaged over the step: ``base_kw`` (feeder load without the fleet), ``controlled_kw`` (base + the fleet as
controlled), ``uncontrolled_kw`` (base + the fleet charging at full power on arrival), ``import_limit_kw`` and
``export_limit_kw`` (the limits in force, export as a positive bound; empty = none) and ``optimal_kw`` (base +
the fleet as the perfect-foresight optimum plans it; empty when the backtest ran with ``--no-optimum``). Files
written before ``optimal_kw`` (eight columns) are read too, their ``optimal_kw`` as NaN.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["COLUMNS", "Curves", "read_curves_csv", "write_curves_csv"]

COLUMNS = ("start", "feeder", "step_minutes", "base_kw", "controlled_kw", "uncontrolled_kw", "import_limit_kw",
           "export_limit_kw", "optimal_kw")
KW = COLUMNS[3:]
_LIMITS = ("import_limit_kw", "export_limit_kw")  # empty = no limit (inf); any other empty cell is NaN

Curves = dict[str, dict[str, np.ndarray]]
"""Per feeder: ``start_ms`` (int64) and every kW column of :data:`COLUMNS`."""


def _cell(x: float) -> str:
    return f"{x:.4f}" if math.isfinite(x) else ""


def write_curves_csv(report: Any, path: str | Path) -> int:
    """Write the per-feeder curves of a :class:`streams.backtest.report.Report`; returns the rows written."""
    from streams.backtest.report import iso

    grid = report.grid
    starts = grid.edges[:-1]
    rows = 0
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for feeder, c in sorted(report.curves.items()):
            if feeder == "total":
                continue
            exp = _export_limits(report, feeder)
            opt = c["optimal"] if _has_optimum(report, feeder) else np.full(grid.n, math.nan)
            for i, t in enumerate(starts):
                w.writerow([iso(int(t)), feeder, grid.step_ms // 60_000, _cell(c["base"][i]), _cell(c["controlled"][i]),
                            _cell(c["uncontrolled"][i]), _cell(c["import_limit"][i]), _cell(exp[i]), _cell(opt[i])])
                rows += 1
    return rows


def _has_optimum(report: Any, feeder: str) -> bool:
    """Whether the optimum was computed for ``feeder`` (``--no-optimum`` leaves its delivered energy NaN)."""
    delivered = report.figures.get("feeders", {}).get(feeder, {}).get("optimal_energy_delivered_kwh")
    return isinstance(delivered, (int, float)) and math.isfinite(delivered)


def _export_limits(report: Any, feeder: str) -> np.ndarray:
    from streams.backtest.metrics import limit_profile

    inputs = report.inputs
    _, exp = limit_profile(report.grid, inputs.import_limit_kw, inputs.export_limit_kw, inputs.signals, feeder)
    return exp


def read_curves_csv(path: str | Path) -> tuple[Curves, int]:
    """The curves of a ``--curves`` file and its step (ms). Raises ``ValueError`` naming the line on bad input."""
    from streams.contracts.timeparse import parse_timestamp_ms

    rows: dict[str, list[list[float]]] = {}
    step_ms = None
    with open(path, newline="") as fh:
        r = csv.reader(fh)
        header = next(r, None)
        if header is None or tuple(header) not in (COLUMNS, COLUMNS[:-1]):
            raise ValueError(f"{path}: line 1: expected the columns {','.join(COLUMNS)}")
        width = len(header)
        for n, row in enumerate(r, start=2):
            try:
                if len(row) != width:
                    raise ValueError(f"{len(row)} cells, the header has {width}")
                start = parse_timestamp_ms(row[0])
                step = int(row[2]) * 60_000
                cells = row[3:] + [""] * (len(COLUMNS) - width)
                vals = [float(x) if x else (math.inf if k in _LIMITS else math.nan)
                        for k, x in zip(KW, cells, strict=True)]
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{path}: line {n}: {exc}") from None
            if (step_ms is not None and step != step_ms) or step <= 0:
                raise ValueError(f"{path}: line {n}: step_minutes {row[2]} differs from the file's")
            step_ms = step
            rows.setdefault(row[1], []).append([float(start), *vals])
    if not rows or step_ms is None:
        raise ValueError(f"{path}: no rows")
    out: Curves = {}
    for feeder, table in rows.items():
        a = np.array(sorted(table))
        out[feeder] = {"start_ms": a[:, 0].astype(np.int64), **{k: a[:, j + 1] for j, k in enumerate(KW)}}
    return out, step_ms
