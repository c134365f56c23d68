"""A recipe driven through `flax.nnx.Optimizer`: NNX users are served by the same optimizer state."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import hqjax


class MLP(nnx.Module):
    def __init__(self, rngs):
        self.l1 = nnx.Linear(8, 16, use_bias=False, rngs=rngs)
        self.bn = nnx.BatchNorm(16, rngs=rngs)
        self.head = nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x):
        return self.head(nnx.relu(self.bn(self.l1(x))))


def test_hq_through_nnx_optimizer():
    model = MLP(nnx.Rngs(0))
    tx = hqjax.hq(optax.sgd(0.1, momentum=0.9), total_steps=12, quantize_step=4, prune_end=2, scaled="head")
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    assert hqjax.find_quantizer_states(optimizer.opt_state).config.selected == ("head/kernel", "l1/kernel")
    x = jax.random.normal(jax.random.key(1), (32, 8))
    y = jnp.arange(32) % 3

    @nnx.jit
    def train_step(model, optimizer, x, y):
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        rest = nnx.as_pure(rest)

        def loss_fn(params, rest):
            qparams = hqjax.forward_params(params, optimizer.opt_state)  # ternary forward, STE backward
            qmodel = nnx.merge(graphdef, qparams, rest)
            loss = optax.softmax_cross_entropy_with_integer_labels(qmodel(x), y).mean()
            return loss, nnx.state(qmodel, nnx.BatchStat)

        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, rest)
        nnx.update(model, batch_stats)
        optimizer.update(model, grads)
        return loss

    losses = [float(train_step(model, optimizer, x, y)) for _ in range(12)]
    assert losses[-1] < losses[0]
    params = nnx.state(model, nnx.Param)
    q = hqjax.forward_params(params, optimizer.opt_state)
    k = np.asarray(q["l1"]["kernel"])
    np.testing.assert_array_equal((k == 0).sum(0), 4)  # exactly 50 % of each unit's 8 weights
    for j in range(k.shape[1]):
        assert np.unique(np.abs(k[:, j][k[:, j] != 0])).size == 1
    stats = hqjax.summarize(params, optimizer.opt_state)
    assert float(stats["l1/kernel/sparsity"]) == 0.5
    assert float(stats["quantizer/step"]) == 12.0
