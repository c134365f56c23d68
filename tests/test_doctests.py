"""Run the docstring examples of the public modules, so documentation stays true."""

import doctest
import importlib

import pytest

MODULES = [
    "hqjax.ops.sphere",
    "hqjax.ops.prune",
    "hqjax.ops.ternary",
    "hqjax.ops.ste",
    "hqjax.ops.soft",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
