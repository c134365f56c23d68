"""prune: exact per-unit zero counts, pruned weights at exactly 0, monotone and frozen masks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hqjax import schedules
from hqjax.transforms import PruneState, prune


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "a": {"kernel": jnp.asarray(rng.normal(size=(5, 7)), jnp.float32), "bias": jnp.ones(7)},
        "b": {"kernel": jnp.asarray(rng.normal(size=(3, 3, 2, 4)), jnp.float32)},
    }


def _zeros_per_unit(x):
    x = np.asarray(x)
    return (x.reshape(-1, x.shape[-1]) == 0).sum(0)


def _run(tx, params, steps, seed=1):
    state = tx.init(params)
    update = jax.jit(tx.update)
    rng = np.random.default_rng(seed)
    history = []
    for _ in range(steps):
        grads = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), x.dtype), params)
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        history.append((params, next(x for x in state if isinstance(x, PruneState))))
    return history


def test_exact_zero_counts_follow_the_schedule():
    sched = schedules.agp(0.6, end_step=4)
    tx = optax.chain(optax.sgd(0.05, momentum=0.9), prune(sched))
    for t, (params, state) in enumerate(_run(tx, _params(), 6), start=1):
        for name, n in (("a", 5), ("b", 18)):
            k = int(np.floor(float(sched(t)) * n + 0.5))
            np.testing.assert_array_equal(_zeros_per_unit(params[name]["kernel"]), k)
            pruned = ~np.asarray(state.masks[name]["kernel"])
            np.testing.assert_array_equal(pruned, np.asarray(params[name]["kernel"]) == 0)
        assert state.masks["a"]["bias"] is None
        np.testing.assert_array_equal(params["a"]["bias"] != 0, True)


def test_masks_are_monotone_and_pruned_weights_stay_exactly_zero():
    tx = optax.chain(optax.adam(0.1), prune(schedules.agp(0.8, end_step=5)))
    prev = None
    for params, state in _run(tx, _params(), 8):
        m = np.asarray(state.masks["b"]["kernel"])
        if prev is not None:
            assert not np.any(m & ~prev), "a pruned weight came back"
        assert np.all(np.asarray(params["b"]["kernel"])[~m] == 0.0)
        prev = m


def test_frozen_from_and_update_every():
    tx = optax.chain(
        optax.sgd(0.5), prune(lambda t: jnp.minimum(0.1 * t, 0.5), update_every=2, frozen_from=5)
    )
    hist = _run(tx, _params(), 8)
    counts = [int(_zeros_per_unit(p["a"]["kernel"])[0]) for p, _ in hist]
    # steps 1..8: refresh at t = 2, 4 (every 2, before 5); frozen afterwards.
    assert counts == [0, 1, 1, 2, 2, 2, 2, 2]


def test_initial_masks_and_per_layer_axis():
    params = _params()
    state = prune(0.5, axis=None).init(params)
    assert isinstance(state, PruneState)
    assert int((~np.asarray(state.masks["a"]["kernel"])).sum()) == 18  # round(0.5 * 35) half up


def test_sparsity_out_of_range_fails_at_construction():
    with pytest.raises(ValueError, match="sparsity"):
        prune(1.2)
    with pytest.raises(ValueError, match="returned"):
        prune(lambda t: 0.5 * t, check_steps=(0, 4))
