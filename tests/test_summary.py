"""summarize: flat per-layer dict of scalars with closed-form values."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hqjax


def _params():
    rng = np.random.default_rng(0)
    return {
        "Dense_0": {"kernel": jnp.asarray(rng.normal(size=(10, 4)), jnp.float32), "bias": jnp.zeros(4)},
        "Dense_1": {"kernel": jnp.asarray(rng.normal(size=(4, 2)), jnp.float32)},
    }


def test_entropy_bound_values():
    np.testing.assert_allclose(hqjax.ternary_entropy_bits(jnp.array([0.0, 0.5, 1.0])), [1.0, 1.5, 0.0],
                               atol=1e-6)


def test_the_two_entropies_agree_and_the_old_names_warn():
    from hqjax.export import pack as pk

    p0 = 0.8
    per_weight = float(hqjax.ternary_entropy_bits(p0))
    assert pk.code_entropy_bits([800, 100, 100]) / 1000 == pytest.approx(per_weight, rel=1e-6)
    with pytest.warns(DeprecationWarning, match="ternary_entropy_bits"):
        assert float(hqjax.entropy_bits(p0)) == per_weight
    with pytest.warns(DeprecationWarning, match="code_entropy_bits"):
        assert pk.entropy_bits([800, 100, 100]) == pk.code_entropy_bits([800, 100, 100])


def test_keys_and_values_for_twn():
    params = _params()
    s = hqjax.twn(optax.sgd(0.1)).init(params)
    stats = jax.jit(hqjax.summarize)(params, s)
    for layer in ("Dense_0/kernel", "Dense_1/kernel"):
        for key in ("sparsity", "scale", "cosine", "flip_ratio", "bits_dense", "bits_entropy"):
            assert np.ndim(stats[f"{layer}/{key}"]) == 0
    assert not any(k.startswith("Dense_0/bias") for k in stats)
    v = np.asarray(params["Dense_0"]["kernel"])
    q = np.asarray(hqjax.ternarize(v))
    p0 = float(np.mean(q == 0))
    assert float(stats["Dense_0/kernel/sparsity"]) == pytest.approx(p0)
    h = -(p0 * np.log2(p0) + (1 - p0) * np.log2(1 - p0)) + (1 - p0)
    assert float(stats["Dense_0/kernel/bits_entropy"]) == pytest.approx(h, rel=1e-5)
    cos = [np.dot(v[:, j], q[:, j]) / np.linalg.norm(v[:, j]) / np.linalg.norm(q[:, j]) for j in range(4)]
    assert float(stats["Dense_0/kernel/cosine"]) == pytest.approx(np.mean(cos), rel=1e-5)
    scale = [np.abs(q[:, j][q[:, j] != 0]).mean() for j in range(4)]
    assert float(stats["Dense_0/kernel/scale"]) == pytest.approx(np.mean(scale), rel=1e-5)
    assert float(stats["Dense_0/kernel/flip_ratio"]) == 0.0
    assert float(stats["quantizer/phase"]) == 1.0


def test_flip_ratio_counts_sign_changes_of_the_last_step():
    params = _params()
    tx = hqjax.twn(optax.sgd(1.0))
    s = tx.init(params)
    grads = jax.tree.map(lambda x: 2.0 * x, params)  # the step flips every sign: p - 2p = -p
    u, s = tx.update(grads, s, params)
    new = optax.apply_updates(params, u)
    stats = hqjax.summarize(new, s)
    assert float(stats["Dense_0/kernel/flip_ratio"]) == 1.0
    assert float(stats["quantizer/flip_ratio"]) == 1.0


def test_phase_and_sparsity_of_hq():
    params = _params()
    tx = hqjax.hq(optax.sgd(0.0), total_steps=6, quantize_step=2, prune_end=1, sparsity=0.5)
    s = tx.init(params)
    assert float(hqjax.summarize(params, s)["quantizer/phase"]) == 0.0
    for _ in range(2):
        u, s = tx.update(jax.tree.map(jnp.zeros_like, params), s, params)
        params = optax.apply_updates(params, u)
    stats = hqjax.summarize(params, s)
    assert float(stats["quantizer/phase"]) == 1.0
    assert float(stats["quantizer/step"]) == 2.0
    assert float(stats["Dense_0/kernel/sparsity"]) == 0.5
    assert float(stats["quantizer/cosine"]) == pytest.approx(1.0, abs=1e-6)  # after the reinit
