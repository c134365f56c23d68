"""Soft ternarizer and ternary-attracting regularizer (section 5.2) against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from hqjax.ops import (
    cosine_to_ternary,
    project_to_sphere,
    soft_ternarize,
    soft_ternarize_grad,
    ternarize,
    ternary_parts,
    ternary_pull,
    ternary_regularizer,
)


def _w(shape=(40, 3), seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


@pytest.mark.parametrize("tau", [0.5, 3.0, 12.0], ids=lambda t: f"tau{t}")
def test_soft_ternarizer_gradients_by_finite_differences(tau):
    with jax.enable_x64(True):
        w = jnp.asarray(np.random.default_rng(1).normal(size=(16,)), jnp.float64)
        check_grads(lambda x: soft_ternarize(x, 0.4, tau, 0.8), (w,), order=2, modes=("fwd", "rev"))


def test_soft_ternarizer_closed_form_derivative():
    w = _w((200,))
    autodiff = jax.vmap(jax.grad(lambda x: soft_ternarize(x, 0.3, 7.0, 1.5)))(w)
    np.testing.assert_allclose(np.asarray(soft_ternarize_grad(w, 0.3, 7.0, 1.5)), np.asarray(autodiff),
                               rtol=1e-5, atol=1e-6)


def test_soft_ternarizer_tends_to_hard_as_temperature_grows():
    w = _w((500,))
    delta = 0.7 * float(jnp.mean(jnp.abs(w)))
    hard = np.sign(np.asarray(w)) * (np.abs(np.asarray(w)) > delta)
    away = np.abs(np.abs(np.asarray(w)) - delta) > 1e-2  # pointwise limit away from the thresholds
    errs = [np.abs(np.asarray(soft_ternarize(w, delta, tau)) - hard)[away].max() for tau in (10, 100, 1e4)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 1e-6


def test_regularizer_gradient_is_the_pull():
    w = _w()
    kwargs = dict(threshold="twn", scale="lsq", axis=-1)
    grad = jax.grad(lambda x: ternary_regularizer(x, **kwargs))(w)
    parts = ternary_parts(w, **kwargs)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(w - parts.scale * parts.codes), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(ternary_pull(w, **kwargs)), np.asarray(grad), rtol=1e-6)


def test_regularizer_on_sphere_is_half_one_minus_cos_squared():
    # On unit-norm units with the least-squares scale: R = sum_u 1/2 (1 - cos^2(w_u, t_u))  (B4(i))
    w = project_to_sphere(_w((30, 4), seed=3), -1)
    r = float(ternary_regularizer(w, threshold="twn", scale="lsq", axis=-1))
    cos = np.asarray(cosine_to_ternary(w, ternary_parts(w).codes, -1), np.float64)
    np.testing.assert_allclose(r, 0.5 * np.sum(1 - cos**2), rtol=1e-5)


def test_weighted_regularizer_and_pull():
    w = _w()
    d = jnp.asarray(np.random.default_rng(4).uniform(0.5, 2.0, size=w.shape), jnp.float32)
    q = ternarize(w)
    r = float(ternary_regularizer(w, curvature=d))
    ref = 0.5 * np.sum(np.asarray(d, np.float64) * (np.asarray(w, np.float64) - np.asarray(q)) ** 2)
    np.testing.assert_allclose(r, ref, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(ternary_pull(w, curvature=d)), np.asarray(d * (w - q)),
                               rtol=1e-5, atol=1e-7)


def test_pulling_reduces_the_cosine_distance():
    # A few steps of gradient descent on R alone move a unit-norm unit towards its ternary point.
    w = project_to_sphere(_w((64, 1), seed=5), -1)
    before = float(cosine_to_ternary(w, ternary_parts(w).codes, -1)[0])
    for _ in range(20):
        w = project_to_sphere(w - 0.2 * ternary_pull(w), -1)
    after = float(cosine_to_ternary(w, ternary_parts(w).codes, -1)[0])
    assert after > before and after > 0.99
