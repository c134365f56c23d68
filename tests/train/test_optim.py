"""The training program's optimizer (`hqjax.train.methods.make_optimizer`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.default import get_config
from hqjax.train.methods import make_optimizer
from hqjax.train.optim import scaled_schedule
from hqjax.transforms.ttq import TTQState

STEPS_PER_EPOCH = 3


def _ttq_scales(opt_state):
    found = [s for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, TTQState))
             if isinstance(s, TTQState)]
    assert len(found) == 1
    return jax.tree.leaves(found[0].scales)


@pytest.mark.parametrize("lr_schedule, moves_at_end", [("cosine", False), ("constant", True)])
def test_ttq_scales_follow_the_run_schedule(lr_schedule, moves_at_end):
    """TTQ's scales learn at `scale_learning_rate` times the run's schedule: with cosine decay they are
    still once the schedule has reached 0 (one epoch here), with a constant schedule they keep moving."""
    c = get_config("ttq")
    c.num_epochs, c.warmup_epochs, c.lr_schedule = 1, 0, lr_schedule
    rng = np.random.default_rng(0)
    params = {"conv_init": {"kernel": jnp.asarray(rng.normal(size=(3, 3, 1, 4)), jnp.float32)},
              "head": {"kernel": jnp.asarray(rng.normal(size=(4, 10)), jnp.float32)}}
    tx = make_optimizer(c, STEPS_PER_EPOCH)
    state = tx.init(params)
    update = jax.jit(tx.update)
    history = [_ttq_scales(state)]
    for _ in range(STEPS_PER_EPOCH + 1):
        grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
        _, state = update(grads, state, params)
        history.append(_ttq_scales(state))
    changed = [any(not np.array_equal(a, b) for a, b in zip(x, y, strict=True))
               for x, y in zip(history[:-1], history[1:], strict=True)]
    assert changed[0]  # the first step moves the scales (Adam's first step: ~ the peak rate)
    step0 = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(history[0], history[1], strict=True))
    assert step0 == pytest.approx(c.method_kwargs.get("scale_learning_rate", 1e-3), rel=1e-3)
    assert changed[-1] == moves_at_end  # the step after the schedule's end


def test_scaled_schedule():
    s = scaled_schedule(lambda t: 0.1 * (1 - t / 10), 0.01)
    assert float(s(0)) == pytest.approx(1e-3) and float(s(5)) == pytest.approx(5e-4)
