"""Recipes: construction, defaults, name lookup and bad input (a clear ValueError before any step)."""

import jax.numpy as jnp
import optax
import pytest

import hqjax
from hqjax.selection import Selection


def _params():
    return {
        "Dense_0": {"kernel": jnp.ones((4, 3)), "bias": jnp.zeros(3)},
        "Dense_1": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)},
    }


@pytest.mark.parametrize("name", sorted(hqjax.METHODS))
def test_get_method_builds_each_recipe(name):
    kw = {} if name in ("twn", "ttq") else dict(total_steps=30)
    tx = hqjax.get_method(name.upper().replace("_", "-"), optax.sgd(0.1), **kw)
    states = hqjax.find_quantizer_states(tx.init(_params()))
    assert states.config.method == name
    assert states.config.selected == ("Dense_0/kernel", "Dense_1/kernel")
    if name in ("ptq", "hq", "hla_tq"):
        assert states.config.quantize_step == 10  # default total_steps // 3


def test_unknown_method_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown method 'alq2'; valid methods are 'hq', 'hla_tq', 'ptq'"):
        hqjax.get_method("alq2", optax.sgd(0.1))
    with pytest.raises(ValueError, match="unknown arguments \\['reg_strength'\\]"):
        hqjax.get_method("twn", optax.sgd(0.1), reg_strength=0.5)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: hqjax.hq(optax.sgd(0.1), total_steps=100, sparsity=1.0), "sparsity"),
        (lambda: hqjax.ptq(optax.sgd(0.1), total_steps=100, sparsity=-0.2), "sparsity"),
        (lambda: hqjax.hla_tq(optax.sgd(0.1), total_steps=100, sparsity=1.5), "sparsity"),
        (
            lambda: hqjax.hq(optax.sgd(0.1), total_steps=100, sparsity=lambda t: 0.02 * t),
            "returned 2.0 at step 100",
        ),
        (lambda: hqjax.hla_tq(optax.sgd(0.1), total_steps=100, reg_strength=lambda t: -t), "reg_strength"),
        (lambda: hqjax.hla_tq(optax.sgd(0.1), total_steps=100, temperature_start=0.0), "initial"),
        (lambda: hqjax.ptq(optax.sgd(0.1), total_steps=100, weight_decay=-1.0), "weight_decay"),
        (lambda: hqjax.ptq(optax.sgd(0.1), total_steps=0), "total_steps"),
        (lambda: hqjax.ptq(optax.sgd(0.1), total_steps=10, quantize_step=20), "quantize_step"),
        (lambda: hqjax.ptq(optax.sgd(0.1), total_steps=30, prune_end=20), "prune_end"),
        (lambda: hqjax.ptq(optax.sgd(0.1), total_steps=10.0), "total_steps"),
        (lambda: hqjax.hq(optax.sgd(0.1), total_steps=10, reinit="rewind"), "reinit"),
        (lambda: hqjax.hq(optax.sgd(0.1), total_steps=10, threshold="twn"), "threshold"),
        (lambda: hqjax.ttq(optax.sgd(0.1), scale_learning_rate=-1.0), "learning_rate"),
        (lambda: hqjax.twn("sgd"), "inner"),
        (lambda: hqjax.twn(optax.sgd(0.1), selection="kernel"), "Selection"),
    ],
)
def test_bad_arguments_fail_at_construction(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize("name", sorted(hqjax.METHODS))
def test_rule_matching_no_leaf_fails_at_init(name):
    kw = {} if name in ("twn", "ttq") else dict(total_steps=30)
    tx = hqjax.get_method(name, optax.sgd(0.1), selection=Selection(exclude=r"^head/"), **kw)
    with pytest.raises(ValueError, match="matches no leaf"):
        tx.init(_params())


def test_scaled_rule_matching_no_quantized_leaf_fails_at_init():
    tx = hqjax.hq(optax.sgd(0.1), total_steps=30, scaled="head")
    with pytest.raises(ValueError, match="`scaled` rule 'head'"):
        tx.init(_params())


def test_static_args_and_inject_hyperparams_error():
    assert hqjax.static_args("hla_tq") == ("total_steps", "quantize_step", "axis", "min_factor")
    assert hqjax.static_args(hqjax.twn) == ("quantize_step", "axis", "factor")
    with pytest.raises(ValueError, match="static_args"):
        optax.inject_hyperparams(hqjax.hq)(inner=optax.sgd(0.1), total_steps=30).init(_params())
