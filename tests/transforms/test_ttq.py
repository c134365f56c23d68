"""ttq_scales: scale gradients and TTQ's scaled latent gradient against autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hqjax.transforms import ttq_codes, ttq_scales


def test_scale_gradients_and_scaled_weight_gradient():
    rng = np.random.default_rng(0)
    v = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)
    params = {"d": {"kernel": v, "bias": jnp.zeros(3)}}
    g = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)
    grads = {"d": {"kernel": g, "bias": jnp.ones(3)}}
    tx = ttq_scales(learning_rate=0.0)
    s0 = tx.init(params)
    wp, wn = s0.scales["d"]["kernel"]
    t = np.asarray(ttq_codes(v))

    def loss(wp, wn):  # L = <g, w_q(wp, wn)>, so dL/dw_q = g as under the identity STE
        q = jnp.where(t > 0, wp, jnp.where(t < 0, -wn, 0.0))
        return jnp.sum(g * q)

    dwp, dwn = jax.grad(loss, argnums=(0, 1))(wp, wn)
    np.testing.assert_allclose(dwp[0], np.where(t > 0, g, 0).sum(0), rtol=1e-5)
    np.testing.assert_allclose(dwn[0], -np.where(t < 0, g, 0).sum(0), rtol=1e-5)
    u, s1 = tx.update(grads, s0, params)
    expect = np.where(t > 0, np.asarray(wp) * g, np.where(t < 0, np.asarray(wn) * g, g))
    np.testing.assert_allclose(u["d"]["kernel"], expect, rtol=1e-6)
    np.testing.assert_array_equal(u["d"]["bias"], 1.0)
    # initial scales: mean magnitude per sign
    np.testing.assert_allclose(wp[0], [np.abs(v[:, j][t[:, j] > 0]).mean() for j in range(3)], rtol=1e-6)
    # with lr 0 the scales do not move; with lr > 0 they move against the gradient
    np.testing.assert_allclose(s1.scales["d"]["kernel"][0], wp)
    tx = ttq_scales(learning_rate=0.01)
    _, s2 = tx.update(grads, tx.init(params), params)
    moved = np.asarray(s2.scales["d"]["kernel"][0] - wp)[0]
    np.testing.assert_array_equal(np.sign(moved), -np.sign(np.asarray(dwp)[0]))


def test_scales_stay_positive():
    params = {"d": {"kernel": jnp.array([[1.0], [-1.0], [0.0]])}}
    tx = optax.chain(ttq_scales(learning_rate=10.0))
    s = tx.init(params)
    grads = {"d": {"kernel": jnp.array([[100.0], [-100.0], [0.0]])}}
    for _ in range(3):
        _, s = tx.update(grads, s, params)
    wp, wn = s[0].scales["d"]["kernel"]
    assert float(wp[0, 0]) > 0 and float(wn[0, 0]) > 0
