"""Run the docstring examples of the export modules, so documentation stays true."""

import doctest
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

MODULES = ["hqjax.export.pack", "hqjax.export.packed", "hqjax.export.size"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    extra = {"jax": jax, "jnp": jnp, "np": np, "optax": optax}
    result = doctest.testmod(module, optionflags=flags, extraglobs=extra)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
