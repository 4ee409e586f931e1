"""Kafka libraries are imported in two places only: ``streams/kafka/`` and the faust worker app (``streams/agents/``).

confluent-kafka and aiokafka only in ``streams/kafka/``; faust also in ``streams/agents/`` (the app wiring).
"""

from __future__ import annotations

import ast
from pathlib import Path

STREAMS = Path(__file__).resolve().parents[3] / "streams"
CLIENTS = ("confluent_kafka", "aiokafka", "kafka")
FAUST = ("faust", "mode")
ALLOWED = {"kafka": CLIENTS + FAUST, "agents": FAUST}
"""Top-level package under ``streams/`` → the libraries it may import."""


def kafka_imports(source: str) -> set[str]:
    """The Kafka libraries ``source`` imports (anywhere, including inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
        found.update(root for name in names if (root := name.split(".")[0]) in CLIENTS + FAUST)
    return found


def violations(root: Path) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        allowed = ALLOWED.get(rel.parts[0], ()) if len(rel.parts) > 1 else ()
        for lib in sorted(kafka_imports(path.read_text()) - set(allowed)):
            out.append(f"{rel}: imports {lib}")
    return out


def test_kafka_libraries_are_imported_only_at_the_edge() -> None:
    assert not violations(STREAMS), "use streams.kafka instead:\n" + "\n".join(violations(STREAMS))


def test_the_scan_finds_imports_wherever_they_are(tmp_path: Path) -> None:
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "a.py").write_text("def f():\n    from confluent_kafka.admin import AdminClient\n")
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "b.py").write_text("import faust\nimport aiokafka.errors\n")
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "c.py").write_text("import confluent_kafka, faust\nfrom aiokafka import X\n")
    (tmp_path / "top.py").write_text("import kafka\nfrom streams.kafka import clients\nfrom . import kafka_io\n")
    assert violations(tmp_path) == ["agents/b.py: imports aiokafka", "pipeline/a.py: imports confluent_kafka",
                                    "top.py: imports kafka"]


def test_the_scan_sees_the_edge_itself() -> None:
    assert {"confluent_kafka", "aiokafka", "faust"} <= set().union(
        *(kafka_imports(p.read_text()) for p in (STREAMS / "kafka").glob("*.py")))
