"""What a run is made of, built from its config: steps per epoch, the model, the optimizer, the state.

The training loop and the run exporter (`hqjax.train.artifacts`) both build a run through these
functions, so a restored checkpoint always meets the same optimizer schedule and state structure that
wrote it.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from hqjax import data, models
from hqjax.train import parallel
from hqjax.train.methods import make_optimizer
from hqjax.train.steps import TrainState

__all__ = ["build_model", "build_optimizer", "compute_dtype", "init_state", "steps_per_epoch",
           "train_examples"]


def train_examples(config: Any) -> int:
    """Number of training examples a run with `config` trains on: the dataset's training split less the
    ``config.validation_split`` examples held out of it."""
    return data.info(config.dataset).train_size - int(config.get("validation_split", 0) or 0)


def steps_per_epoch(config: Any, num_train: int | None = None) -> int:
    """Steps in one epoch: ``num_train // config.batch_size`` (last partial batch dropped).

    Args:
      config: the run's config.
      num_train: training examples (default `train_examples`; the loop passes its source's length).

    Raises:
      ValueError: the batch is larger than the training set.
    """
    n = train_examples(config) if num_train is None else int(num_train)
    steps = n // config.batch_size
    if steps == 0:
        raise ValueError(f"config.batch_size={config.batch_size} exceeds the {n} training examples.")
    return steps


def compute_dtype(config: Any) -> Any:
    """The model's compute dtype: ``jnp.bfloat16`` for ``compute_dtype='bfloat16'``, else float32."""
    return jnp.bfloat16 if config.compute_dtype == "bfloat16" else jnp.float32


def build_model(config: Any, *, pmap_axis: str | None = None) -> nn.Module:
    """The registry model of `config` (``model``, ``num_classes``, ``model_kwargs``, compute dtype).

    `pmap_axis` makes BatchNorm reduce its statistics across that pmap axis (the whole batch, as under
    jit), unless ``model_kwargs`` sets ``norm`` itself.
    """
    kwargs = dict(config.model_kwargs)
    if pmap_axis is not None:
        kwargs.setdefault("norm", functools.partial(nn.BatchNorm, axis_name=pmap_axis))
    return models.get(config.model, num_classes=config.num_classes, dtype=compute_dtype(config), **kwargs)


def build_optimizer(config: Any, num_steps_per_epoch: int) -> optax.GradientTransformation:
    """The run's optax chain (`hqjax.train.methods.make_optimizer`: the method's builder)."""
    return make_optimizer(config, num_steps_per_epoch)


def init_state(
    config: Any,
    model: nn.Module,
    tx: optax.GradientTransformation,
    input_shape: tuple[int, ...],
    mesh: Any,
    pretrained: tuple[Any, Any] | None = None,
) -> TrainState:
    """Initialise params, BatchNorm statistics and optimizer state in one compiled call, replicated.

    The initial weights are drawn with the 'rbg' PRNG: XLA:CPU takes ~20 s to compile a ResNet-20
    initialisation with the default threefry generator and ~2 s with rbg. The step's own key (dropout)
    stays a threefry key. `pretrained` = ``(params, batch_stats)`` replaces the random initialisation
    (ALQ starts from a trained full-precision network).
    """

    def init(init_key, state_key, pretrained):
        variables = model.init(init_key, jnp.zeros((1, *input_shape), jnp.float32), train=False)
        params, batch_stats = variables["params"], variables.get("batch_stats", {})
        if pretrained is not None:
            params, batch_stats = pretrained
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats=batch_stats,
            opt_state=tx.init(params),
            rng=state_key,
        )

    init_key = jax.random.key(config.seed, impl="rbg")
    state_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)
    return jax.jit(init, out_shardings=parallel.replicated(mesh))(init_key, state_key, pretrained)
