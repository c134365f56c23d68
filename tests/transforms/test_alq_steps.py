"""ALQ's per-mode step functions (`hqjax.transforms.alq.steps`) alone, each on a tiny layer against a
closed form or a NumPy reference (ALGORITHMS.md 1.2-1.4)."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hqjax.ops import alq as ops
from hqjax.transforms.alq import steps
from hqjax.transforms.alq.state import ALQLayer, layer_weights

SHAPE, STRUCTURE, SUBC = (3, 4), "channelwise", 1  # 4 groups of 3 weights
_rng = np.random.default_rng(0)
W = jnp.asarray(_rng.normal(size=SHAPE), jnp.float32)
G = jnp.asarray(_rng.normal(size=SHAPE) * 0.1, jnp.float32)
LR = 0.05


def _layer(num_bases=2, **moments):
    lay = steps.sketch_layer(W, SHAPE, STRUCTURE, SUBC, num_bases)
    return lay._replace(**{k: jnp.asarray(v, jnp.float32) for k, v in moments.items()})


def _model(t=1.0, lr=LR):
    return steps.loss_model(jnp.float32(t), jnp.float32(lr))


def _np_amsgrad(m, v, vmax, g, t, lr=LR, b1=0.9, b2=0.999, eps=1e-8):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    vmax = np.maximum(vmax, v)
    return m, v, vmax, lr * m / (1 - b1**t), (np.sqrt(vmax) + eps) / np.sqrt(1 - b2**t)


def _groups(x):
    return np.asarray(ops.to_groups(jnp.asarray(x), STRUCTURE, SUBC), np.float64)


def test_amsgrad_is_the_closed_form_of_the_quadratic_model():
    m, v, vmax = (np.full(4, c, np.float32) for c in (0.1, 0.2, 0.5))
    g = np.array([1.0, -2.0, 0.5, 0.0], np.float32)
    got = steps.amsgrad(_model(t=3.0), m, v, vmax, g)
    for a, b in zip(got, _np_amsgrad(m, v, vmax, g, 3), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5)  # float32 bias corrections
    assert float(got[2][2]) == 0.5  # v_max keeps the running maximum


def test_sketch_layer_is_the_greedy_sketch_with_zero_moments():
    lay = steps.sketch_layer(W, SHAPE, STRUCTURE, SUBC, 2)
    b, a, m = ops.sketch(ops.to_groups(W, STRUCTURE, SUBC), 2)
    np.testing.assert_array_equal(lay.bases, b)
    np.testing.assert_array_equal(lay.alpha, a)
    np.testing.assert_array_equal(lay.w_fp, layer_weights(lay, SHAPE, STRUCTURE, SUBC))
    assert all(not np.any(np.asarray(x)) for x in (lay.mu, lay.nu, lay.nu_max, lay.mu_alpha))
    quirky = steps.sketch_layer(W, SHAPE, STRUCTURE, SUBC, 2, quirks=True)
    np.testing.assert_array_equal(quirky.w_fp, W)  # the official code keeps the pretrained weights


def test_layer_step_updates_the_weight_domain_moments():
    lay = _layer(mu=np.full(SHAPE, 0.01), nu=np.full(SHAPE, 1e-4), nu_max=np.full(SHAPE, 2e-4))
    x = steps.layer_step(lay, G, SHAPE, STRUCTURE, SUBC, _model(t=2.0))
    m, v, vmax, p, h = _np_amsgrad(0.01, 1e-4, 2e-4, np.asarray(G, np.float64), 2)
    np.testing.assert_allclose(x.layer.mu, m, rtol=1e-6)
    np.testing.assert_allclose(x.layer.nu_max, vmax, rtol=1e-6)
    np.testing.assert_allclose(x.p, p, rtol=1e-5)
    np.testing.assert_allclose(x.h, h, rtol=1e-5)
    np.testing.assert_array_equal(x.layer.alpha, lay.alpha)


def test_coordinate_step_is_amsgrad_on_the_live_coordinates():
    lay = _layer()
    lay = lay._replace(mask=lay.mask.at[0, 1].set(False), alpha=lay.alpha.at[0, 1].set(0.0))
    x = steps.layer_step(lay, G, SHAPE, STRUCTURE, SUBC, _model())
    wd = 0.1
    new = steps.coordinate_step(x, _model(), weight_decay=wd)
    mask = np.asarray(lay.mask, np.float64)
    ga = np.einsum("gin,gn->gi", np.asarray(lay.bases, np.float64), _groups(G)) * mask
    ga = ga + wd * np.asarray(lay.alpha, np.float64) * mask
    z = np.zeros_like(ga)
    _, _, _, p, h = _np_amsgrad(z, z, z, ga, 1)
    np.testing.assert_allclose(new.alpha, np.asarray(lay.alpha) - mask * p / h, rtol=1e-5, atol=1e-7)
    assert float(new.alpha[0, 1]) == 0.0  # a dead slot stays dead
    np.testing.assert_array_equal(new.bases, lay.bases)
    np.testing.assert_allclose(new.mu_alpha, 0.1 * ga, rtol=1e-5, atol=1e-9)


def _nearest_codes_bruteforce(target_groups, alpha, mask):
    """Per element, the sign pattern over live slots whose ``sum alpha_i b_i`` is nearest the target."""
    gcount, nslots = alpha.shape
    out = np.zeros((gcount, nslots, target_groups.shape[1]))
    for gi in range(gcount):
        live = np.flatnonzero(mask[gi])
        combos = np.array(list(itertools.product((-1.0, 1.0), repeat=len(live))))
        values = combos @ alpha[gi, live]
        best = np.argmin(np.abs(target_groups[gi][:, None] - values[None, :]), axis=1)
        out[gi][live] = combos[best].T
    return out


@pytest.mark.parametrize("quirks", [False, True])
def test_basis_step_rounds_the_model_optimum_and_refits_by_weighted_least_squares(quirks):
    lay = _layer(w_fp=W * 1.5)  # a buffer unlike the reconstruction, to see which one is the target
    x = steps.layer_step(lay, G, SHAPE, STRUCTURE, SUBC, _model())
    new = steps.basis_step(x, jnp.asarray(True), quirks=quirks)
    src = np.asarray(lay.w_fp if quirks else layer_weights(lay, SHAPE, STRUCTURE, SUBC), np.float64)
    target = _groups(src - np.asarray(x.p) / np.asarray(x.h))
    codes = _nearest_codes_bruteforce(target, np.asarray(lay.alpha, np.float64), np.asarray(lay.mask))
    # the new bases are the nearest codes up to one sign per slot (fix_signs makes alpha >= 0)
    prod = np.asarray(new.bases, np.float64) * codes
    np.testing.assert_array_equal(np.abs(prod).min(-1), np.abs(prod).max(-1))
    np.testing.assert_array_equal(np.abs(prod).max(-1), np.asarray(lay.mask, np.float64))
    assert np.all(np.asarray(new.alpha) >= 0)
    hh = _groups(x.h)
    for gi in range(target.shape[0]):
        b = np.asarray(new.bases, np.float64)[gi]
        ref = np.linalg.lstsq((b * np.sqrt(hh[gi])).T, target[gi] * np.sqrt(hh[gi]), rcond=None)[0]
        np.testing.assert_allclose(new.alpha[gi], ref, rtol=2e-3, atol=1e-6)
    np.testing.assert_array_equal(new.w_fp, layer_weights(new, SHAPE, STRUCTURE, SUBC))
    mu = ops.to_groups(new.mu, STRUCTURE, SUBC)
    np.testing.assert_allclose(new.mu_alpha, ops.grad_to_alpha(new.bases, mu, new.mask), rtol=1e-6)


def test_ste_step_moves_the_full_precision_buffer():
    lay = _layer(w_fp=W * 1.5)
    x = steps.layer_step(lay, G, SHAPE, STRUCTURE, SUBC, _model())
    step = np.asarray(x.p) / np.asarray(x.h)
    entering = steps.ste_step(x, jnp.asarray(True))
    w_hat = np.asarray(layer_weights(lay, SHAPE, STRUCTURE, SUBC))
    np.testing.assert_allclose(entering.w_fp, w_hat - step, rtol=1e-6, atol=1e-7)
    inside = steps.ste_step(x, jnp.asarray(False))
    np.testing.assert_allclose(inside.w_fp, 1.5 * np.asarray(W) - step, rtol=1e-6, atol=1e-7)
    refit = steps.refit(x.layer, inside.w_fp, x.h, STRUCTURE, SUBC)
    np.testing.assert_array_equal(inside.bases, refit.bases)


def test_candidate_count_rounds_stochastically_or_half_up():
    live = jnp.ones(25, bool)  # 25 * 0.1 = 2.5
    assert int(steps.candidate_count(live, 0.1)) == 3
    assert int(steps.candidate_count(live.at[:5].set(False), 0.1)) == 2
    draws = {int(steps.candidate_count(live, 0.1, k)) for k in jax.random.split(jax.random.key(0), 64)}
    assert draws == {2, 3}


def test_prune_candidates_are_the_live_slots_of_least_loss_increase():
    lay = _layer(num_bases=3)
    lay = lay._replace(mask=lay.mask.at[1, 0].set(False), alpha=lay.alpha.at[1, 0].set(0.0))
    x = steps.layer_step(lay, G, SHAPE, STRUCTURE, SUBC, _model())
    top_k = 0.4
    c = steps.prune_candidates(x, _model(), None, top_k=top_k)
    _, _, _, p, h = steps.alpha_moments(x, _model())
    a = np.asarray(lay.alpha, np.float64)
    d = (-np.asarray(p) * a + np.asarray(h) * a * a / 2).reshape(-1)
    live = np.asarray(lay.mask).reshape(-1)
    k = math.floor(live.sum() * top_k + 0.5)
    expected = np.flatnonzero(live)[np.argsort(d[live], kind="stable")[:k]]
    assert sorted(np.asarray(c.slots)[np.asarray(c.valid)].tolist()) == sorted(expected.tolist())
    np.testing.assert_allclose(np.sort(np.asarray(c.score)[np.asarray(c.valid)]), np.sort(d[expected]),
                               rtol=1e-5)
    assert np.all(np.isinf(np.asarray(c.score)[~np.asarray(c.valid)]))


def test_prune_choose_ranks_across_layers_and_apply_kills_the_slots():
    scores = [jnp.array([0.3, 0.1, jnp.inf]), jnp.array([0.2, 0.05])]
    valid = [jnp.array([True, True, False]), jnp.array([True, True])]
    chosen = steps.prune_choose(scores, valid, jnp.float32(0.5))  # floor(4 * 0.5) = 2 removals
    np.testing.assert_array_equal(chosen, [False, True, False, False, True])
    lay = _layer()
    slots = jnp.array([1, 6])  # flat (group, slot) indices: (0, 1) and (3, 0)
    new = steps.prune_apply(lay, slots, jnp.array([True, False]))
    mask = np.asarray(lay.mask).copy()
    mask[0, 1] = False
    np.testing.assert_array_equal(new.mask, mask)
    assert float(new.alpha[0, 1]) == 0.0 and not np.any(np.asarray(new.bases)[0, 1])
    np.testing.assert_array_equal(new.alpha[3], lay.alpha[3])


def test_prune_removes_floor_of_k_q_coordinates_over_all_layers():
    xs = [steps.layer_step(_layer(num_bases=3), G * s, SHAPE, STRUCTURE, SUBC, _model()) for s in (1, 2)]
    top_k, rate = 0.5, 0.25
    out = steps.prune(xs, _model(), jnp.float32(rate), jax.random.key(0), top_k=top_k,
                      stochastic_rounding=False)
    before = [int(np.sum(x.layer.mask)) for x in xs]
    after = [int(np.sum(lay.mask)) for lay in out]
    k_total = sum(math.floor(n * top_k + 0.5) for n in before)
    assert sum(before) - sum(after) == math.floor(k_total * rate / top_k) > 0
    for lay in out:
        assert isinstance(lay, ALQLayer)
        m = np.asarray(lay.mask)
        assert np.all(np.asarray(lay.alpha)[~m] == 0) and np.all(np.asarray(lay.bases)[~m] == 0)
