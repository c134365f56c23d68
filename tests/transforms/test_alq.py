"""The ALQ optimizer (ALGORITHMS.md sections 1.3-1.6, 6): each mode against its formulas, the pruning
counts against the schedule, the forward pass, sharding, and an orbax round trip with identical
continuation."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

import hqjax
from hqjax.ops import alq as ops
from hqjax.transforms import ALQ_MODES, alq_layers, alq_optimizer, alq_pipeline, alq_reconstruction
from tests.helpers import assert_trees_all_close

COORD, BASIS, STE, PRUNE = (ALQ_MODES.index(m) for m in ("coordinate", "basis", "ste", "prune"))
GROUPS = (("conv", "kernelwise"), ("dense", "subchannelwise", 2))


class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(4, (3, 3), name="conv")(x))
        return nn.Dense(3, name="dense")(x.reshape((x.shape[0], -1)))


NET = Net()
_rng = np.random.default_rng(0)
X = jnp.asarray(_rng.normal(size=(16, 4, 4, 2)), jnp.float32)
Y = jnp.asarray(_rng.integers(0, 3, size=16))
PARAMS = NET.init(jax.random.key(0), X)["params"]


def _loss(params, state):
    logits = NET.apply({"params": hqjax.forward_params(params, state)}, X)
    return optax.softmax_cross_entropy_with_integer_labels(logits, Y).mean()


def _tx(mode, lr=0.01, rate=0.0, **kw):
    kw.setdefault("groups", GROUPS)
    kw.setdefault("num_bases", 3)
    return alq_optimizer(lambda t: lr, mode if callable(mode) else (lambda t: mode), lambda t: rate, **kw)


def _step_fn(tx):
    @jax.jit
    def step(params, state):
        grads = jax.grad(_loss)(params, state)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, grads

    return step


def _amsgrad(m, v, vmax, g, t, lr, b1=0.9, b2=0.999, eps=1e-8):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    vmax = np.maximum(vmax, v)
    p = lr * m / (1 - b1**t)
    h = (np.sqrt(vmax) + eps) / np.sqrt(1 - b2**t)
    return m, v, vmax, p, h


def test_init_sketches_and_forward_is_the_exact_reconstruction():
    tx = _tx(COORD)
    state = tx.init(PARAMS)
    lay = alq_layers(state)["conv/kernel"]
    g = ops.to_groups(PARAMS["conv"]["kernel"], "kernelwise")
    b, a, m = ops.sketch(g, 3)
    np.testing.assert_array_equal(lay.bases, b)
    np.testing.assert_array_equal(lay.alpha, a)
    fwd = hqjax.forward_params(PARAMS, state)
    rec = alq_reconstruction(state)
    np.testing.assert_array_equal(fwd["conv"]["kernel"], rec["conv/kernel"])
    np.testing.assert_array_equal(fwd["dense"]["bias"], PARAMS["dense"]["bias"])  # FP leaf untouched
    # the gradient reaches params unchanged: it is the gradient at the reconstruction
    g_params = jax.grad(_loss)(PARAMS, state)
    plain_loss = lambda q: optax.softmax_cross_entropy_with_integer_labels(  # noqa: E731
        NET.apply({"params": q}, X), Y
    ).mean()
    at_rec = jax.grad(plain_loss)(fwd)
    assert_trees_all_close(g_params, at_rec, rtol=0, atol=0)


def test_coordinate_step_is_amsgrad_on_alpha_and_lands_on_the_reconstruction():
    lr = 0.01
    tx = _tx(COORD, lr=lr)
    state = tx.init(PARAMS)
    grads = jax.grad(_loss)(PARAMS, state)
    updates, new = tx.update(grads, state, PARAMS)
    params = optax.apply_updates(PARAMS, updates)
    for path, structure, subc in (("conv/kernel", "kernelwise", 1), ("dense/kernel", "subchannelwise", 2)):
        old, lay = alq_layers(state)[path], alq_layers(new)[path]
        leaf = grads["conv" if path.startswith("conv") else "dense"]["kernel"]
        gg = np.asarray(ops.to_groups(leaf, structure, subc), np.float64)
        b = np.asarray(old.bases, np.float64)
        ga = np.einsum("gin,gn->gi", b, gg) * np.asarray(old.mask)
        z = np.zeros_like(ga)
        _, _, _, p, h = _amsgrad(z, z, z, ga, 1, lr)
        np.testing.assert_allclose(lay.alpha, np.asarray(old.alpha) - p / h * np.asarray(old.mask), rtol=1e-5,
                                   atol=1e-7)
        np.testing.assert_array_equal(lay.bases, old.bases)
    rec = alq_reconstruction(new)
    # optax.apply_updates computes p + (w - p): within one float32 rounding of w
    np.testing.assert_allclose(params["conv"]["kernel"], rec["conv/kernel"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(hqjax.forward_params(params, new)["conv"]["kernel"], rec["conv/kernel"])
    # full-precision leaves: Adam at the same learning rate
    fp = optax.adam(lr)
    fp_updates, _ = fp.update(grads["dense"]["bias"], fp.init(PARAMS["dense"]["bias"]))
    np.testing.assert_allclose(updates["dense"]["bias"], fp_updates, rtol=1e-6)


def test_basis_step_rounds_the_model_optimum_then_refits_with_the_curvature():
    lr = 0.05
    tx = _tx(BASIS, lr=lr)
    state = tx.init(PARAMS)
    grads = jax.grad(_loss)(PARAMS, state)
    _, new = tx.update(grads, state, PARAMS)
    old, lay = alq_layers(state)["dense/kernel"], alq_layers(new)["dense/kernel"]
    g = np.asarray(grads["dense"]["kernel"], np.float64)
    z = np.zeros_like(g)
    _, _, _, p, h = _amsgrad(z, z, z, g, 1, lr)
    w_hat = np.asarray(alq_reconstruction(state)["dense/kernel"], np.float64)
    target = w_hat - p / h
    tg = ops.to_groups(jnp.asarray(target, jnp.float32), "subchannelwise", 2)
    hg = ops.to_groups(jnp.asarray(h, jnp.float32), "subchannelwise", 2)
    # every element moves to the nearest value representable with the old coordinates ...
    codes = ops.nearest_codes(tg, old.alpha, old.mask)
    alpha = ops.wls_refit(codes, tg, hg, old.mask)
    codes, alpha = ops.fix_signs(codes, alpha)
    np.testing.assert_array_equal(lay.bases, codes)
    np.testing.assert_allclose(lay.alpha, alpha, rtol=1e-5, atol=1e-7)
    assert np.all(np.asarray(lay.alpha)[np.asarray(lay.mask)] >= 0)
    # ... and the refit is the h-weighted least-squares optimum for those codes (float64 reference)
    bb, tt, hh = (np.asarray(v, np.float64) for v in (codes, tg, hg))
    for gi in range(bb.shape[0]):
        live = np.asarray(lay.mask)[gi]
        a_ref = np.linalg.lstsq((bb[gi, live] * np.sqrt(hh[gi])).T, tt[gi] * np.sqrt(hh[gi]), rcond=None)[0]
        got = np.abs(np.asarray(lay.alpha)[gi, live])
        np.testing.assert_allclose(got, np.abs(a_ref), rtol=2e-3, atol=1e-6)
    # the coordinate-domain moments are re-derived from the weight-domain ones (1.3)
    mu = ops.to_groups(lay.mu, "subchannelwise", 2)
    np.testing.assert_allclose(lay.mu_alpha, ops.grad_to_alpha(lay.bases, mu, lay.mask), rtol=1e-6)


def test_ste_mode_keeps_a_full_precision_buffer():
    lr = 0.05
    tx = _tx(lambda t: jnp.where(t < 1, COORD, STE), lr=lr)
    step = _step_fn(tx)
    params, state = PARAMS, tx.init(PARAMS)
    params, state, _ = step(params, state)
    w_hat = alq_reconstruction(state)["dense/kernel"]
    grads = jax.grad(_loss)(params, state)
    _, new = tx.update(grads, state, params)
    lay = alq_layers(new)["dense/kernel"]
    old = alq_layers(state)["dense/kernel"]
    mu = 0.9 * old.mu + 0.1 * grads["dense"]["kernel"]
    nu_max = jnp.maximum(old.nu_max, 0.999 * old.nu + 0.001 * grads["dense"]["kernel"] ** 2)
    p = lr * mu / (1 - 0.9**2)
    h = (jnp.sqrt(nu_max) + 1e-8) / jnp.sqrt(1 - 0.999**2)
    # entering the STE phase the buffer starts at the reconstruction, then takes the Adam step
    np.testing.assert_allclose(lay.w_fp, w_hat - p / h, rtol=1e-5, atol=2e-6)
    _, newer = tx.update(grads, new, params)
    expected = lay.w_fp - _p_over_h(lay, grads, lr, 3)
    np.testing.assert_allclose(alq_layers(newer)["dense/kernel"].w_fp, expected, rtol=1e-5, atol=2e-6)


def _p_over_h(lay, grads, lr, t):
    g = grads["dense"]["kernel"]
    mu = 0.9 * lay.mu + 0.1 * g
    nu_max = jnp.maximum(lay.nu_max, 0.999 * lay.nu + 0.001 * g * g)
    return (lr * mu / (1 - 0.9**t)) / ((jnp.sqrt(nu_max) + 1e-8) / jnp.sqrt(1 - 0.999**t))


def test_official_quirk_first_basis_step_targets_the_pretrained_weights():
    lr = 0.05
    plain, quirky = _tx(BASIS, lr=lr), _tx(BASIS, lr=lr, reproduce_official_quirks=True)
    s_plain, s_quirk = plain.init(PARAMS), quirky.init(PARAMS)
    grads = jax.grad(_loss)(PARAMS, s_plain)
    _, n_plain = plain.update(grads, s_plain, PARAMS)
    _, n_quirk = quirky.update(grads, s_quirk, PARAMS)
    old = alq_layers(s_quirk)["dense/kernel"]
    np.testing.assert_array_equal(old.w_fp, PARAMS["dense"]["kernel"])
    g = grads["dense"]["kernel"]
    p = lr * (0.1 * g) / 0.1
    h = (jnp.sqrt(0.001 * g * g) + 1e-8) / jnp.sqrt(0.001)
    tg = ops.to_groups(PARAMS["dense"]["kernel"] - p / h, "subchannelwise", 2)
    codes = ops.nearest_codes(tg, old.alpha, old.mask)
    np.testing.assert_array_equal(alq_layers(n_quirk)["dense/kernel"].bases, codes)
    assert not np.array_equal(alq_layers(n_plain)["dense/kernel"].bases, codes)


@pytest.mark.parametrize("stochastic", [False, True])
def test_pruning_counts_follow_the_schedule(stochastic):
    top_k, rate, steps = 0.2, 0.05, 12
    tx = _tx(PRUNE, rate=rate, top_k=top_k, stochastic_rounding=stochastic, num_bases=4)
    step = _step_fn(tx)
    params, state = PARAMS, tx.init(PARAMS)
    live0 = {p: int(np.sum(x.mask)) for p, x in alq_layers(state).items()}
    n0 = sum(live0.values())
    lives = [n0]
    for _ in range(steps):
        before = {p: int(np.sum(x.mask)) for p, x in alq_layers(state).items()}
        params, state, grads = step(params, state)
        after = {p: int(np.sum(x.mask)) for p, x in alq_layers(state).items()}
        if not stochastic:
            # floor(K q) removals, K = sum_l round_half_up(N_l top_k), q = rate / top_k (1.4 d)
            k_total = sum(math.floor(n * top_k + 0.5) for n in before.values())
            assert sum(before.values()) - sum(after.values()) == math.floor(k_total * rate / top_k)
        lives.append(sum(after.values()))
        for lay in alq_layers(state).values():
            m = np.asarray(lay.mask)
            assert np.all(np.asarray(lay.alpha)[~m] == 0) and np.all(np.asarray(lay.bases)[~m] == 0)
    assert all(b >= a for b, a in zip(lives, lives[1:], strict=False))
    # ~ N (1 - rate)^steps live coordinates after the epoch (smooth bitwidth reduction)
    assert abs(lives[-1] - n0 * (1 - rate) ** steps) <= 0.1 * n0
    # the removed coordinates are those of least modelled loss increase: the network stays exact
    rec = alq_reconstruction(state)
    np.testing.assert_array_equal(hqjax.forward_params(params, state)["conv"]["kernel"], rec["conv/kernel"])


def test_pipeline_schedule_matches_the_official_recipe():
    p = alq_pipeline(100)  # LeNet-5 defaults: 4 x (20 + 10 + 1) + 50 + 20 epochs
    assert p.num_epochs == 194
    modes = [m for m, _, _ in p.epochs]
    assert modes[:20] == ["basis"] * 20 and modes[20:30] == ["coordinate"] * 10 and modes[30] == "prune"
    assert modes[124:174] == ["ste"] * 50 and modes[174:] == ["coordinate"] * 20
    np.testing.assert_allclose(p.learning_rate(0), 1e-3 * 0.8, rtol=1e-6)
    np.testing.assert_allclose(p.learning_rate(29 * 100), 1e-3 * 0.8**30, rtol=1e-5)  # 20 basis + 10 coord
    np.testing.assert_allclose(p.learning_rate(31 * 100), 1e-3 * 0.8, rtol=1e-6)  # round 2 restarts
    np.testing.assert_allclose(p.prune_rate(30 * 100 + 5), 0.8 / 100, rtol=1e-6)
    assert float(p.prune_rate(0)) == 0.0
    with pytest.raises(ValueError, match="steps_per_epoch"):
        alq_pipeline(0)
    with pytest.raises(ValueError, match="ld_basis"):
        alq_pipeline(10, ld_basis=1.5)


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="groups"):
        _tx(COORD, groups=(("conv", "rowwise"),))
    with pytest.raises(ValueError, match="matches none"):
        _tx(COORD, groups=(("nothing_like_this", "pixelwise"),)).init(PARAMS)
    with pytest.raises(ValueError, match="kernelwise"):
        _tx(COORD, groups=(("dense", "kernelwise"),)).init(PARAMS)
    with pytest.raises(ValueError, match="top_k"):
        _tx(COORD, top_k=0.0)


def test_sharded_jit_on_eight_devices_matches_one_device(devices):
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    tx = _tx(lambda t: jnp.array([BASIS, COORD, PRUNE, STE])[t % 4], rate=0.1, top_k=0.2)

    def run(put):
        params, state = put(PARAMS), put(tx.init(PARAMS))

        @jax.jit
        def step(params, state, x):
            logits = NET.apply({"params": hqjax.forward_params(params, state)}, x)
            loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(  # noqa: E731
                NET.apply({"params": hqjax.forward_params(p, state)}, x), Y).mean()
            updates, state = tx.update(jax.grad(loss)(params), state, params)
            return optax.apply_updates(params, updates), state, logits

        x = put(X) if put is not None else X
        for _ in range(4):
            params, state, _ = step(params, state, x)
        return params, state

    shard_x = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    p8, s8 = run(lambda t: jax.device_put(t, shard_x) if t is X else jax.device_put(t, rep))
    p1, s1 = run(lambda t: t)
    assert_trees_all_close(p8, p1, rtol=1e-5, atol=1e-6)
    assert_trees_all_close(alq_reconstruction(s8), alq_reconstruction(s1), rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(s8), jax.tree.leaves(s1), strict=True):
        if a.dtype in (jnp.int8, jnp.bool_):
            np.testing.assert_array_equal(a, b)


def test_orbax_round_trip_and_identical_continuation(tmp_path):
    tx = _tx(lambda t: jnp.array([BASIS, COORD, PRUNE, STE, STE, COORD])[jnp.minimum(t, 5)], rate=0.1,
             top_k=0.2)
    step = _step_fn(tx)
    params, state = PARAMS, tx.init(PARAMS)
    for _ in range(3):
        params, state, _ = step(params, state)
    ckpt = {"params": params, "opt_state": state}
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp_path / "ckpt", ckpt)
        checkpointer.wait_until_finished()
        target = {"params": jax.eval_shape(lambda: PARAMS), "opt_state": jax.eval_shape(tx.init, PARAMS)}
        restored = checkpointer.restore(tmp_path / "ckpt", target)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(ckpt), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    p1, s1, p2, s2 = params, state, restored["params"], restored["opt_state"]
    for _ in range(3):
        p1, s1, _ = step(p1, s1)
        p2, s2, _ = step(p2, s2)
    assert_trees_all_close(p2, p1, rtol=0, atol=0)
    assert_trees_all_close(s2, s1, rtol=0, atol=0)


def test_summary_reports_bits_and_storage():
    tx = _tx(PRUNE, rate=0.3, top_k=0.5)
    step = _step_fn(tx)
    params, state = PARAMS, tx.init(PARAMS)
    params, state, _ = step(params, state)
    stats = hqjax.summarize(params, state)
    layers = alq_layers(state)
    n_conv, n_dense = PARAMS["conv"]["kernel"].size, PARAMS["dense"]["kernel"].size
    bits_conv = float(np.mean(np.sum(layers["conv/kernel"].mask, -1)))
    bits_dense = float(np.mean(np.sum(layers["dense/kernel"].mask, -1)))
    np.testing.assert_allclose(stats["conv/kernel/bits"], bits_conv, rtol=1e-6)
    np.testing.assert_allclose(stats["quantizer/average_bits"],
                               (bits_conv * n_conv + bits_dense * n_dense) / (n_conv + n_dense), rtol=1e-6)
    live = sum(int(np.sum(x.mask)) for x in layers.values())
    fp = PARAMS["conv"]["bias"].size + PARAMS["dense"]["bias"].size
    storage_bits = bits_conv * n_conv + bits_dense * n_dense + 32 * live + 32 * fp
    np.testing.assert_allclose(stats["quantizer/storage_bytes"], storage_bits / 8, rtol=1e-6)
    assert float(stats["quantizer/average_bits"]) < 3.0  # some coordinates were pruned
