"""Straight-through estimators (B5, section 7.2): forward values exact, backward as defined."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hqjax.ops import (
    identity_ste,
    masked_ste,
    normalized_ste,
    project_to_sphere,
    rescale_factor,
    rescaled_ste,
    soft_ternarize,
    ternarize,
    threshold_twn,
)


def _w(shape=(12, 4), seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _upstream(shape, seed=1):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def test_identity_ste_forward_exact_and_passes_cotangent():
    w = _w()
    q = ternarize(w)
    np.testing.assert_array_equal(np.asarray(identity_ste(w, q)), np.asarray(q))
    g = _upstream(w.shape)
    grad = jax.grad(lambda x: jnp.sum(identity_ste(x, ternarize(x)) * g))(w)
    np.testing.assert_array_equal(np.asarray(grad), np.asarray(g))


def test_identity_ste_gives_q_a_zero_cotangent():
    w, q = _w(), ternarize(_w())
    gq = jax.grad(lambda q: jnp.sum(identity_ste(w, q) * 3.0))(q)
    np.testing.assert_array_equal(np.asarray(gq), 0.0)


def test_masked_ste_zeroes_pruned_positions():
    w = _w()
    mask = jnp.abs(w) > 0.5
    g = _upstream(w.shape)
    grad = jax.grad(lambda x: jnp.sum(masked_ste(x, ternarize(x, mask=mask), mask) * g))(w)
    np.testing.assert_array_equal(np.asarray(grad), np.where(np.asarray(mask), np.asarray(g), 0.0))


@pytest.mark.parametrize("axis", [-1, None], ids=["per_unit", "per_layer"])
def test_normalized_ste_forward_is_unit_norm_ternary(axis):
    v = _w((3, 3, 4, 5))
    mask = jnp.abs(v) > 0.3
    out = np.asarray(normalized_ste(v, mask, axis))
    ref = np.asarray(project_to_sphere(jnp.sign(v) * mask, axis))
    np.testing.assert_array_equal(out, ref)
    if axis == -1:
        for u in range(5):
            nz = np.abs(out[..., u][out[..., u] != 0])
            np.testing.assert_allclose(nz, 1.0 / np.sqrt(np.asarray(mask[..., u]).sum()), rtol=1e-6)


@pytest.mark.parametrize("axis", [-1, None], ids=["per_unit", "per_layer"])
def test_normalized_ste_backward_is_vjp_of_normalize_v_times_m(axis):
    v = _w((3, 3, 4, 5))
    mask = (jnp.abs(v) > 0.3).astype(jnp.float32)
    g = _upstream(v.shape)
    got = jax.grad(lambda x: jnp.sum(normalized_ste(x, mask, axis) * g))(v)
    surrogate = jax.grad(lambda x: jnp.sum(project_to_sphere(x * mask, axis) * g))(v)
    np.testing.assert_allclose(np.asarray(got), np.asarray(surrogate), rtol=1e-6, atol=1e-7)
    # pruned positions get no gradient
    assert np.all(np.asarray(got)[np.asarray(mask) == 0] == 0)


@pytest.mark.parametrize("tau", [2.0, 8.0, 30.0], ids=lambda t: f"tau{t}")
def test_rescaled_ste_equals_soft_derivative_over_constant(tau):
    # backward factor == d/dw phi_tau(w) / (alpha tau / 4), pointwise
    w = _w((64, 3))
    delta = threshold_twn(w, -1)
    alpha = 0.37
    q = ternarize(w)
    g = _upstream(w.shape)
    got = jax.grad(lambda x: jnp.sum(rescaled_ste(x, q, delta, tau) * g))(w)
    soft_grad = jax.vmap(jax.grad(lambda x, d: soft_ternarize(x, d, tau, alpha)))(
        w.ravel(), jnp.broadcast_to(delta, w.shape).ravel()
    ).reshape(w.shape)
    expected = g * soft_grad / (alpha * tau / 4.0)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=2e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(rescaled_ste(w, q, delta, tau)), np.asarray(q))


def test_rescale_factor_value_at_threshold():
    # r(+-Delta) = 1 + 4 sigma'(2 tau Delta) with the default ("peak") normalisation.
    delta, tau = 0.4, 5.0
    r = np.asarray(rescale_factor(jnp.array([delta, -delta]), delta, tau, axis=None))
    s = 1.0 / (1.0 + np.exp(-2 * tau * delta))
    np.testing.assert_allclose(r, 1.0 + 4.0 * s * (1 - s), rtol=1e-6)


def test_rescale_factor_mean_normalisation_and_floor():
    w = _w((50, 2))
    delta = threshold_twn(w, -1)
    r = np.asarray(rescale_factor(w, delta, 10.0, axis=-1, normalization="mean"))
    np.testing.assert_allclose(r.mean(0), 1.0, rtol=1e-5)
    floored = np.asarray(rescale_factor(w, delta, 200.0, min_factor=0.05))
    assert floored.min() >= 0.05 - 1e-7


def test_rescaled_ste_under_jit_with_traced_temperature():
    w = _w()
    delta, q = threshold_twn(w, -1), ternarize(w)
    f = jax.jit(jax.grad(lambda x, tau: jnp.sum(rescaled_ste(x, q, delta, tau))))
    eager = jax.grad(lambda x: jnp.sum(rescaled_ste(x, q, delta, 4.0)))(w)
    np.testing.assert_allclose(np.asarray(f(w, 4.0)), np.asarray(eager), rtol=1e-6)


def test_ste_shape_mismatch_and_bad_options_are_clear_errors():
    w = _w()
    with pytest.raises(ValueError, match="`q` must have the shape"):
        identity_ste(w, jnp.ones((3,)))
    with pytest.raises(ValueError, match="`mask` must have the shape"):
        masked_ste(w, w, jnp.ones((3,)))
    with pytest.raises(ValueError, match="Unknown normalization='max'"):
        rescaled_ste(w, w, 0.1, 1.0, normalization="max")
    with pytest.raises(ValueError, match="`axis`=5 is out of range"):
        normalized_ste(w, jnp.ones_like(w), axis=5)
