"""project_to_sphere and add_decayed_weights: selected leaves only."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hqjax.selection import Selection
from hqjax.transforms import add_decayed_weights, project_to_sphere


def _params():
    rng = np.random.default_rng(0)
    return {
        "a": {"kernel": jnp.asarray(rng.normal(size=(6, 4)), jnp.float32), "bias": jnp.full(4, 3.0)},
        "head": {"kernel": jnp.asarray(rng.normal(size=(4, 2)), jnp.float32)},
    }


def test_projection_lands_on_the_sphere_and_keeps_zeros():
    params = _params()
    params["a"]["kernel"] = params["a"]["kernel"].at[0].set(0.0)
    tx = optax.chain(optax.sgd(0.1), project_to_sphere(2.0, selection=Selection(exclude="^head")))
    grads = jax.tree.map(jnp.ones_like, params)
    u, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, u)
    np.testing.assert_allclose(np.linalg.norm(new["a"]["kernel"], axis=0), 2.0, rtol=1e-6)
    assert np.all(np.asarray(new["a"]["kernel"])[0] != 0)  # the sgd step moved them; projection keeps them
    np.testing.assert_allclose(new["a"]["bias"], 3.0 - 0.1)
    np.testing.assert_allclose(new["head"]["kernel"], params["head"]["kernel"] - 0.1)


def test_decay_only_on_selected_leaves_with_schedule():
    params = _params()
    tx = add_decayed_weights(lambda t: 0.1 * (t + 1))
    s = tx.init(params)
    zeros = jax.tree.map(jnp.zeros_like, params)
    for t in range(2):
        g, s = tx.update(zeros, s, params)
        np.testing.assert_allclose(g["a"]["kernel"], 0.1 * (t + 1) * params["a"]["kernel"], rtol=1e-6)
        np.testing.assert_array_equal(g["a"]["bias"], 0.0)
