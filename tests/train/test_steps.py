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


def test_frozen_batchnorm_step_trains_params_and_keeps_the_statistics():
    model, _, state, batches = _setup()
    prune = hqjax.transforms.alq_optimizer(1e-3, lambda t: 3, lambda t: 0.0, num_bases=2)
    assert bool(hqjax.transforms.alq_bn_frozen(prune.init(state.params)))
    tx = hqjax.transforms.alq_optimizer(1e-3, lambda t: 0, lambda t: 0.0, num_bases=2)  # coordinate
    state = state._replace(opt_state=tx.init(state.params))
    assert not bool(hqjax.transforms.alq_bn_frozen(state.opt_state))
    frozen = jax.jit(make_train_step(model, tx, hqjax.forward_params, bn_frozen=True))
    by_state = jax.jit(make_train_step(model, tx, hqjax.forward_params,
                                       bn_frozen=lambda opt_state: jnp.asarray(True)))
    s_frozen, m_frozen = frozen(state, batches[0])
    s_cond, m_cond = by_state(state, batches[0])
    assert_trees_all_close(s_frozen.batch_stats, state.batch_stats, rtol=0, atol=0)
    assert_trees_all_close(s_cond, s_frozen, rtol=1e-6, atol=1e-7)
    # BatchNorm normalised with the running statistics: not the loss with batch statistics
    params = hqjax.forward_params(state.params, state.opt_state)
    variables = {"params": params, "batch_stats": state.batch_stats}
    logits, _ = model.apply(variables, batches[0]["image"], train=True, mutable=["batch_stats"])
    train_loss = optax.softmax_cross_entropy_with_integer_labels(logits, batches[0]["label"]).mean()
    assert abs(float(m_frozen["loss"]) - float(train_loss)) > 1e-3
    bn = lambda s: s.params["stage1_block0"]["bn1"]["scale"]  # noqa: E731
    assert not np.allclose(bn(s_frozen), bn(state))  # BatchNorm's affine is still trained
