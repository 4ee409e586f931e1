"""The examples in docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import streams

MODULES = sorted(m.name for m in pkgutil.walk_packages(streams.__path__, "streams."))


@pytest.mark.parametrize("name", MODULES)
def test_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"


def test_some_modules_have_examples() -> None:
    assert sum(doctest.testmod(importlib.import_module(n)).attempted for n in MODULES) >= 8
