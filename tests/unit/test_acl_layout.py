"""The ACL layout (streams/acls.py) implies exactly the access matrix of docs/security.md, namespaces are
isolated, and each source writes only its own topics. The broker's agreement: tests/integration/test_security.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams import acls
from streams.contracts.topics import METER_READINGS, TOPICS

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def doc_matrix() -> dict[tuple[str, str], str]:
    table = DOC.read_text().split("<!-- access-matrix", 1)[1].split("\n\n", 1)[1].split("\n\n", 1)[0]
    rows = [[c.strip().strip("`") for c in line.strip().strip("|").split("|")] for line in table.splitlines()]
    header, body = rows[0], rows[2:]
    return {(p, row[0]): {"–": "-"}.get(cell, cell) for row in body for p, cell in zip(header[1:], row[1:],
                                                                                       strict=True)}


def columns(prefix: str = "", sandbox: str = acls.SANDBOX) -> dict[str, str]:
    cols = {t: prefix + t for t in (*acls.INPUTS, *acls.OUTPUTS)}
    cols["<app>-feeder-state-changelog"] = acls.changelog_topic(prefix)
    cols["bt-…"] = f"{sandbox}x.{METER_READINGS}"
    return cols


@pytest.mark.parametrize("prefix", ["", "site7."])
def test_layout_implies_the_documented_matrix(prefix: str) -> None:
    cols = columns(prefix)
    got = acls.access_matrix(acls.layout(prefix), list(cols.values()))
    assert {(p, c): got[p, t] for p in acls.PRINCIPALS for c, t in cols.items()} == doc_matrix()


def test_matrix_covers_every_topic_and_principal() -> None:
    doc = doc_matrix()
    assert {c for _, c in doc} >= set(TOPICS)
    assert {p for p, _ in doc} == set(acls.PRINCIPALS)


def test_each_input_has_exactly_one_writer_and_only_the_worker_writes_outputs_and_changelog() -> None:
    grants = acls.layout()
    for topic in (*acls.INPUTS, *acls.OUTPUTS, acls.changelog_topic()):
        writers = [p for p in acls.PRINCIPALS if acls.allowed(grants, p, "topic", topic, "Write")]
        if topic in acls.INPUTS:
            assert len(writers) == 1 and writers[0] != "evgrid-worker", (topic, writers)
        else:
            assert writers == ["evgrid-worker"], (topic, writers)


def test_namespaces_are_isolated() -> None:
    """A namespace's grants give nothing on live topics, and live grants nothing in a namespace or the sandbox."""
    live, ns = acls.layout(""), acls.layout("replay1.")
    names = [*TOPICS, acls.changelog_topic()]
    for p in acls.PRINCIPALS:
        for t in names:
            for op in ("Read", "Write", "Create", "Delete"):
                assert not acls.allowed(ns, p, "topic", t, op), (p, t, op)
                assert not acls.allowed(live, p, "topic", f"replay1.{t}", op), (p, t, op)
                assert acls.allowed(live, p, "topic", f"bt-1.{t}", op) == (p == "evgrid-backtest"), (p, t, op)
    # the sandbox principal has nothing outside its prefix
    assert not any(acls.allowed(live, "evgrid-backtest", r, n, op) for r, n in (("topic", METER_READINGS),
                   ("group", "evgrid"), ("topic", "b-x")) for op in ("Read", "Write", "Create", "Delete"))


def test_allowed_matches_literal_and_prefixed_like_kafka() -> None:
    g = [acls.Grant("u", "topic", "a.b", "Read"), acls.Grant("u", "topic", "x-", "Write", prefixed=True)]
    assert acls.allowed(g, "u", "topic", "a.b", "Read")
    assert not acls.allowed(g, "u", "topic", "a.bc", "Read")  # literal is exact
    assert not acls.allowed(g, "u", "topic", "a.b", "Write")  # Read does not imply Write
    assert acls.allowed(g, "u", "topic", "x-anything", "Write") and not acls.allowed(g, "u", "topic", "x", "Write")
    assert acls.allowed(g, "u", "topic", "a.b", "Describe")  # Read/Write imply Describe
    assert not acls.allowed(g, "v", "topic", "a.b", "Read") and not acls.allowed(g, "u", "group", "a.b", "Read")
