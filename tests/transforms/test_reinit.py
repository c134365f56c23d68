"""reinitialize: once, at the boundary, onto mean_kept|V| * sign(V) * M per unit (cosine 1)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hqjax.ops import cosine_to_ternary, project_to_sphere
from hqjax.transforms import prune, reinitialize


def test_reinit_lands_on_equal_magnitudes_once():
    rng = np.random.default_rng(0)
    params = {"d": {"kernel": jnp.asarray(rng.normal(size=(10, 4)), jnp.float32), "bias": jnp.ones(4)}}
    tx = optax.chain(optax.sgd(0.1), prune(0.4), reinitialize(2))
    s = tx.init(params)
    update = jax.jit(tx.update)
    for t in range(1, 4):
        grads = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), params)
        u, s = update(grads, s, params)
        params = optax.apply_updates(params, u)
        k = np.asarray(params["d"]["kernel"])
        mags = [np.unique(np.abs(k[:, j][k[:, j] != 0])) for j in range(4)]
        if t == 2:
            for m in mags:
                np.testing.assert_allclose(m, m[0], rtol=1e-6)  # one magnitude per unit (up to 1 ulp)
            cos = cosine_to_ternary(project_to_sphere(k), np.sign(k))
            np.testing.assert_allclose(cos, 1.0, rtol=1e-6)
            np.testing.assert_array_equal((k == 0).sum(0), 4)  # the pruning mask survives
        else:
            assert any(len(m) > 1 for m in mags)


def test_reinit_none_is_identity():
    params = {"d": {"kernel": jnp.arange(6.0).reshape(3, 2)}}
    tx = reinitialize(1, rule="none")
    g = jax.tree.map(jnp.ones_like, params)
    u, _ = tx.update(g, tx.init(params), params)
    np.testing.assert_array_equal(u["d"]["kernel"], 1.0)
