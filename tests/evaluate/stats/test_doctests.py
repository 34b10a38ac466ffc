"""The Examples sections of the public docstrings run and give what they say."""

import doctest
import importlib

import pytest

MODULES = ["bh", "decay", "decomposition", "disagreement", "ensemble", "momentum", "paired", "simulate"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"instdecay.evaluate.stats.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no docstring example"
    assert result.failed == 0
