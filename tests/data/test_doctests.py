"""The docstring examples of hqjax.data run and stay true."""

import doctest
import importlib

import pytest

MODULES = [
    "hqjax.data",
    "hqjax.data.registry",
    "hqjax.data.idx",
    "hqjax.data.augment",
    "hqjax.data.sources",
    "hqjax.data.pipeline",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
