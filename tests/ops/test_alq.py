"""ALQ math (spec section 1, tests of section 7.5 items 6-9 and 11) against closed forms and float64 NumPy."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hqjax
from hqjax.ops import (
    ALQ_STRUCTURES,
    alq_storage_bits,
    average_bits,
    diag_to_alpha,
    fix_signs,
    from_groups,
    grad_to_alpha,
    group_shape,
    importance,
    nearest_codes,
    reconstruct,
    sketch,
    to_groups,
    wls_refit,
)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _rel_residual(w, bases, alpha, mask):
    w = np.asarray(w, np.float64)
    r = w - np.asarray(reconstruct(bases, alpha, mask), np.float64)
    return (r * r).sum(1) / (w * w).sum(1)


# ---------------------------------------------------------------------------------------------------
# Groups (section 1.1)

CONV, DENSE, CONV1D = (3, 3, 4, 6), (8, 6), (5, 4, 6)


@pytest.mark.parametrize(
    "shape,structure,subc,expected",
    [
        (CONV, "channelwise", 1, (6, 36)),
        (CONV, "kernelwise", 1, (24, 9)),
        (CONV, "pixelwise", 1, (54, 4)),
        (CONV, "subchannelwise", 3, (18, 12)),
        (CONV, "subchannelwise", 1, (6, 36)),
        (DENSE, "channelwise", 1, (6, 8)),
        (DENSE, "pixelwise", 1, (6, 8)),
        (DENSE, "subchannelwise", 2, (12, 4)),
        (CONV1D, "kernelwise", 1, (24, 5)),
        ((7, 7, 3, 64), "channelwise", 1, (64, 147)),
        ((3, 3, 512, 512), "pixelwise", 1, (4608, 512)),
        ((512, 1000), "subchannelwise", 2, (2000, 256)),
    ],
)
def test_group_shape(shape, structure, subc, expected):
    assert group_shape(shape, structure, subc) == expected


def _groups_np(w, structure, subc):
    """Float64 reference built element by element from the definitions of section 1.1."""
    *sp, c_in, c_out = w.shape
    pos = list(itertools.product(*(range(s) for s in sp)))
    rows = []
    for o in range(c_out):
        if structure in ("channelwise", "subchannelwise"):
            vec = w[..., o].reshape(-1)
            rows.extend(np.split(vec, subc))
        elif structure == "pixelwise":
            rows.extend(w[p + (slice(None), o)] for p in pos)
        else:
            rows.extend(np.array([w[p + (i, o)] for p in pos]) for i in range(c_in))
    return np.stack(rows)


@pytest.mark.parametrize(
    "shape,structure",
    [(s, st) for s in (CONV, DENSE, CONV1D) for st in ALQ_STRUCTURES if len(s) > 2 or st != "kernelwise"],
)
def test_groups_are_exact_inverses(shape, structure):
    subc = 2 if structure == "subchannelwise" else 1
    w = _rng().normal(size=shape).astype(np.float32)
    g = to_groups(jnp.asarray(w), structure, subc)
    assert g.shape == group_shape(shape, structure, subc) and g.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(g), _groups_np(w, structure, subc))
    back = from_groups(g, shape, structure, subc)
    assert back.shape == shape
    np.testing.assert_array_equal(np.asarray(back), w)
    wb = jnp.asarray(w, jnp.bfloat16)  # pure reshape: any dtype, bit exact
    assert jnp.array_equal(from_groups(to_groups(wb, structure, subc), shape, structure, subc), wb)


# ---------------------------------------------------------------------------------------------------
# Structured sketching (section 1.2; section 7.5 item 6)


def test_sketch_one_basis_is_the_xnor_closed_form():
    w = _rng(1).normal(size=(5, 12)).astype(np.float32)
    w[2, 3] = 0.0  # sign(0) := +1
    bases, alpha, mask = sketch(jnp.asarray(w), 1)
    assert bases.dtype == jnp.int8 and alpha.dtype == jnp.float32 and mask.dtype == jnp.bool_
    assert bases.shape == (5, 1, 12) and alpha.shape == mask.shape == (5, 1)
    np.testing.assert_array_equal(np.asarray(bases[:, 0]), np.where(w >= 0, 1, -1))
    np.testing.assert_allclose(np.asarray(alpha[:, 0]), np.abs(w).mean(1), rtol=1e-5)
    assert bool(mask.all())


def test_sketch_residual_non_increasing_and_exact_at_full_rank():
    w = jnp.asarray(_rng(2).normal(size=(6, 4)), jnp.float32)
    sketches = {i: sketch(w, i) for i in (1, 2, 4)}
    res = np.stack([_rel_residual(w, *sk) for sk in sketches.values()])
    assert np.all(np.diff(res, axis=0) <= 1e-6), res
    assert np.all(res[0] > 1e-3)
    # num_bases >= n: the greedy bases span R^n, the reconstruction is exact up to float32.
    bases, alpha, mask = sketches[4]
    np.testing.assert_allclose(np.asarray(reconstruct(bases, alpha, mask)), np.asarray(w), atol=1e-5)


def _check_invariants(bases, alpha, mask):
    b, a, m = np.asarray(bases), np.asarray(alpha), np.asarray(mask)
    assert np.all(np.isfinite(a))
    assert np.all(a[m] > 0) and np.all(a[~m] == 0)
    assert np.all(np.abs(b[m]) == 1) and np.all(b[~m] == 0)
    for row_a, row_m in zip(a, m, strict=True):
        live = int(row_m.sum())
        assert row_m[:live].all() and not row_m[live:].any()  # live slots first, dead slots after
        assert np.all(np.diff(row_a[:live]) >= 0)  # ascending


def test_sketch_invariants_early_stop_and_degenerate_groups():
    rng = _rng(3)
    w = rng.normal(size=(8, 16)).astype(np.float32)
    w[0] = 0.0  # all-zero group: every slot dead
    w[1] = 0.7  # identical values: one basis, exact
    w[2] = np.where(rng.random(16) < 0.5, 3.0, -1.0)  # exactly two bases needed, then early stop
    w[3, :] = rng.choice([-3.0, -1.0, 1.0, 3.0], size=16)  # two bases {1, 2}
    bases, alpha, mask = sketch(jnp.asarray(w), 6)
    _check_invariants(bases, alpha, mask)
    live = np.asarray(mask.sum(1))
    assert live[0] == 0 and not np.asarray(bases[0]).any()
    assert live[1] == 1 and abs(float(alpha[1, 0]) - 0.7) < 1e-6
    assert live[2] <= 2 and live[3] <= 2
    np.testing.assert_allclose(np.asarray(reconstruct(bases, alpha, mask))[:4], w[:4], atol=1e-5)
    assert np.all(live[4:] == 6)


def test_sketch_singular_cases_stay_finite():
    # rel_tol = 0 runs to n bases: near-dependent sign patterns of round-off residuals; n = 1.
    w = jnp.asarray(_rng(4).normal(size=(64, 8)) * np.logspace(-3, 3, 8), jnp.float32)
    bases, alpha, mask = sketch(w, 8, rel_tol=0.0)
    _check_invariants(bases, alpha, mask)
    assert np.all(_rel_residual(w, bases, alpha, mask) < 1e-6)
    b1, a1, m1 = sketch(jnp.array([[-2.0], [0.0]]), 3)
    assert np.asarray(m1).sum(1).tolist() == [1, 0]
    assert b1[0, 0, 0] == -1 and float(a1[0, 0]) == pytest.approx(2.0, rel=1e-5)


# ---------------------------------------------------------------------------------------------------
# Chain rule to the coordinates (section 1.3; section 7.5 item 7)


def _random_state(seed, g=4, i=3, n=10, dead=True):
    rng = _rng(seed)
    bases = rng.choice(np.array([-1, 1], np.int8), size=(g, i, n))
    alpha = rng.uniform(0.1, 2.0, size=(g, i)).astype(np.float32)
    mask = np.ones((g, i), bool)
    if dead:
        mask[0, 1] = mask[2, 0] = mask[3, :] = False
    return bases, alpha, mask


def test_grad_to_alpha_matches_autodiff():
    bases, alpha, mask = _random_state(5)
    c = jnp.asarray(_rng(6).normal(size=(4, 10)), jnp.float32)
    loss = lambda a: jnp.sum(jnp.sin(reconstruct(bases, a, mask)) * c)
    g_alpha = jax.grad(loss)(jnp.asarray(alpha))
    g_w = jax.grad(lambda w: jnp.sum(jnp.sin(w) * c))(reconstruct(bases, alpha, mask))
    np.testing.assert_allclose(np.asarray(grad_to_alpha(bases, g_w, mask)), np.asarray(g_alpha), rtol=1e-5,
                               atol=1e-6)
    assert not np.asarray(grad_to_alpha(bases, g_w, mask))[~mask].any()


def test_diag_to_alpha_is_group_sums_on_live_slots():
    bases, _, mask = _random_state(7)
    v = _rng(8).uniform(size=(4, 10)).astype(np.float32)
    out = np.asarray(diag_to_alpha(v, mask))
    ref = np.where(mask, v.sum(1, keepdims=True), 0.0)
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    b2v = np.einsum("gin,gn->gi", bases.astype(np.float64) ** 2, v)  # sum_j b_ij^2 v_j
    np.testing.assert_allclose(out[mask], b2v[mask], rtol=1e-6)


# ---------------------------------------------------------------------------------------------------
# Basis step (section 1.4(b); section 7.5 items 8-9)


def _brute_force_values(target, alpha, mask):
    """Float64: nearest representable value per element over all 2^I codes."""
    am = np.where(mask, alpha, 0.0).astype(np.float64)
    codes = np.array(list(itertools.product((-1.0, 1.0), repeat=alpha.shape[1])))
    values = am @ codes.T  # (G, 2^I)
    idx = np.abs(target[:, :, None] - values[:, None, :]).argmin(2)
    return np.take_along_axis(values, idx, axis=1), values


def test_nearest_codes_matches_brute_force():
    rng = _rng(9)
    alpha = np.sort(rng.uniform(0.05, 1.5, size=(5, 4)), axis=1).astype(np.float32)
    alpha[1, 2] *= -1.0  # any sign works
    mask = np.ones((5, 4), bool)
    mask[0, 0] = mask[3, 1:] = mask[4] = False
    target = (rng.normal(size=(5, 40)) * 2.0).astype(np.float32)  # also beyond the extreme values
    codes = nearest_codes(target, alpha, mask)
    assert codes.dtype == jnp.int8 and codes.shape == (5, 4, 40)
    c = np.asarray(codes)
    assert np.all(c[~mask] == 0) and np.all(np.abs(c[mask]) == 1)
    got = np.einsum("gi,gin->gn", np.where(mask, alpha, 0.0).astype(np.float64), c.astype(np.float64))
    ref, values = _brute_force_values(target.astype(np.float64), alpha, mask)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    # The codes themselves are unique on live slots: distinct alphas and no coinciding sums here.
    assert min(np.diff(np.unique(np.round(v, 9))).min() for v in values[:4]) > 1e-4
    table = np.array(list(itertools.product((-1, 1), repeat=4)))
    for g in range(5):
        vals = table @ np.where(mask[g], alpha[g], 0.0)
        brute = table[np.abs(target[g, :, None] - vals[None, :]).argmin(1)]  # (n, I)
        np.testing.assert_array_equal(c[g].T[:, mask[g]], brute[:, mask[g]])


def test_nearest_codes_tie_rules():
    alpha, mask = jnp.array([[1.0, 2.0], [1.0, 1.0]]), jnp.ones((2, 2), bool)
    # values {-3, -1, 1, 3}: midpoints go to the larger value; values {-2, 0, 0, 2}: lowest table index.
    codes = nearest_codes(jnp.array([[0.0, 2.0, -2.0], [0.1, -0.1, 1.0]]), alpha, mask)
    rec = reconstruct(codes, alpha, mask)
    assert rec.tolist() == [[1.0, 3.0, -1.0], [0.0, 0.0, 2.0]]
    assert codes[1, :, 0].tolist() == [1, -1] and codes[1, :, 1].tolist() == [1, -1]


def _documented_codes(target, alpha, mask):
    """The documented rule, element by element in float32: the smallest value >= T or the largest
    value < T, whichever is nearer (the larger at equal distance), then the lowest table index with it."""
    num_bases = alpha.shape[1]
    table = ((np.arange(2**num_bases)[:, None] >> np.arange(num_bases)[None, :]) & 1) * 2 - 1
    out = np.zeros((*alpha.shape, target.shape[1]), np.int8)
    for g in range(alpha.shape[0]):
        vals = (table.astype(np.float32) * np.where(mask[g], alpha[g], 0).astype(np.float32)).sum(1)
        for j, x in enumerate(target[g]):
            above, below = vals[vals >= x], vals[vals < x]
            if not below.size or (above.size and above.min() - x <= x - below.max()):
                v = above.min()
            else:
                v = below.max()
            out[g, :, j] = np.where(mask[g], table[np.flatnonzero(vals == v)[0]], 0)
    return out


@pytest.mark.parametrize("num_bases", [1, 2, 3, 6, 8, 9])
def test_nearest_codes_follow_the_documented_rule_with_ties(num_bases):
    """Every search path (one window; window maxima compared; window maxima binary-searched for
    2^I / 4 > 64 windows) on dyadic coordinates, so that midpoints and equal sums really occur."""
    rng = _rng(30 + num_bases)
    groups, n = 6, 50
    alpha = rng.integers(1, 9, size=(groups, num_bases)).astype(np.float32) / 4
    alpha[1, 0] *= -1.0
    alpha[2, :] = alpha[2, 0]  # all equal: many codes share each value
    mask = np.ones((groups, num_bases), bool)
    mask[3, 0] = False
    if num_bases > 1:
        mask[4, 1:] = False
    target = (rng.integers(-40, 41, size=(groups, n)) / 8).astype(np.float32)  # hits midpoints
    target[5, :3] = [1e6, -1e6, 0.0]
    got = np.asarray(nearest_codes(target, alpha, mask))
    np.testing.assert_array_equal(got, _documented_codes(target, alpha, mask))


def test_nearest_codes_memory_is_bounded_for_resnet_layers():
    """ResNet-18 layer4 conv, pixelwise, I = 8: no (G, n, 2^I) intermediate (section 8 item 19)."""
    g, n, i = group_shape((3, 3, 512, 512), "pixelwise") + (8,)
    compiled = (
        jax.jit(nearest_codes)
        .lower(jax.ShapeDtypeStruct((g, n), jnp.float32), jax.ShapeDtypeStruct((g, i), jnp.float32),
               jax.ShapeDtypeStruct((g, i), jnp.bool_))
        .compile()
    )
    stats = compiled.memory_analysis()
    assert stats is not None, "the CPU backend reports compiled memory"
    assert stats.temp_size_in_bytes < g * n * 2**i * 4 // 16  # materialising would need 2.4 GB


def _lstsq_reference(bases, target, h, mask):
    out = np.zeros(mask.shape)
    for g in range(mask.shape[0]):
        live = mask[g]
        a = (bases[g][live].astype(np.float64) * np.sqrt(h[g])).T
        out[g, live] = np.linalg.lstsq(a, np.sqrt(h[g]) * target[g], rcond=None)[0]
    return out


def test_wls_refit_matches_weighted_lstsq():
    bases, _, mask = _random_state(10, g=4, i=3, n=24)
    rng = _rng(11)
    bases[~mask] = rng.choice(np.array([-1, 1], np.int8), size=(int((~mask).sum()), 24))  # ignored
    target = rng.normal(size=(4, 24))
    h = rng.uniform(0.5, 2.0, size=(4, 24))
    alpha = np.asarray(wls_refit(bases, target.astype(np.float32), h.astype(np.float32), mask))
    np.testing.assert_allclose(alpha, _lstsq_reference(bases, target, h, mask), rtol=1e-4, atol=1e-5)
    assert not alpha[~mask].any()
    # uniform h: ordinary least squares
    ols = np.asarray(wls_refit(bases, target.astype(np.float32), np.ones((4, 24), np.float32), mask))
    np.testing.assert_allclose(ols, _lstsq_reference(bases, target, np.ones((4, 24)), mask), rtol=1e-4,
                               atol=1e-5)


def test_fix_signs_keeps_the_reconstruction():
    bases, alpha, mask = _random_state(12)
    alpha = alpha * np.array([1.0, -1.0, 1.0], np.float32)
    b2, a2 = fix_signs(bases, alpha)
    assert b2.dtype == jnp.int8 and bool((a2 >= 0).all())
    np.testing.assert_array_equal(np.asarray(reconstruct(b2, a2, mask)),
                                  np.asarray(reconstruct(bases, alpha, mask)))


def test_ops_under_jit_match_eager():
    """One compiled basis step (sketch -> codes -> refit -> signs -> moments) equals eager execution."""
    rng = _rng(13)
    w = jnp.asarray(rng.normal(size=(6, 12)), jnp.bfloat16)  # computed in float32
    p = jnp.asarray(rng.normal(size=(6, 12)) * 0.01, jnp.float32)
    h = jnp.asarray(rng.uniform(0.5, 1.5, size=(6, 12)), jnp.float32)

    def step(w, p, h):
        bases, alpha, mask = sketch(w, 4)
        target = reconstruct(bases, alpha, mask) - p / h
        bases = nearest_codes(target, alpha, mask)
        bases, alpha = fix_signs(bases, wls_refit(bases, target, h, mask))
        ga = grad_to_alpha(bases, p, mask)
        return bases, alpha, mask, ga, diag_to_alpha(h, mask), importance(ga, ga, alpha), average_bits(mask)

    eager, jitted = step(w, p, h), jax.jit(step)(w, p, h)
    for x, y in zip(eager, jitted, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_allclose(np.asarray(x, np.float32), np.asarray(y, np.float32), rtol=1e-5, atol=1e-6)
    assert eager[1].dtype == jnp.float32 and float(eager[-1]) == 4.0


# ---------------------------------------------------------------------------------------------------
# Pruning importance (section 1.4(d)) and accounting (section 1.6; section 7.5 item 11)


def test_importance_is_the_quadratic_model_change():
    rng = _rng(14)
    p, h, a = rng.normal(size=(3, 4)), rng.uniform(0.1, 1.0, size=(3, 4)), rng.uniform(size=(3, 4))
    d = -a  # zeroing the coordinate
    np.testing.assert_allclose(np.asarray(importance(p, h, a)), p * d + 0.5 * h * d * d, rtol=1e-5)


def test_average_bits_and_layer_storage():
    mask = np.zeros((4, 8), bool)
    mask[0, :3] = mask[1, :1] = mask[2, :4] = True
    assert float(average_bits(mask)) == 2.0
    # 4 groups of 16 weights at 2 bits: 8 live alphas -> 8 * 16 code bits + 8 * 32 alpha bits
    assert alq_storage_bits(64, 2.0, 8) == 8 * 16 + 8 * 32
    assert alq_storage_bits(64, 2.0, 8, alpha_bits=16) == 8 * 16 + 8 * 16


def test_resnet18_storage_at_two_bits():
    """ResNet-18/ImageNet, 2.00 bits in every layer: conv1 channelwise, convs pixelwise, FC subc=2."""
    import hqjax.models

    model = hqjax.models.get("resnet18", num_classes=1000)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3)), train=False))
    leaves = jax.tree.leaves(shapes["params"])
    quantized = [x.shape for x in leaves if x.ndim > 1]
    fp_params = sum(x.size for x in leaves if x.ndim <= 1)  # BN scale/bias, FC bias
    total_bits, numel = 0.0, 0
    for shape in quantized:
        if len(shape) == 2:
            structure, subc = "subchannelwise", 2
        else:
            structure, subc = ("channelwise" if shape[0] == 7 else "pixelwise"), 1
        g, n = group_shape(shape, structure, subc)
        mask = np.zeros((g, 8), bool)
        mask[:, :2] = True
        bits = float(average_bits(mask))
        total_bits += alq_storage_bits(g * n, bits, int(mask.sum()))
        numel += g * n
    total_mb = (total_bits + 32 * fp_params) / 8e6
    assert numel == 11_678_912 and len(quantized) == 21 and fp_params == 10_600
    assert numel * 2 / 8e6 == pytest.approx(2.92, abs=0.005)  # dense 2-bit codes
    assert (numel + fp_params) * 4 / 1e6 == pytest.approx(46.8, abs=0.05)  # FP32 model
    assert (numel + fp_params) * 4 / 2**20 == pytest.approx(44.6, abs=0.05)
    # codes 2.920 MB + 37,520 groups * 2 alphas * 4 B = 0.300 MB + BN/bias 0.042 MB (README: 3.44 MB)
    assert total_mb == pytest.approx(3.262, abs=0.001)


# ---------------------------------------------------------------------------------------------------
# Argument validation


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: group_shape((5,), "channelwise"), "`shape`"),
        (lambda: group_shape((3, 4), "rowwise"), "structure.*'channelwise', 'kernelwise'"),
        (lambda: group_shape((3, 4), "kernelwise"), "`structure`='kernelwise'"),
        (lambda: group_shape((6, 4), "subchannelwise", 4), "`subc`=4 must divide"),
        (lambda: group_shape((6, 4), "pixelwise", 2), "`subc`=2 only applies"),
        (lambda: group_shape((6, 4), "subchannelwise", 0), "`subc`"),
        (lambda: from_groups(jnp.zeros((4, 5)), (5, 3), "channelwise"), "`groups`"),
        (lambda: sketch(jnp.zeros((2, 3)), 0), "`num_bases`"),
        (lambda: sketch(jnp.zeros((2, 3)), 2.0), "`num_bases`"),
        (lambda: sketch(jnp.zeros((2, 3)), 2, rel_tol=-1.0), "`rel_tol`"),
        (lambda: sketch(jnp.zeros(3), 2), "`groups`"),
        (lambda: sketch(jnp.zeros((2, 3), jnp.int32), 2), "`groups`"),
        (lambda: reconstruct(jnp.zeros((2, 3), jnp.int8), jnp.zeros((2, 3)), jnp.ones((2, 3))), "`bases`"),
        (lambda: reconstruct(jnp.zeros((2, 3, 4), jnp.int8), jnp.zeros((2, 2)), jnp.ones((2, 3))), "`alpha`"),
        (lambda: reconstruct(jnp.zeros((2, 3, 4), jnp.int8), jnp.zeros((2, 3)), jnp.ones((3,))), "`mask`"),
        (lambda: grad_to_alpha(jnp.zeros((2, 3, 4), jnp.int8), jnp.zeros((2, 5)), jnp.ones((2, 3))),
         "`g_groups`"),
        (lambda: diag_to_alpha(jnp.zeros((2, 5)), jnp.ones((3, 3))), "`mask`"),
        (lambda: nearest_codes(jnp.zeros((3, 5)), jnp.zeros((2, 3)), jnp.ones((2, 3), bool)), "`target`"),
        (lambda: nearest_codes(jnp.zeros((2, 5)), jnp.zeros((2, 3)), jnp.ones((2, 4), bool)), "`mask`"),
        (lambda: wls_refit(jnp.zeros((2, 3, 4), jnp.int8), jnp.zeros((2, 4)), jnp.ones((2, 5)),
                           jnp.ones((2, 3))), "`h`"),
        (lambda: wls_refit(jnp.zeros((2, 3, 4), jnp.int8), jnp.zeros((2, 4)), jnp.ones((2, 4)),
                           jnp.ones((2, 3)), ridge=-1.0), "`ridge`"),
        (lambda: fix_signs(jnp.zeros((2, 3, 4), jnp.int8), jnp.zeros((3, 3))), "`alpha`"),
        (lambda: importance(jnp.zeros(3), jnp.zeros(2), jnp.zeros(3)), "`h_alpha`"),
        (lambda: average_bits(jnp.ones(3, bool)), "`mask`"),
        (lambda: alq_storage_bits(-1, 2.0, 3), "`numel`"),
    ],
)
def test_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_k_bit_activations_levels_and_clipped_straight_through_gradient():
    x = jnp.linspace(-0.5, 1.5, 41)
    for bits in (1, 2, 4):
        q = hqjax.quantize_activation(x, bits)
        levels = np.arange(2**bits) / (2**bits - 1)
        assert np.all(np.min(np.abs(np.asarray(q)[:, None] - levels[None]), axis=1) < 1e-7)
        np.testing.assert_allclose(q, np.round(np.clip(x, 0, 1) * (2**bits - 1)) / (2**bits - 1), atol=1e-7)
    g = jax.grad(lambda v: jnp.sum(hqjax.quantize_activation(v, 2) * jnp.arange(41.0)))(x)
    inside = (np.asarray(x) >= 0) & (np.asarray(x) <= 1)
    np.testing.assert_array_equal(g, np.where(inside, np.arange(41.0), 0.0))
    from hqjax import models

    model = models.get("lenet5", act_bits=2)
    v = model.init(jax.random.key(0), jnp.ones((1, 28, 28, 1)), train=False)
    assert model.apply(v, jnp.ones((2, 28, 28, 1)), train=False).shape == (2, 10)
    with pytest.raises(ValueError, match="bits"):
        hqjax.k_bit_relu(0)
