"""Backtest: run history through the real pipeline (broker + worker) and score what it emitted.

Pure modules: :mod:`metrics` (charger simulation from setpoints, references, safety audit, figures),
:mod:`inputs` (scenario / flags → history records and the sessions to score against), :mod:`report`
(JSON, HTML, setpoints CSV). The Kafka side lives in :mod:`orchestrator`; the CLI in :mod:`commands`.
"""

__all__: list[str] = []
