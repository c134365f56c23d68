"""forward_params: ternary per unit, exact identity elsewhere, STE gradients, state lookup."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hqjax
from hqjax.ops import normalized_ste, project_to_sphere, rescale_factor, ternary_parts


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "Dense_0": {"kernel": jnp.asarray(rng.normal(size=(12, 6)), jnp.float32), "bias": jnp.arange(6.0)},
        "Dense_1": {"kernel": jnp.asarray(rng.normal(size=(6, 3)), jnp.float32), "bias": jnp.ones(3)},
    }


def _upstream(params, seed=1):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), params)


def _vjp(params, state, g):
    _, vjp = jax.vjp(lambda p: hqjax.forward_params(p, state), params)
    return vjp(g)[0]


def _advance(tx, params, steps):
    """Run `steps` updates with zero gradients (the phase counter advances, weights barely move)."""
    s = tx.init(params)
    update = jax.jit(tx.update)
    for _ in range(steps):
        u, s = update(jax.tree.map(jnp.zeros_like, params), s, params)
        params = optax.apply_updates(params, u)
    return params, s


def _assert_ternary_per_unit(w):
    w = np.asarray(w)
    units = w.reshape(-1, w.shape[-1]).T
    for u in units:
        mags = np.unique(np.abs(u[u != 0]))
        assert mags.size <= 1, f"unit has several magnitudes {mags}"


@pytest.mark.parametrize("name", ["twn", "ptq", "hq", "hla_tq"])
def test_ternary_phase_is_exactly_ternary_and_others_identity(name):
    params = _params()
    kw = {} if name == "twn" else dict(total_steps=6, quantize_step=2)
    if name in ("ptq", "hq"):
        kw["prune_end"] = 2
    params, s = _advance(hqjax.get_method(name, optax.sgd(0.0), **kw), params, 3)
    q = hqjax.forward_params(params, s)
    for layer in ("Dense_0", "Dense_1"):
        _assert_ternary_per_unit(q[layer]["kernel"])
        assert q[layer]["bias"] is params[layer]["bias"]  # exact identity, same object


def test_twn_forward_and_identity_gradient():
    params = _params()
    s = hqjax.twn(optax.sgd(0.1)).init(params)
    q = hqjax.forward_params(params, s)
    ref = hqjax.ternarize(params["Dense_0"]["kernel"], threshold="twn", scale="lsq", axis=-1)
    np.testing.assert_array_equal(q["Dense_0"]["kernel"], ref)
    g = _upstream(params)
    grads = _vjp(params, s, g)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), grads, g)


def test_ptq_phase_a_is_projection_with_exact_jacobian():
    params = _params()
    tx = hqjax.ptq(optax.sgd(0.0), total_steps=30, sparsity=0.5, prune_end=3)
    params, s = _advance(tx, params, 4)
    mask = hqjax.find_quantizer_states(s).prune.masks["Dense_0"]["kernel"]
    v = params["Dense_0"]["kernel"]
    q = hqjax.forward_params(params, s)
    np.testing.assert_allclose(q["Dense_0"]["kernel"], project_to_sphere(v * mask), rtol=1e-6)
    g = _upstream(params)
    _, vjp = jax.vjp(lambda x: project_to_sphere(x * mask), v)
    np.testing.assert_allclose(
        _vjp(params, s, g)["Dense_0"]["kernel"], vjp(g["Dense_0"]["kernel"])[0], rtol=1e-5
    )


def test_hq_phase_b_uses_the_normalized_ste():
    params = _params()
    tx = hqjax.hq(optax.sgd(0.0), total_steps=6, quantize_step=2, prune_end=2, sparsity=0.5)
    params, s = _advance(tx, params, 2)
    mask = hqjax.find_quantizer_states(s).prune.masks["Dense_0"]["kernel"]
    v = params["Dense_0"]["kernel"]
    q = hqjax.forward_params(params, s)
    np.testing.assert_array_equal(q["Dense_0"]["kernel"], normalized_ste(v, mask))
    np.testing.assert_array_equal((np.asarray(q["Dense_0"]["kernel"]) == 0).sum(0), 6)
    g = _upstream(params)
    _, vjp = jax.vjp(lambda x: project_to_sphere(x * mask), v)
    np.testing.assert_allclose(
        _vjp(params, s, g)["Dense_0"]["kernel"], vjp(g["Dense_0"]["kernel"])[0], rtol=1e-5
    )


def test_hla_tq_phase_q_uses_the_rescaled_ste():
    params = _params()
    tx = hqjax.hla_tq(optax.sgd(0.0), total_steps=8, quantize_step=2)
    params, s = _advance(tx, params, 3)
    qs = hqjax.find_quantizer_states(s).quantizer
    v = params["Dense_0"]["kernel"]
    w, pvjp = jax.vjp(project_to_sphere, v)
    parts = ternary_parts(w, threshold="twn", scale="lsq")
    q = hqjax.forward_params(params, s)
    np.testing.assert_allclose(q["Dense_0"]["kernel"], parts.scale * parts.codes, rtol=1e-6)
    g = _upstream(params)
    tau = qs.temperature / parts.threshold
    r = rescale_factor(w, parts.threshold, tau)
    expect = pvjp(r * g["Dense_0"]["kernel"])[0]
    np.testing.assert_allclose(_vjp(params, s, g)["Dense_0"]["kernel"], expect, rtol=1e-5, atol=1e-7)


def test_phase_a_of_hla_tq_is_the_sphere():
    params = _params()
    s = hqjax.hla_tq(optax.sgd(0.0), total_steps=9).init(params)
    q = hqjax.forward_params(params, s)
    np.testing.assert_allclose(
        q["Dense_1"]["kernel"], project_to_sphere(params["Dense_1"]["kernel"]), rtol=1e-6
    )


def test_ttq_forward_uses_learned_scales():
    params = _params()
    s = hqjax.ttq(optax.sgd(0.1)).init(params)
    wp, wn = hqjax.find_quantizer_states(s).ttq.scales["Dense_0"]["kernel"]
    q = np.asarray(hqjax.forward_params(params, s)["Dense_0"]["kernel"])
    for j in range(6):
        col = q[:, j]
        assert set(np.unique(col)) <= {0.0, float(wp[0, j]), -float(wn[0, j])}
    g = _upstream(params)
    np.testing.assert_array_equal(_vjp(params, s, g)["Dense_0"]["kernel"], g["Dense_0"]["kernel"])


def test_scaled_leaves_keep_a_least_squares_scale():
    params = _params()
    tx = hqjax.hq(optax.sgd(0.0), total_steps=6, quantize_step=2, prune_end=2, scaled="Dense_1")
    params, s = _advance(tx, params, 3)
    q = hqjax.forward_params(params, s)["Dense_1"]["kernel"]
    v = params["Dense_1"]["kernel"]
    mask = np.asarray(v) != 0
    np.testing.assert_allclose(np.abs(q).max(0), np.abs(np.asarray(v)).sum(0) / mask.sum(0), rtol=1e-6)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda tx: tx,
        lambda tx: optax.MultiSteps(tx, every_k_schedule=2),
        lambda tx: optax.apply_if_finite(tx, max_consecutive_errors=2),
        lambda tx: optax.chain(optax.clip_by_global_norm(1.0), tx),
        lambda tx: optax.MultiSteps(optax.apply_if_finite(tx, 3), every_k_schedule=2),
    ],
    ids=["plain", "multisteps", "apply_if_finite", "chain", "nested"],
)
def test_state_is_found_inside_wrappers_and_jit(wrap):
    params = _params()
    tx = wrap(hqjax.twn(optax.adam(1e-3)))
    s = tx.init(params)
    ref = hqjax.forward_params(params, hqjax.twn(optax.adam(1e-3)).init(params))
    q = jax.jit(hqjax.forward_params)(params, s)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), q, ref)


def test_state_is_found_inside_inject_hyperparams():
    params = _params()
    tx = optax.inject_hyperparams(hqjax.hq, static_args=hqjax.static_args("hq"))(
        inner=optax.sgd(0.1), total_steps=9, sparsity=0.5
    )
    s = tx.init(params)
    assert hqjax.find_quantizer_states(s).config.method == "hq"
    hqjax.forward_params(params, s)


def test_lookup_errors():
    params = _params()
    with pytest.raises(ValueError, match="no hqjax QuantizerState"):
        hqjax.forward_params(params, optax.sgd(0.1).init(params))
    s = hqjax.twn(optax.sgd(0.1)).init(params)
    with pytest.raises(ValueError, match="Found 2 hqjax QuantizerState"):
        hqjax.forward_params(params, (s, s))
    with pytest.raises(ValueError, match="not in `params`"):
        hqjax.forward_params({"Dense_0": params["Dense_0"]}, s)


def test_hq_exact_cosine_threshold_inside_the_mask():
    params = _params()
    tx = hqjax.hq(optax.sgd(0.0), total_steps=6, quantize_step=2, prune_end=2, threshold="exact_cosine",
                  zeros="frozen")
    params, s = _advance(tx, params, 3)
    mask = np.asarray(hqjax.find_quantizer_states(s).prune.masks["Dense_0"]["kernel"])
    q = np.asarray(hqjax.forward_params(params, s)["Dense_0"]["kernel"])
    _assert_ternary_per_unit(q)
    assert np.all(q[~mask] == 0)  # zeros include the pruned weights, possibly more
    np.testing.assert_allclose(np.linalg.norm(q, axis=0), 1.0, rtol=1e-6)


def test_ternary_forward_composes_with_prune():
    params = _params()
    tx = optax.chain(hqjax.transforms.quantizer("ternary"), optax.sgd(0.0), hqjax.transforms.prune(0.5))
    params, s = _advance(tx, params, 1)
    q = np.asarray(hqjax.forward_params(params, s)["Dense_0"]["kernel"])
    _assert_ternary_per_unit(q)
    assert np.all((q == 0).sum(0) >= 6)
    g = _upstream(params)
    mask = np.asarray(hqjax.find_quantizer_states(s).prune.masks["Dense_0"]["kernel"])
    grads = _vjp(params, s, g)["Dense_0"]["kernel"]
    np.testing.assert_array_equal(grads, np.where(mask, g["Dense_0"]["kernel"], 0.0))  # masked STE


def _zeros_per_unit(w):
    w = np.asarray(w)
    return (w.reshape(-1, w.shape[-1]) == 0).sum(axis=0)


def test_two_phase_twn_is_full_precision_before_quantize_step():
    params = _params()
    tx = hqjax.twn(optax.sgd(0.0), quantize_step=3)
    p2, s2 = _advance(tx, params, 2)  # count 2 < 3: the forward pass is the latent weights
    q = hqjax.forward_params(p2, s2)
    np.testing.assert_array_equal(q["Dense_0"]["kernel"], p2["Dense_0"]["kernel"])
    g = _upstream(p2)
    np.testing.assert_array_equal(_vjp(p2, s2, g)["Dense_0"]["kernel"], g["Dense_0"]["kernel"])
    p3, s3 = _advance(tx, params, 3)  # from step 3 on: TWN
    q3 = hqjax.forward_params(p3, s3)
    want = hqjax.forward_params(p3, _advance(hqjax.twn(optax.sgd(0.0)), params, 3)[1])
    np.testing.assert_array_equal(q3["Dense_0"]["kernel"], want["Dense_0"]["kernel"])
    assert not np.array_equal(q3["Dense_0"]["kernel"], p3["Dense_0"]["kernel"])


def test_twn_quantile_zeros_have_the_requested_count_per_unit():
    params = _params()
    _, s = _advance(hqjax.twn(optax.sgd(0.0), sparsity=0.5), params, 1)
    q = hqjax.forward_params(params, s)
    _assert_ternary_per_unit(q["Dense_0"]["kernel"])
    assert (_zeros_per_unit(q["Dense_0"]["kernel"]) == 6).all()  # 12 inputs per unit
    w = np.abs(np.asarray(params["Dense_0"]["kernel"]))
    kept = np.asarray(q["Dense_0"]["kernel"]) != 0
    for j in range(w.shape[1]):  # the zeros are the smallest magnitudes of each unit
        assert w[~kept[:, j], j].max() < w[kept[:, j], j].min()


@pytest.mark.parametrize("name", ["ptq", "hq"])
def test_quantile_zeros_release_the_mask_after_the_boundary(name):
    """zeros='quantile': the latent weights pruned in phase A are free again in phase B (a gradient
    moves them off 0), while the forward pass keeps round(sparsity * n) zeros per unit, chosen by
    magnitude at every step; zeros='frozen' holds them at exactly 0."""
    params = _params()
    kw = dict(total_steps=12, quantize_step=4, prune_end=3, sparsity=0.5)
    latent_zeros = {}
    for zeros in ("frozen", "quantile"):
        tx = hqjax.get_method(name, optax.sgd(0.1), zeros=zeros, **kw)
        s = tx.init(params)
        p = params
        update = jax.jit(tx.update)
        for t in range(9):
            g = _upstream(p, seed=t)
            u, s = update(g, s, p)
            p = optax.apply_updates(p, u)
        k = np.asarray(p["Dense_0"]["kernel"])
        latent_zeros[zeros] = int((k == 0).sum())
        q = hqjax.forward_params(p, s)["Dense_0"]["kernel"]
        _assert_ternary_per_unit(q)
        assert (_zeros_per_unit(q) == 6).all(), zeros
        if zeros == "quantile":
            kept = np.asarray(q) != 0
            mags = np.abs(k)
            for j in range(k.shape[1]):
                assert mags[~kept[:, j], j].max() <= mags[kept[:, j], j].min()
    assert latent_zeros["frozen"] == 36  # half of 12 x 6, held at 0 through phase B
    assert latent_zeros["quantile"] < 36


def test_quantile_zeros_need_the_mask_threshold():
    with pytest.raises(ValueError, match="zeros='quantile'"):
        hqjax.hq(optax.sgd(0.1), total_steps=30, zeros="quantile", threshold="exact_cosine")
    with pytest.raises(ValueError, match="pass zeros='frozen'"):  # the default zeros is 'quantile'
        hqjax.hq(optax.sgd(0.1), total_steps=30, threshold="exact_cosine")
    with pytest.raises(ValueError, match="zeros"):
        hqjax.ptq(optax.sgd(0.1), total_steps=30, zeros="thawed")


def test_families_are_detected_once_and_give_every_mode():
    """`find_family`: ternary recipes and ALQ; each mode equals the public function of that mode."""
    from hqjax.forward import MultiBitFamily, TernaryFamily, find_family

    rng = np.random.default_rng(3)
    params = {"Dense_0": {"kernel": jnp.asarray(rng.normal(size=(16, 8)), jnp.float32),
                          "bias": jnp.zeros(8)}}
    cases = [(hqjax.hq(optax.sgd(0.1), total_steps=9), TernaryFamily),
             (hqjax.alq(3, num_bases=2, learning_rate=0.1), MultiBitFamily)]
    for tx, kind in cases:
        state = tx.init(params)
        family = find_family(optax.MultiSteps(tx, 2).init(params).inner_opt_state)
        assert isinstance(family, kind) and family.selected == ("Dense_0/kernel",)
        for mode, fn in (("forward", hqjax.forward_params), ("ternary", hqjax.ternary_params),
                         ("latent", hqjax.latent_params)):
            got, want = family.weights(params, mode), fn(params, state)
            for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        with pytest.raises(ValueError, match="mode"):
            family.weights(params, "binary")
    assert find_family(cases[0][0].init(params)).storage() == {"Dense_0/kernel": -1}
    layout = find_family(cases[1][0].init(params)).storage()
    assert [entry[0] for entry in layout] == ["Dense_0/kernel"]
    with pytest.raises(ValueError, match="QuantizerState"):
        find_family(optax.sgd(0.1).init(params))
