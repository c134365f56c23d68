"""ternary_regularizer: the added gradient equals autodiff of lambda * R(P(V)) with t, alpha held."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hqjax.ops import project_to_sphere
from hqjax.ops import ternary_regularizer as reg_value
from hqjax.transforms import ternary_regularizer


def _params():
    rng = np.random.default_rng(3)
    return {"a": {"kernel": jnp.asarray(rng.normal(size=(9, 5)), jnp.float32), "bias": jnp.ones(5)}}


@pytest.mark.parametrize("threshold, extra", [("twn", {}), ("quantile", {"sparsity": 0.4})])
def test_gradient_matches_autodiff_of_the_penalty(threshold, extra):
    params = _params()
    lam = 0.3
    tx = ternary_regularizer(lam, threshold=threshold, **extra)
    zeros = jax.tree.map(jnp.zeros_like, params)
    g, s = tx.update(zeros, tx.init(params), params)

    def penalty(v):
        return lam * reg_value(project_to_sphere(v, -1), threshold=threshold, scale="lsq", axis=-1, **extra)

    ref = jax.grad(penalty)(params["a"]["kernel"])
    np.testing.assert_allclose(g["a"]["kernel"], ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(g["a"]["bias"], 0.0)
    assert int(s.count) == 1


def test_zero_strength_is_a_no_op_and_ramp_counts():
    params = _params()
    tx = ternary_regularizer(lambda t: jnp.where(t < 1, 0.0, 1.0))
    grads = jax.tree.map(jnp.ones_like, params)
    s = tx.init(params)
    g0, s = jax.jit(tx.update)(grads, s, params)
    g1, s = jax.jit(tx.update)(grads, s, params)
    np.testing.assert_array_equal(g0["a"]["kernel"], 1.0)
    assert not np.allclose(g1["a"]["kernel"], 1.0)


def test_regularizer_raises_the_cosine():
    from hqjax.ops import cosine_to_ternary, ternarize

    params = _params()
    tx = optax.chain(ternary_regularizer(1.0), optax.sgd(0.5))
    s = tx.init(params)
    zeros = jax.tree.map(jnp.zeros_like, params)

    def cos(p):
        w = project_to_sphere(p["a"]["kernel"])
        return float(jnp.mean(cosine_to_ternary(w, jnp.sign(ternarize(w)))))

    before = cos(params)
    update = jax.jit(tx.update)
    for _ in range(30):
        u, s = update(zeros, s, params)
        params = optax.apply_updates(params, u)
    assert cos(params) > before + 0.05
