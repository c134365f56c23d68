"""The optimizer state round-trips through orbax: save, restore against the abstract target from
``tx.init``, and continue identically (static config, None leaves, bool masks, int8 signs included)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

import hqjax
from tests.helpers import assert_trees_all_close

STEPS = 6
_rng = np.random.default_rng(0)
X = jnp.asarray(_rng.normal(size=(16, 6)), jnp.float32)
Y = jnp.asarray(_rng.normal(size=(16, 4)), jnp.float32)
PARAMS = {
    "Dense_0": {"kernel": jnp.asarray(_rng.normal(size=(6, 4)), jnp.float32), "bias": jnp.zeros(4)},
}


def _loss(params, state):
    p = hqjax.forward_params(params, state)["Dense_0"]
    return jnp.mean((X @ p["kernel"] + p["bias"] - Y) ** 2)


def _make(name):
    inner = optax.sgd(0.05, momentum=0.9)
    kw = {} if name in ("twn", "ttq") else dict(total_steps=STEPS, quantize_step=2)
    if name in ("ptq", "hq"):
        kw["prune_end"] = 1
    # MultiSteps adds a wrapper around the recipe state, as in a real training program.
    return optax.MultiSteps(hqjax.get_method(name, inner, **kw), every_k_schedule=1)


@pytest.mark.parametrize("name", ["twn", "ttq", "ptq", "hq", "hla_tq"])
def test_orbax_round_trip_and_identical_continuation(tmp_path, name):
    tx = _make(name)

    @jax.jit
    def step(params, state):
        grads = jax.grad(_loss)(params, state)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    params, state = PARAMS, tx.init(PARAMS)
    for _ in range(2):  # stop right at the phase boundary (and before HQ's reinit lands)
        params, state = step(params, state)
    ckpt = {"params": params, "opt_state": state}
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp_path / "ckpt", ckpt)
        checkpointer.wait_until_finished()
        target = {"params": jax.eval_shape(lambda: PARAMS), "opt_state": jax.eval_shape(tx.init, PARAMS)}
        restored = checkpointer.restore(tmp_path / "ckpt", target)
    assert jax.tree.structure(restored) == jax.tree.structure(ckpt)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(ckpt), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert (
        hqjax.find_quantizer_states(restored["opt_state"]).config == hqjax.find_quantizer_states(state).config
    )
    p1, s1 = params, state
    p2, s2 = restored["params"], restored["opt_state"]
    for _ in range(STEPS - 2):
        p1, s1 = step(p1, s1)
        p2, s2 = step(p2, s2)
    assert_trees_all_close(p2, p1, rtol=0, atol=0)
    assert_trees_all_close(s2, s1, rtol=0, atol=0)
