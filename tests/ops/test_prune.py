"""Magnitude masks (exact zero counts) and the AGP schedule (B6)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hqjax.ops import agp_schedule, agp_sparsity, global_magnitude_masks, magnitude_mask
from tests.helpers import units_np

CASES = {
    "dense_per_unit": ((20, 6), -1),
    "conv_per_unit": ((3, 3, 8, 4), -1),
    "conv_per_layer": ((3, 3, 8, 4), None),
    "axis0": ((7, 9), 0),
}
SPARSITIES = [0.0, 0.1, 0.5, 0.7, 0.95]


@pytest.mark.parametrize("shape,axis", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("sparsity", SPARSITIES, ids=lambda s: f"s{s}")
def test_mask_has_exact_zero_count_and_keeps_largest(shape, axis, sparsity):
    w = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    mask = np.asarray(magnitude_mask(jnp.asarray(w), sparsity, axis))
    assert mask.dtype == bool and mask.shape == shape
    m_units, w_units = units_np(mask, axis), units_np(np.abs(w), axis)
    n = m_units.shape[1]
    k = int(np.floor(sparsity * n + 0.5))
    np.testing.assert_array_equal((~m_units.astype(bool)).sum(1), k)
    for mu, wu in zip(m_units.astype(bool), w_units, strict=True):
        if 0 < k < n:
            assert wu[mu].min() >= wu[~mu].max()


def test_mask_exact_count_with_ties():
    w = jnp.array([1.0, 1.0, 1.0, 1.0, 2.0, 2.0])
    mask = magnitude_mask(w, 0.5, None)
    assert int((~mask).sum()) == 3
    np.testing.assert_array_equal(np.asarray(mask), [False, False, False, True, True, True])


def test_mask_under_jit_with_traced_sparsity():
    w = jnp.asarray(np.random.default_rng(1).normal(size=(10, 3)), jnp.float32)
    f = jax.jit(lambda w, s: magnitude_mask(w, s, -1))
    for s in (0.2, 0.6):
        np.testing.assert_array_equal(np.asarray(f(w, s)), np.asarray(magnitude_mask(w, s, -1)))
        assert int((~f(w, s)).sum()) == 3 * int(np.floor(s * 10 + 0.5))


def test_mask_vmaps_over_a_stack_of_layers():
    w = jnp.asarray(np.random.default_rng(2).normal(size=(4, 10, 3)), jnp.float32)
    batched = jax.vmap(lambda x: magnitude_mask(x, 0.4, -1))(w)
    for i in range(4):
        np.testing.assert_array_equal(np.asarray(batched[i]), np.asarray(magnitude_mask(w[i], 0.4, -1)))


@pytest.mark.parametrize("sparsity", [0.3, 0.8], ids=lambda s: f"s{s}")
def test_global_masks_rank_all_leaves_together(sparsity):
    rng = np.random.default_rng(3)
    tree = {"a": jnp.asarray(rng.normal(size=(5, 4))), "b": [jnp.asarray(3 * rng.normal(size=(7,)))]}
    masks = global_magnitude_masks(tree, sparsity)
    assert jax.tree.structure(masks) == jax.tree.structure(tree)
    allw = np.concatenate([np.abs(np.asarray(x)).ravel() for x in jax.tree.leaves(tree)])
    allm = np.concatenate([np.asarray(m).ravel() for m in jax.tree.leaves(masks)])
    assert (~allm).sum() == int(np.floor(sparsity * allw.size + 0.5))
    assert allw[allm].min() >= allw[~allm].max()


AGP = dict(begin_step=10, end_step=110, initial_sparsity=0.1)


@pytest.mark.parametrize("update_every", [1, 7, 25], ids=lambda d: f"dt{d}")
def test_agp_endpoints_and_monotone(update_every):
    sched = agp_schedule(0.9, update_every=update_every, **AGP)
    vals = np.array([float(sched(t)) for t in range(0, 200)])
    assert vals[0] == 0.0 and vals[9] == 0.0  # dense before begin_step
    np.testing.assert_allclose(vals[10], 0.1, rtol=1e-6)  # s(t0) = s_i
    np.testing.assert_allclose(vals[110:], 0.9, rtol=1e-6)  # s(t >= t1) = s_f
    assert np.all(np.diff(vals) >= -1e-7)
    if update_every > 1:  # piecewise constant between updates
        assert vals[10 + update_every - 1] == vals[10]


def test_agp_matches_closed_form():
    t = np.arange(10, 111)
    ref = 0.9 + (0.1 - 0.9) * (1 - (t - 10) / 100.0) ** 3
    got = jax.jit(jax.vmap(lambda s: agp_sparsity(s, 0.9, **AGP)))(jnp.asarray(t))
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-5, atol=1e-6)


BAD_SPARSITY = {"negative": -0.1, "one": 1.0, "above": 1.5, "nan": float("nan")}


@pytest.mark.parametrize("value", BAD_SPARSITY.values(), ids=BAD_SPARSITY.keys())
def test_bad_sparsity_is_a_clear_error(value):
    with pytest.raises(ValueError, match="`sparsity` must lie in"):
        magnitude_mask(jnp.ones((4, 2)), value)
    with pytest.raises(ValueError, match="`sparsity` must lie in"):
        global_magnitude_masks({"a": jnp.ones(3)}, value)
    with pytest.raises(ValueError, match="`final_sparsity` must lie in"):
        agp_schedule(value, end_step=10)


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="`end_step`"):
        agp_schedule(0.5, begin_step=10, end_step=10)
    with pytest.raises(ValueError, match="`update_every`"):
        agp_schedule(0.5, end_step=10, update_every=0)
    with pytest.raises(ValueError, match="`initial_sparsity`"):
        agp_schedule(0.5, end_step=10, initial_sparsity=0.6)


def test_axis_out_of_range_is_a_clear_error():
    with pytest.raises(ValueError, match="`axis`=2 is out of range"):
        magnitude_mask(jnp.ones((4, 2)), 0.5, axis=2)


def _stable_rank_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """NumPy reference of `_keep_top`: False on the k smallest of each row, ties by position."""
    ranks = np.argsort(np.argsort(scores, axis=1, kind="stable"), axis=1, kind="stable")
    return ranks >= k


@pytest.mark.parametrize("case", ["random", "ties", "half_zero", "constant"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_sort_free_selection_matches_a_stable_sort(case, dtype):
    from hqjax.ops.prune import _keep_top, kth_smallest

    rng = np.random.default_rng(3)
    x = np.abs(rng.standard_normal((6, 37))).astype(dtype)
    if case == "ties":
        x = (np.round(x * 2) / 2).astype(dtype)
    elif case == "half_zero":
        x[:, ::2] = 0
    elif case == "constant":
        x[:] = dtype(0.25)
    for k in (0, 1, 2, 18, 36, 37):
        got = np.asarray(jax.jit(_keep_top)(jnp.asarray(x), jnp.int32(k)))
        np.testing.assert_array_equal(got, _stable_rank_mask(x, k), err_msg=f"{case} k={k}")
        assert (~got).sum(axis=1).tolist() == [k] * x.shape[0]
        kth = np.asarray(kth_smallest(jnp.asarray(x), jnp.int32(k)))[:, 0]
        want = np.sort(x, axis=1)[:, k - 1] if k else np.zeros(x.shape[0], dtype)
        np.testing.assert_array_equal(kth, want)
        assert kth.dtype == dtype
