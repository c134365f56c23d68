"""The optimizers of a run: an optax optimizer with its learning-rate schedule, wrapped by the method.

`hqjax.train.methods` says which builder each method uses (`make_optimizer` lives there).
"""

from __future__ import annotations

import inspect
from typing import Any

import jax
import optax

import hqjax
from hqjax.transforms.alq import ALQSchedule


def learning_rate_schedule(config: Any, steps_per_epoch: int) -> optax.Schedule:
    """Linear warm-up for ``config.warmup_epochs`` then cosine decay (or constant) to the end."""
    total = config.num_epochs * steps_per_epoch
    warmup = int(config.warmup_epochs * steps_per_epoch)
    if config.lr_schedule == "constant":
        main = optax.constant_schedule(config.learning_rate)
    else:
        main = optax.cosine_decay_schedule(config.learning_rate, max(total - warmup, 1))
    if warmup == 0:
        return main
    ramp = optax.linear_schedule(0.0, config.learning_rate, warmup)
    return optax.join_schedules([ramp, main], [warmup])


def scaled_schedule(schedule: optax.Schedule, factor: float) -> optax.Schedule:
    """`schedule` times `factor`: a second learning rate with the same warm-up and decay."""
    return lambda step: schedule(step) * factor


# Recipes that apply their own weight decay to the quantized latent weights (spec section 8 item 10).
RECIPES_WITH_DECAY = ("ptq", "hq", "hla_tq")


def inner_optimizer(
    config: Any, schedule: optax.Schedule, weight_decay: float | None = None
) -> optax.GradientTransformation:
    """The user-level optax optimizer named by ``config.optimizer``.

    Weight decay for 'sgd' is added as ``add_decayed_weights`` on every leaf with ndim > 1 (kernels),
    never on BatchNorm parameters or biases.
    """
    wd = config.weight_decay if weight_decay is None else weight_decay
    kernels = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)  # noqa: E731
    if config.optimizer == "sgd":
        return optax.chain(
            optax.add_decayed_weights(wd, mask=kernels),
            optax.sgd(schedule, momentum=config.momentum or None, nesterov=config.nesterov),
        )
    if config.optimizer == "adamw":
        return optax.adamw(schedule, weight_decay=wd, mask=kernels)
    return optax.adam(schedule)


def fp_optimizer(config: Any, steps_per_epoch: int) -> optax.GradientTransformation:
    """Full precision: the inner optax optimizer with the run's learning-rate schedule."""
    return inner_optimizer(config, learning_rate_schedule(config, steps_per_epoch))


def recipe_optimizer(config: Any, steps_per_epoch: int) -> optax.GradientTransformation:
    """A ternary recipe of `hqjax.methods` (``config.method``, ``config.method_kwargs``) around the inner
    optimizer; the run's weight decay, length and leaf selection fill the arguments the config leaves out."""
    schedule = learning_rate_schedule(config, steps_per_epoch)
    kwargs = dict(config.method_kwargs)
    if config.method in RECIPES_WITH_DECAY:
        # the recipe decays the quantized latent weights; the inner optimizer decays nothing twice
        kwargs.setdefault("weight_decay", config.weight_decay)
        inner = inner_optimizer(config, schedule, weight_decay=0.0)
    else:
        inner = inner_optimizer(config, schedule)
    accepted = inspect.signature(hqjax.METHODS[config.method]).parameters
    if "scale_learning_rate" in accepted:
        # TTQ: the scales' Adam follows the run's schedule (warm-up, cosine decay) from its own peak rate:
        # a constant rate keeps the scales moving at the end of training, after the weights have
        # settled, and the BatchNorm running statistics of the evaluation trail them
        peak = float(kwargs.get("scale_learning_rate", accepted["scale_learning_rate"].default))
        kwargs["scale_learning_rate"] = scaled_schedule(schedule, peak / config.learning_rate)
    if "total_steps" in accepted:
        kwargs.setdefault("total_steps", config.num_epochs * steps_per_epoch)
    if "selection" in accepted and "selection" not in kwargs:
        kwargs["selection"] = _selection(config)
    return hqjax.get_method(config.method, inner, **kwargs)


def alq_optimizer(config: Any, steps_per_epoch: int) -> optax.GradientTransformation:
    """ALQ (`hqjax.alq`): its own optimizers and pipeline, from ``config.method_kwargs``."""
    schedule, kwargs = alq_settings(config)
    return hqjax.alq(steps_per_epoch, schedule, **kwargs)


def _selection(config: Any) -> hqjax.Selection:
    return hqjax.Selection(
        quantize_first=config.quantize_first,
        quantize_last=config.quantize_last,
        first=config.first_layer or None,
        last=config.last_layer or None,
    )


def alq_settings(config: Any) -> tuple[ALQSchedule, dict[str, Any]]:
    """The schedule of an ALQ run and its other `hqjax.alq` arguments, built once from
    ``config.method_kwargs``: its `ALQSchedule` fields over `ALQ_DEFAULT` (``learning_rate`` defaulting
    to the run's), the rest plus the run's seed and leaf selection."""
    kwargs = dict(config.method_kwargs)
    if "groups" in kwargs:
        kwargs["groups"] = tuple(tuple(rule) for rule in kwargs["groups"])
    kwargs.setdefault("learning_rate", config.learning_rate)
    kwargs.setdefault("seed", config.seed)
    kwargs.setdefault("selection", _selection(config))
    return ALQSchedule.split(kwargs)


def alq_schedule(config: Any) -> ALQSchedule:
    """The `ALQSchedule` of an ALQ run (spec section 1.5)."""
    return alq_settings(config)[0]


def alq_num_epochs(config: Any) -> int:
    """Epochs of the ALQ pipeline that ``config.method_kwargs`` describe (spec section 1.5)."""
    return alq_schedule(config).num_epochs
