"""The training program's methods: one `MethodSpec` per ``config.method``, asked instead of comparing names.

A spec says how to build the run's optimizer, which forward functions the model computes with, whether
the run starts from a full-precision pre-training, how long its schedule must be, which epochs run
BatchNorm frozen, and how its quantized weights are stored. Config validation, the loop, the run
summary and the run exporter all read it.

    spec = get_spec(config.method)
    tx = spec.build_optimizer(config, steps_per_epoch)
    train_forward, eval_forward, latent_forward = spec.forwards()
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import optax

import hqjax
from hqjax.train import optim

__all__ = ["FAMILIES", "METHOD_SPECS", "MethodSpec", "get_spec", "make_optimizer", "method_names"]

FAMILIES = ("full_precision", "ternary", "multibit")

Forward = Callable[[Any, Any], Any]


def _identity(params: Any, opt_state: Any) -> Any:  # noqa: ARG001 - the forward signature
    return params


def _no_frozen_epochs(config: Any, steps_per_epoch: int) -> frozenset[int]:  # noqa: ARG001
    return frozenset()


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """How the training program runs one method.

    Attributes:
      name: the ``config.method`` value.
      family: ``'full_precision'`` (no quantizer state), ``'ternary'`` (the recipes of `hqjax.methods`)
        or ``'multibit'`` (ALQ's binary bases).
      build_optimizer: ``(config, steps_per_epoch) -> optax.GradientTransformation``.
      description: one line for listings and errors.
      pretrains: the run starts from a full-precision run of ``config.pretrain.epochs`` epochs.
      num_epochs: ``config -> int`` when the method fixes the run's length (ALQ's pipeline), else None.
      frozen_bn_epochs: ``(config, steps_per_epoch) -> frozenset`` of 0-based epochs whose steps run
        BatchNorm in inference mode (models with BatchNorm statistics only).
    """

    name: str
    family: str
    build_optimizer: Callable[[Any, int], optax.GradientTransformation]
    description: str = ""
    pretrains: bool = False
    num_epochs: Callable[[Any], int] | None = None
    frozen_bn_epochs: Callable[[Any, int], frozenset[int]] = _no_frozen_epochs

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"MethodSpec {self.name!r}: family {self.family!r} is not one of {FAMILIES}.")

    @property
    def quantized(self) -> bool:
        """True when the optimizer state holds quantizers (every method but full precision)."""
        return self.family != "full_precision"

    @property
    def storage(self) -> str:
        """What the quantized weights are stored as: 'full precision', 'ternary' or 'multi-bit'."""
        names = {"full_precision": "full precision", "ternary": "ternary", "multibit": "multi-bit"}
        return names[self.family]

    def forwards(self) -> tuple[Forward, Forward, Forward]:
        """``(train-time forward, evaluation forward, full-precision latent forward)``, each
        ``(params, opt_state) -> params``: identities for full precision, else `hqjax.forward_params`,
        `hqjax.ternary_params` (ALQ: its multi-bit reconstruction) and `hqjax.latent_params`."""
        if not self.quantized:
            return _identity, _identity, _identity
        return hqjax.forward_params, hqjax.ternary_params, hqjax.latent_params

    def opt_state(self, state: Any) -> Any:
        """The optimizer state the exporter and the size accounting read: None for full precision."""
        return state.opt_state if self.quantized else None


def _alq_frozen_epochs(config: Any, steps_per_epoch: int) -> frozenset[int]:  # noqa: ARG001
    """ALQ's pruning epochs (spec section 1.4 d)."""
    return optim.alq_schedule(config).prune_epochs


def _recipe(name: str, description: str) -> MethodSpec:
    return MethodSpec(name, "ternary", optim.recipe_optimizer, description)


METHOD_SPECS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("fp", "full_precision", optim.fp_optimizer, "full precision (the optimizer alone)"),
        _recipe("twn", "ternary weight networks: threshold 0.7 mean|w|, per-unit scale"),
        _recipe("ttq", "trained ternary quantization: learned positive and negative scales"),
        _recipe("ptq", "pruning ternary quantization: sphere, AGP pruning, weight decay"),
        _recipe("hq", "hyperspherical quantization: PTQ plus sign reinitialisation"),
        _recipe("hla_tq", "hyperspherical loss-aware ternary quantization: regularizer, re-scaled STE"),
        MethodSpec(
            "alq", "multibit", optim.alq_optimizer,
            "adaptive loss-aware multi-bit quantization (binary bases, pruned below 1 bit)",
            pretrains=True, num_epochs=optim.alq_num_epochs, frozen_bn_epochs=_alq_frozen_epochs,
        ),
    )
}


def method_names() -> tuple[str, ...]:
    """Every ``config.method`` the training program accepts."""
    return tuple(METHOD_SPECS)


def get_spec(name: str) -> MethodSpec:
    """The spec of method `name`; `ValueError` listing the valid names otherwise."""
    spec = METHOD_SPECS.get(name)
    if spec is None:
        raise ValueError(
            f"config.method={name!r} is not valid; choose one of {', '.join(map(repr, METHOD_SPECS))} "
            f"(e.g. --config.method=fp)."
        )
    return spec


def make_optimizer(config: Any, steps_per_epoch: int) -> optax.GradientTransformation:
    """The run's optimizer: ``get_spec(config.method).build_optimizer(config, steps_per_epoch)`` (the inner
    optax optimizer alone for 'fp', wrapped by the recipe otherwise, `hqjax.alq` for 'alq')."""
    return get_spec(config.method).build_optimizer(config, steps_per_epoch)


def frozen_bn_epochs(config: Any, steps_per_epoch: int, batch_stats: Any) -> frozenset[int]:
    """The 0-based epochs whose steps run BatchNorm in inference mode: the method's, for models with
    BatchNorm statistics; empty otherwise."""
    if not jax.tree.leaves(batch_stats):
        return frozenset()
    return get_spec(config.method).frozen_bn_epochs(config, steps_per_epoch)
