"""Run the docstring examples of the quantizer modules, so documentation stays true."""

import doctest
import importlib

import jax
import jax.numpy as jnp
import optax
import pytest

MODULES = [
    "hqjax.schedules",
    "hqjax.selection",
    "hqjax.transforms.quantizer",
    "hqjax.transforms.prune",
    "hqjax.transforms.sphere",
    "hqjax.transforms.decay",
    "hqjax.transforms.regularizer",
    "hqjax.transforms.reinit",
    "hqjax.transforms.ttq",
    "hqjax.transforms.alq.schedule",
    "hqjax.methods",
    "hqjax.forward",
    "hqjax.summary",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    result = doctest.testmod(module, optionflags=flags, extraglobs={"jax": jax, "jnp": jnp, "optax": optax})
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
