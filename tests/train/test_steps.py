"""Train steps agree across parallel modes: 1 device, jit over an 8-device mesh, and pmap over 8."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn

import hqjax
from hqjax.models import CifarResNet
from hqjax.train import parallel
from hqjax.train.steps import TrainState, make_eval_step, make_train_step
from tests.helpers import assert_trees_all_close

STEPS = 2


def _setup(norm=nn.BatchNorm):
    model = CifarResNet(depth=8, width=4, num_classes=10, norm=norm)
    variables = model.init(jax.random.key(0, impl="rbg"), jnp.zeros((1, 8, 8, 1)), train=False)
    tx = hqjax.twn(optax.sgd(0.05, momentum=0.9))
    state = TrainState(jnp.zeros((), jnp.int32), variables["params"], variables["batch_stats"],
                       tx.init(variables["params"]), jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    batches = [{"image": rng.normal(size=(16, 8, 8, 1)).astype(np.float32),
                "label": rng.integers(0, 10, size=16).astype(np.int32)} for _ in range(STEPS)]
    return model, tx, state, batches


@pytest.fixture(scope="module")
def single_device():
    model, tx, state, batches = _setup()
    step = jax.jit(make_train_step(model, tx, hqjax.forward_params))
    for b in batches:
        state, metrics = step(state, b)
    return state, metrics


def test_jit_over_mesh_equals_one_device(single_device):
    model, tx, state, batches = _setup()
    mesh = parallel.make_mesh(8)
    state = parallel.replicate(state, mesh)
    step = jax.jit(make_train_step(model, tx, hqjax.forward_params))
    for b in batches:
        state, metrics = step(state, parallel.global_batch(b, mesh))
    ref, ref_metrics = single_device
    assert_trees_all_close(state.params, ref.params, rtol=1e-4, atol=1e-6)
    assert_trees_all_close(state.batch_stats, ref.batch_stats, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(metrics["loss"]), float(ref_metrics["loss"]), rtol=1e-5)
    # replicated state stays replicated
    leaf = jax.tree.leaves(state.params)[0]
    assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 8


def test_pmap_with_cross_device_batchnorm_equals_one_device(single_device):
    model, tx, state, batches = _setup(norm=functools.partial(nn.BatchNorm, axis_name="batch"))
    step = jax.pmap(make_train_step(model, tx, hqjax.forward_params, axis_name="batch"), axis_name="batch")
    state = parallel.pmap_replicate(state, 8)
    for b in batches:
        state, metrics = step(state, parallel.pmap_split(b, 8))
    state = parallel.pmap_unreplicate(state)
    ref, ref_metrics = single_device
    assert_trees_all_close(state.params, ref.params, rtol=1e-4, atol=1e-6)
    assert_trees_all_close(state.batch_stats, ref.batch_stats, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(metrics["loss"][0]), float(ref_metrics["loss"]), rtol=1e-5)


def test_eval_step_counts_masked_examples_once():
    model, tx, state, batches = _setup()
    ev = jax.jit(make_eval_step(model, hqjax.ternary_params))
    b = dict(batches[0], mask=np.array([True] * 10 + [False] * 6))
    out = ev(state, b)
    assert float(out["count"]) == 10.0
    assert 0.0 <= float(out["correct"]) <= 10.0
