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
    "hqjax.ops.alq",
    "hqjax.ops.activation",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0


def test_every_public_op_names_its_spec_block():
    import inspect
    import re

    import hqjax.ops

    missing = []
    for name in hqjax.ops.__all__:
        obj = getattr(hqjax.ops, name)
        if callable(obj) and not isinstance(obj, type):
            if not re.search(r"\b(B\d|section \d)", inspect.getdoc(obj) or ""):
                missing.append(name)
    assert not missing, f"public ops whose docstring names no spec block: {missing}"
