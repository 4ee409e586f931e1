"""The import layers hold (``[tool.importlinter]`` in pyproject.toml: cli > edge > pipeline > ingest | forecasting |
dispatch > contracts, and no environment or broker client in the core), and no two modules import each other."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[2]

PENDING_CIRCLES: list[set[str]] = []


def test_import_contracts_are_kept() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(no_cache=True, no_logo=True))",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout and "KEPT" in proc.stdout, proc.stdout


def _circles(graph: grimp.ImportGraph) -> list[set[str]]:
    """Strongly connected groups of more than one module (Tarjan), ignoring a package's import of its own
    submodules (``__init__`` re-exports)."""
    modules = sorted(graph.modules)
    edges = {
        m: {t for t in graph.find_modules_directly_imported_by(m) if t in graph.modules and not t.startswith(m + ".")}
        for m in modules
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(group)

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for m in modules:
        if m not in index:
            visit(m)
    return out


def test_no_import_circles_between_modules() -> None:
    sys.path.insert(0, str(REPO))
    try:
        graph = grimp.build_graph("streams", cache_dir=None)
    finally:
        sys.path.remove(str(REPO))
    circles = [c for c in _circles(graph) if c not in PENDING_CIRCLES]
    assert not circles, circles


def test_the_circle_finder_finds_a_circle() -> None:
    graph = grimp.ImportGraph()
    for m in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(m)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.a")
    graph.add_import(importer="p.c", imported="p.a")
    graph.add_import(importer="p", imported="p.c")  # a package re-exporting its submodule is not a circle
    assert _circles(graph) == [{"p.a", "p.b"}]
