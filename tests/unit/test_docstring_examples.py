"""The examples in docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import streams

FINDER = doctest.DocTestFinder()


def _examples(name: str) -> int:
    return sum(len(t.examples) for t in FINDER.find(importlib.import_module(name)))


ALL = sorted(m.name for m in pkgutil.walk_packages(streams.__path__, "streams."))
WITH_EXAMPLES = [name for name in ALL if _examples(name)]


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted == _examples(name) > 0, f"{name}: {result.attempted} examples run"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"


def test_the_examples_are_found() -> None:
    """Guards the parametrization: a finder that found nothing would leave the test above with no cases."""
    assert len(WITH_EXAMPLES) >= 5 and sum(map(_examples, WITH_EXAMPLES)) >= 8
