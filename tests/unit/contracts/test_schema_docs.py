"""A schema's doc names its topic and key as the topic table (``streams.contracts.topics``) has them, and calls
the topic compacted exactly when the table compacts it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from streams.contracts.topics import TOPICS

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
CURRENT = sorted(SCHEMAS.glob("*.avsc"))


def _topic_doc(path: Path) -> tuple[str, str] | None:
    doc = json.loads(path.read_text())["doc"]
    m = re.search(r"Topic (evgrid\.[a-z.-]+)([^,]*), key = ", doc)
    return (m.group(1), m.group(2)) if m else None


@pytest.mark.parametrize("path", CURRENT, ids=lambda p: p.stem)
def test_schema_doc_agrees_with_the_topic_table(path: Path) -> None:
    named = _topic_doc(path)
    if named is None:
        pytest.skip(f"{path.name} names no topic")
    topic, remark = named
    spec = TOPICS[topic]
    assert path.stem in (spec.record, *spec.also)
    says_compacted = "compacted" in remark and "not compacted" not in remark
    assert says_compacted == (spec.cleanup_policy == "compact"), (topic, remark, spec.cleanup_policy)


def test_some_schemas_name_their_topic() -> None:
    assert sum(_topic_doc(p) is not None for p in CURRENT) >= 5
