"""Validation of a run config: every value is checked before anything starts.

Unknown fields are rejected by ml_collections itself (configs are locked and ``--config.x=...`` for an
unknown ``x`` fails); this module checks the values.
"""

from __future__ import annotations

from typing import Any

import ml_collections

OPTIMIZERS = ("sgd", "adamw", "adam")
LR_SCHEDULES = ("cosine", "constant")
PARALLEL_MODES = ("jit", "pmap")
COMPUTE_DTYPES = ("float32", "bfloat16")


def _choice(config: Any, field: str, choices: tuple[str, ...], prefix: str = "config") -> None:
    value = config[field]
    if value not in choices:
        raise ValueError(
            f"{prefix}.{field}={value!r} is not valid; choose one of {', '.join(map(repr, choices))} "
            f"(e.g. --{prefix}.{field}={choices[0]})."
        )


def _positive(
    config: Any, field: str, *, integer: bool = False, allow_zero: bool = False, prefix: str = "config"
) -> None:
    value = config[field]
    kind = int if integer else (int, float)
    ok = isinstance(value, kind) and not isinstance(value, bool)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        what = "an integer" if integer else "a number"
        raise ValueError(f"{prefix}.{field}={value!r} must be {what} {bound}.")


def validate(config: ml_collections.ConfigDict) -> None:
    """Raise `ValueError` naming the first invalid field of `config` and how to fix it."""
    from hqjax import data, models
    from hqjax.train.methods import get_spec, make_optimizer, method_names

    _choice(config, "method", method_names())
    _choice(config, "optimizer", OPTIMIZERS)
    _choice(config, "lr_schedule", LR_SCHEDULES)
    _choice(config, "parallel", PARALLEL_MODES)
    _choice(config, "compute_dtype", COMPUTE_DTYPES)
    if config.model not in models.names():
        raise ValueError(
            f"config.model={config.model!r} is not a known model; choose one of {', '.join(models.names())}."
        )
    data.info(config.dataset)  # raises with the list of datasets
    for f in ("learning_rate", "batch_size", "eval_batch_size", "num_epochs", "num_classes"):
        _positive(config, f, integer=f != "learning_rate")
    for f in ("weight_decay", "warmup_epochs", "momentum"):
        _positive(config, f, allow_zero=True)
    for f in ("checkpoint_every_epochs", "keep_checkpoints", "log_every_steps", "num_devices",
              "layer_stats_every_epochs", "layer_stats_every_steps", "max_steps", "bn_recalibration_batches",
              "checkpoint_every_steps", "validation_split"):
        _positive(config, f, integer=True, allow_zero=True)
    if config.get("final_test") and not config.validation_split:
        raise ValueError(
            "config.final_test=True needs config.validation_split > 0 (without a validation split the run "
            "already evaluates on the test split); set --config.validation_split=N or drop final_test."
        )
    if config.momentum >= 1:
        raise ValueError(f"config.momentum={config.momentum} must be < 1.")
    try:  # builds the recipe (no arrays): checks method_kwargs names and ranges
        make_optimizer(config, steps_per_epoch=10)
    except (TypeError, ValueError) as e:
        raise ValueError(f"config.method_kwargs are not valid for method {config.method!r}: {e}") from e
    spec = get_spec(config.method)
    if spec.num_epochs is not None:
        epochs = spec.num_epochs(config)
        if config.num_epochs != epochs:
            raise ValueError(
                f"config.num_epochs={config.num_epochs} must equal the length of the {spec.name.upper()} "
                f"pipeline that config.method_kwargs describe ({epochs} epochs); "
                f"set --config.num_epochs={epochs}."
            )
    _validate_pretrain(config)
    if config.warmup_epochs >= config.num_epochs:
        raise ValueError(
            f"config.warmup_epochs={config.warmup_epochs} must be smaller than "
            f"config.num_epochs={config.num_epochs}."
        )


def _validate_pretrain(config: ml_collections.ConfigDict) -> None:
    """Check ``config.pretrain`` (the full-precision run ALQ starts from)."""
    pre = config.get("pretrain")
    if pre is None:
        return
    from hqjax.train.methods import METHOD_SPECS, get_spec

    _positive(pre, "epochs", integer=True, allow_zero=True, prefix="config.pretrain")
    if pre.epochs and not get_spec(config.method).pretrains:
        users = " or ".join(repr(s.name) for s in METHOD_SPECS.values() if s.pretrains)
        raise ValueError(
            f"config.pretrain.epochs={pre.epochs} is only used by method {users} (got method "
            f"{config.method!r}); set --config.pretrain.epochs=0."
        )
    _choice(pre, "optimizer", OPTIMIZERS, prefix="config.pretrain")
    _choice(pre, "lr_schedule", LR_SCHEDULES, prefix="config.pretrain")
    _positive(pre, "learning_rate", prefix="config.pretrain")
    for f in ("momentum", "weight_decay", "warmup_epochs"):
        _positive(pre, f, allow_zero=True, prefix="config.pretrain")
    if pre.epochs and pre.warmup_epochs >= pre.epochs:
        raise ValueError(
            f"config.pretrain.warmup_epochs={pre.warmup_epochs} must be smaller than "
            f"config.pretrain.epochs={pre.epochs}."
        )
