"""Hypersphere projection and cosine identities (B1, B4) against float64 NumPy references."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hqjax.ops import (
    cosine_similarity,
    cosine_to_ternary,
    project_to_sphere,
    scale_lsq,
    ternary_project,
    threshold_twn,
    unit_norm,
)
from tests.helpers import units_np

SHAPES = {
    "dense": ((16, 8), -1),
    "conv": ((3, 3, 4, 6), -1),
    "conv_per_layer": ((3, 3, 4, 6), None),
    "dense_axis0": ((5, 7), 0),
    "vector": ((11,), None),
}


@pytest.mark.parametrize("shape,axis", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("radius", [1.0, 2.5], ids=["unit", "radius2.5"])
def test_projection_matches_float64_reference(shape, axis, radius):
    w = np.random.default_rng(0).normal(size=shape)
    got = np.asarray(project_to_sphere(jnp.asarray(w, jnp.float32), axis, radius), np.float64)
    ref_units = units_np(w, axis)
    ref_units = radius * ref_units / np.linalg.norm(ref_units, axis=1, keepdims=True)
    np.testing.assert_allclose(units_np(got, axis), ref_units, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(units_np(got, axis), axis=1), radius, rtol=1e-5)


def test_projection_jacobian_is_the_b1_formula():
    # dL/dv = (I - w w^T) dL/dw / ||v||, for one unit.
    rng = np.random.default_rng(1)
    v, g = rng.normal(size=7), rng.normal(size=7)
    _, vjp = jax.vjp(lambda x: project_to_sphere(x, None), jnp.asarray(v, jnp.float32))
    got = np.asarray(vjp(jnp.asarray(g, jnp.float32))[0], np.float64)
    w = v / np.linalg.norm(v)
    ref = (np.eye(7) - np.outer(w, w)) @ g / np.linalg.norm(v)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_zero_norm_unit_projects_to_zeros_with_finite_gradient():
    w = jnp.array([[0.0, 3.0], [0.0, 4.0]])  # unit 0 is all zeros
    out = project_to_sphere(w, axis=-1)
    np.testing.assert_array_equal(np.asarray(out[:, 0]), [0.0, 0.0])
    np.testing.assert_allclose(np.asarray(out[:, 1]), [0.6, 0.8], rtol=1e-6)
    grad = jax.grad(lambda x: jnp.sum(project_to_sphere(x, -1) * jnp.arange(4.0).reshape(2, 2)))(w)
    assert np.all(np.isfinite(np.asarray(grad)))
    np.testing.assert_array_equal(np.asarray(grad[:, 0]), [0.0, 0.0])


def test_unit_norm_keeps_dims():
    w = jnp.ones((3, 3, 2, 5))
    assert unit_norm(w, -1).shape == (1, 1, 1, 5)
    np.testing.assert_allclose(np.asarray(unit_norm(w, -1)), np.sqrt(18.0), rtol=1e-6)
    assert unit_norm(w, None).shape == (1, 1, 1, 1)


@pytest.mark.parametrize("seed", range(4), ids=lambda s: f"seed{s}")
def test_b4_cosine_formula_equals_direct_cosine(seed):
    w = np.random.default_rng(seed).normal(size=(9, 5))
    wj = jnp.asarray(w, jnp.float32)
    t = ternary_project(wj, threshold_twn(wj, -1))
    direct = cosine_similarity(wj, t, -1)
    b4 = cosine_to_ternary(wj, t, -1)
    # float64 reference of sum_S |w| / (||w|| sqrt(|S|))
    tn = np.asarray(t, np.float64)
    ref = (np.abs(w) * np.abs(tn)).sum(0) / (np.linalg.norm(w, axis=0) * np.sqrt(np.abs(tn).sum(0)))
    np.testing.assert_allclose(np.asarray(b4), ref, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(direct), ref, rtol=1e-5)


@pytest.mark.parametrize("seed", range(3), ids=lambda s: f"seed{s}")
def test_b4_best_scaled_distance_is_one_minus_cos_squared(seed):
    # min_alpha || w/||w|| - alpha t ||^2 = 1 - cos^2(w, t)   (B4(i))
    w = np.random.default_rng(seed).normal(size=(12, 1))
    u = w / np.linalg.norm(w)
    uj = jnp.asarray(u, jnp.float32)
    t = ternary_project(uj, threshold_twn(uj, -1))
    alpha = float(scale_lsq(uj, t, -1)[0, 0])
    dist = np.sum((u - alpha * np.asarray(t, np.float64)) ** 2)
    cos = float(cosine_to_ternary(uj, t, -1)[0])
    np.testing.assert_allclose(dist, 1.0 - cos**2, rtol=1e-5, atol=1e-6)
    # and no alpha on a fine grid does better
    grid = np.linspace(0.0, 2 * alpha, 2001)
    dists = ((u - grid[None, :] * np.asarray(t, np.float64)) ** 2).sum(0)
    assert dists.min() >= dist - 1e-7


@pytest.mark.parametrize("seed", range(3), ids=lambda s: f"seed{s}")
def test_b4_top_k_support_maximises_cosine_for_fixed_k(seed):
    # For each support size k, among all sign-consistent supports, top-k magnitudes maximise cos.
    w = np.random.default_rng(seed).normal(size=8)
    order = np.argsort(-np.abs(w))
    for k in range(1, 9):
        best = -1.0
        for support in itertools.combinations(range(8), k):
            t = np.zeros(8)
            t[list(support)] = np.sign(w[list(support)])
            best = max(best, float(cosine_to_ternary(jnp.asarray(w), jnp.asarray(t), None)))
        t = np.zeros(8)
        t[order[:k]] = np.sign(w[order[:k]])
        topk = float(cosine_to_ternary(jnp.asarray(w), jnp.asarray(t), None))
        np.testing.assert_allclose(topk, best, rtol=1e-6)


def test_cosine_to_ternary_is_scale_invariant_and_zero_safe():
    w = jnp.array([0.5, -1.0, 0.1])
    t = jnp.array([1.0, -1.0, 0.0])
    np.testing.assert_allclose(cosine_to_ternary(w, t, None), cosine_to_ternary(3 * w, t, None), rtol=1e-6)
    assert float(cosine_to_ternary(w, jnp.zeros(3), None)) == 0.0
    assert float(cosine_similarity(jnp.zeros(3), t, None)) == 0.0
