"""Pure train and eval step functions (jit or pmap them; they close over the model and optimizer only).

The train step computes the loss on the weights the quantizer hands the model
(`hqjax.forward_params`), so the gradient reaches the latent weights through the method's
straight-through estimator, then applies the optimizer update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

Forward = Callable[[Any, Any], Any]


class TrainState(NamedTuple):
    """Everything a run carries from step to step; a pytree, checkpointed as a whole.

    Attributes:
      step: int32 scalar, optimizer steps taken.
      params: latent (full-precision) parameters.
      batch_stats: BatchNorm running statistics.
      opt_state: optimizer state, including all quantizer state.
      rng: uint32 PRNG key data (for dropout).
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy in float32."""
    logits = logits.astype(jnp.float32)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def make_train_step(
    model: Any,
    tx: optax.GradientTransformation,
    forward: Forward,
    *,
    axis_name: str | None = None,
    bn_frozen: bool | Callable[[Any], jax.Array] | None = None,
) -> Callable[[TrainState, dict[str, jax.Array]], tuple[TrainState, dict[str, jax.Array]]]:
    """Build ``train_step(state, batch) -> (state, metrics)``.

    Args:
      model: a Flax Linen module with ``apply(variables, x, train=...)``.
      tx: the optimizer (a quantization recipe wrapping an optax optimizer, or a plain one).
      forward: ``(params, opt_state) -> params the model computes with``.
      axis_name: the ``pmap`` axis; when set, gradients, BatchNorm statistics and metrics are
        averaged over it so that ``pmap`` trains the same model as ``jit`` over a mesh.
      bn_frozen: True, or ``opt_state -> bool scalar``: when true the step runs the model in
        inference mode (BatchNorm normalises with its running statistics and does not update them)
        while every parameter is still trained, as ALQ's pruning epochs do
        (`hqjax.transforms.alq_bn_frozen`). A callable costs a `lax.cond` around the forward pass in
        every step (skipped for models without BatchNorm statistics); a training loop that knows the
        schedule can instead compile two steps (None and True) and pick one per step.
    """

    def train_step(state: TrainState, batch: dict[str, jax.Array]):
        rng, dropout_rng = jax.random.split(state.rng)
        if axis_name is not None:
            dropout_rng = jax.random.fold_in(dropout_rng, jax.lax.axis_index(axis_name))

        def loss_fn(params):
            variables = {"params": forward(params, state.opt_state), "batch_stats": state.batch_stats}

            def training(variables):
                logits, new_vars = model.apply(
                    variables, batch["image"], train=True, mutable=["batch_stats"],
                    rngs={"dropout": dropout_rng},
                )
                return logits, new_vars.get("batch_stats", state.batch_stats)

            def inference(variables):
                logits = model.apply(variables, batch["image"], train=False, rngs={"dropout": dropout_rng})
                return logits, variables["batch_stats"]

            if bn_frozen is None or bn_frozen is False or not jax.tree.leaves(state.batch_stats):
                logits, batch_stats = training(variables)
            elif bn_frozen is True:
                logits, batch_stats = inference(variables)
            else:
                logits, batch_stats = jax.lax.cond(
                    bn_frozen(state.opt_state), inference, training, variables
                )
            return cross_entropy(logits, batch["label"]), (logits, batch_stats)

        (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
        if axis_name is not None:
            grads, batch_stats, loss, accuracy = jax.lax.pmean(
                (grads, batch_stats, loss, accuracy), axis_name
            )
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = TrainState(state.step + 1, params, batch_stats, opt_state, rng)
        return new_state, {"loss": loss, "accuracy": accuracy}

    return train_step


def make_eval_step(
    model: Any, forward: Forward, *, axis_name: str | None = None
) -> Callable[[TrainState, dict[str, jax.Array]], dict[str, jax.Array]]:
    """Build ``eval_step(state, batch) -> {'correct', 'loss_sum', 'count'}`` (sums, masked).

    The batch may carry a ``mask`` (1 for real examples, 0 for padding) so that every example of the
    test set counts exactly once.
    """

    def eval_step(state: TrainState, batch: dict[str, jax.Array]):
        variables = {"params": forward(state.params, state.opt_state), "batch_stats": state.batch_stats}
        logits = model.apply(variables, batch["image"], train=False).astype(jnp.float32)
        mask = batch.get("mask", jnp.ones(batch["label"].shape, jnp.float32)).astype(jnp.float32)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        out = {
            "correct": jnp.sum((jnp.argmax(logits, -1) == batch["label"]) * mask),
            "loss_sum": jnp.sum(losses * mask),
            "count": jnp.sum(mask),
        }
        if axis_name is not None:
            out = jax.lax.psum(out, axis_name)
        return out

    return eval_step
