"""quantizer: counter, schedules, signs, static config in the treedef."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hqjax import schedules
from hqjax.transforms import QuantizerConfig, QuantizerState, quantizer


def _params():
    return {"d": {"kernel": jnp.array([[1.0, -2.0], [0.0, 3.0]]), "bias": jnp.ones(2)}}


def test_state_counts_schedules_and_signs():
    tx = quantizer(
        "hla", quantize_step=2, temperature=schedules.geometric(2.0, 50.0, begin_step=2, end_step=4)
    )
    params = _params()
    s = tx.init(params)
    assert isinstance(s, QuantizerState) and int(s.count) == 0
    np.testing.assert_array_equal(s.signs["d"]["kernel"], [[1, -1], [0, 1]])
    assert s.signs["d"]["bias"] is None and s.signs["d"]["kernel"].dtype == jnp.int8
    grads = jax.tree.map(jnp.ones_like, params)
    for t in range(1, 5):
        u, s = jax.jit(tx.update)(grads, s, params)
        assert int(s.count) == t
        assert float(s.temperature) == pytest.approx(
            float(2.0 * 25.0 ** (np.clip(t - 2, 0, 2) / 2)), rel=1e-5
        )
        assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), u, grads))


def test_config_is_static_and_hashable():
    s = quantizer("ternary", method="twn").init(_params())
    assert isinstance(s.config, QuantizerConfig)
    assert s.config.selected == ("d/kernel",)
    leaves = jax.tree.leaves(s)
    assert not any(isinstance(x, QuantizerConfig) for x in leaves)  # no array leaves from the config
    hash(jax.tree.structure(s))
    assert jax.tree.structure(s) == jax.tree.structure(
        jax.jit(quantizer("ternary", method="twn").init)(_params())
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(forward="nope"), "forward"),
        (dict(forward="sphere", threshold="twn"), "threshold"),
        (dict(forward="hla", threshold="quantile"), "sparsity"),
        (dict(forward="hla", temperature=0.0), "temperature"),
        (dict(forward="hla", temperature=lambda t: 2.0 - t, check_steps=(0, 5)), "temperature"),
        (dict(forward="hla", sparsity=1.5), "sparsity"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        quantizer(**kwargs)


def test_scaled_rule_must_match_and_axis_is_checked():
    with pytest.raises(ValueError, match="`scaled` rule"):
        quantizer("sphere", scaled="head").init(_params())
    with pytest.raises(ValueError, match="d/kernel"):
        quantizer("ternary", axis=3).init(_params())
