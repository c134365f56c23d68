"""The quantizer transform: phase and temperature scheduling plus the static forward configuration.

Every recipe contains exactly one `quantizer` transform. It leaves the updates untouched; its state
`QuantizerState` is what `hqjax.forward_params` looks for inside the optimizer state: a step counter
(hence the phase), the HLA-TQ temperature constant ``c(t)``, the current sparsity target of a
quantile threshold, the signs of the latent weights before the last step (for the sign-flip statistic),
and a `QuantizerConfig` that says how the forward pass is computed.

`QuantizerConfig` is a frozen, hashable dataclass registered with `jax.tree_util.register_static`:
it contributes no array leaves, rides in the tree *structure* of the optimizer state and therefore
survives `jax.jit`, `optax.MultiSteps`, `optax.inject_hyperparams`, `optax.apply_if_finite` and an
orbax restore against the target tree from ``tx.init``.

Per-leaf state (here: ``signs``; masks and TTQ scales in their own transforms) is a tree shaped like the
params with ``None`` at the leaves that are not quantized. ``None`` has no leaves, so these trees cost
nothing for full-precision parameters and map cleanly with the params as the first tree.

Spec: phases of PTQ/HQ (sections 3.2, 4.2: phase A / phase B) and HLA-TQ (section 5.2: phase R /
phase Q), temperature schedule (section 8 item 14).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from hqjax._checks import check_choice
from hqjax.ops.ternary import SCALE_RULES, THRESHOLD_RULES
from hqjax.schedules import ScalarOrSchedule, as_schedule, check_schedule
from hqjax.selection import Selection, as_rules
from hqjax.transforms import _common

__all__ = ["FORWARDS", "QuantizerConfig", "QuantizerState", "quantizer"]

FORWARDS = ("ternary", "ttq", "sphere", "hla")

_DEFAULT_RULES = {
    "ternary": ("twn", "lsq"),
    "ttq": ("ttq", "lsq"),
    "sphere": ("mask", "unit"),
    "hla": ("twn", "lsq"),
}
_ALLOWED_THRESHOLDS = {
    "ternary": ("twn", "ttq", "exact_cosine", "quantile", "mask"),
    "ttq": ("ttq",),
    "sphere": ("mask", "exact_cosine", "quantile"),
    "hla": ("twn", "quantile", "exact_cosine", "ttq"),
}


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class QuantizerConfig:
    """Static description of the forward pass (no array leaves; hashable; part of the treedef).

    Attributes:
      method: the recipe's name, for summaries (``'hq'``, ``'ptq'``, ``'hla_tq'``, ``'twn'``, ``'ttq'``
        or a user label).
      forward: how quantized weights are computed:
        ``'ternary'``: ``T(V)`` through an identity STE (TWN);
        ``'ttq'``: TTQ codes with learned scales from `ttq_scales` state;
        ``'sphere'``: phase A ``P(V*M)``, phase B ``P(T(V))`` through the normalisation-aware STE
        (PTQ/HQ);
        ``'hla'``: phase R ``P(V)``, phase Q ``alpha T(P(V))`` through the re-scaled STE (HLA-TQ).
      selected: paths of the quantized leaves.
      scaled: paths (a subset of `selected`) that keep a per-unit FP scale instead of the unit sphere
        (spec section 8 item 3: layers with no BatchNorm after them): the identity replaces ``P`` and the
        scale rule is ``'lsq'``.
      axis: unit axis (-1: output channel; None: per layer).
      quantize_step: first step of the ternary phase (phase B / Q); 0 for single-phase methods.
      threshold: ternary threshold rule (`hqjax.ops.ternary_parts`).
      scale: ternary scale rule.
      factor: threshold factor for ``'twn'`` / ``'ttq'`` (None: the rule's default).
      normalization: re-scaling normalisation of the HLA-TQ STE (``'peak'`` or ``'mean'``).
      min_factor: floor of the HLA-TQ re-scaling factor.
    """

    method: str
    forward: str
    selected: tuple[str, ...]
    scaled: tuple[str, ...] = ()
    axis: int | None = -1
    quantize_step: int = 0
    threshold: str = "twn"
    scale: str = "lsq"
    factor: float | None = None
    normalization: str = "peak"
    min_factor: float = 0.0

    @property
    def two_phase(self) -> bool:
        """True when the forward pass switches at `quantize_step` (``'sphere'``, ``'hla'``, and
        ``'ternary'`` with a positive `quantize_step`: full precision before it)."""
        return self.forward in ("sphere", "hla") or (self.forward == "ternary" and self.quantize_step > 0)


class QuantizerState(NamedTuple):
    """State of `quantizer` (the state `hqjax.forward_params` reads).

    Attributes:
      config: static `QuantizerConfig` (no leaves).
      count: int32 number of updates applied so far; the forward pass is in the ternary phase when
        ``count >= config.quantize_step``.
      temperature: float32 HLA-TQ temperature constant ``c`` (``tau = c / Delta`` per unit).
      sparsity: float32 current sparsity target of a ``'quantile'`` threshold (0 when unused).
      signs: int8 signs of the latent weights before the last update (None for other leaves).
    """

    config: QuantizerConfig
    count: jax.Array
    temperature: jax.Array
    sparsity: jax.Array
    signs: Any


def quantizer(
    forward: str = "ternary",
    *,
    method: str | None = None,
    selection: Selection | None = None,
    axis: int | None = -1,
    quantize_step: int = 0,
    threshold: str | None = None,
    scale: str | None = None,
    factor: float | None = None,
    scaled: str | tuple[str, ...] | None = None,
    temperature: ScalarOrSchedule = 2.0,
    sparsity: ScalarOrSchedule | None = None,
    normalization: str = "peak",
    min_factor: float = 0.0,
    check_steps: tuple[int, ...] = (0,),
) -> optax.GradientTransformation:
    """Phase/temperature scheduling and the static forward configuration (updates pass unchanged).

    Args:
      forward: ``'ternary'``, ``'ttq'``, ``'sphere'`` or ``'hla'`` (see `QuantizerConfig`).
      method: label stored in the config (default: `forward`).
      selection: which leaves are quantized (default `hqjax.Selection()`).
      axis: unit axis (-1 per output channel, None per layer).
      quantize_step: first step of the ternary phase for ``'sphere'`` / ``'hla'``.
      threshold, scale: ternary rules (defaults per forward: ternary twn/lsq, sphere mask/unit,
        hla twn/lsq (quantile/lsq when `sparsity` is given)).
      factor: threshold factor for ``'twn'``/``'ttq'``.
      scaled: regex rules naming selected leaves that keep a per-unit FP scale (no sphere).
      temperature: number or schedule ``step -> c`` (HLA-TQ; ``tau = c / Delta``), > 0.
      sparsity: number or schedule in [0, 1) for a ``'quantile'`` threshold (HLA-TQ with a sparsity).
      normalization, min_factor: HLA-TQ re-scaled STE options (`hqjax.ops.rescale_factor`).
      check_steps: steps at which schedules are evaluated and validated at construction.

    Returns:
      An `optax.GradientTransformation` with `QuantizerState`.

    Examples:
      >>> tx = optax.chain(quantizer("ternary", method="twn"), optax.sgd(0.1))
      >>> state = tx.init({'Dense_0': {'kernel': jnp.ones((4, 3)), 'bias': jnp.zeros(3)}})
      >>> state[0].config.selected
      ('Dense_0/kernel',)
    """
    check_choice(forward, FORWARDS, "forward")
    selection = _common.as_selection(selection)
    _common.check_int(quantize_step, "quantize_step")
    d_thr, d_scale = _DEFAULT_RULES[forward]
    if forward == "hla" and sparsity is not None and threshold is None:
        d_thr = "quantile"
    threshold = d_thr if threshold is None else threshold
    scale = d_scale if scale is None else scale
    check_choice(threshold, THRESHOLD_RULES, "threshold")
    check_choice(threshold, _ALLOWED_THRESHOLDS[forward], f"threshold for forward={forward!r}")
    check_choice(scale, SCALE_RULES, "scale")
    check_choice(normalization, ("peak", "mean"), "normalization")
    if threshold == "quantile" and sparsity is None:
        raise ValueError("threshold='quantile' needs a `sparsity` (number or schedule).")
    scaled_rules = as_rules(scaled, "scaled")
    temp_fn = as_schedule(temperature)
    check_schedule(temp_fn, "temperature", check_steps, low=0.0, high=float("inf"), low_inclusive=False)
    sparsity_fn = as_schedule(0.0 if sparsity is None else sparsity)
    check_schedule(sparsity_fn, "sparsity", check_steps, low=0.0, high=1.0, high_inclusive=False)
    if not callable(min_factor):
        check_schedule(as_schedule(min_factor), "min_factor", [0], low=0.0, high=1.0)
    if factor is not None and not callable(factor):
        check_schedule(as_schedule(factor), "factor", [0], low=0.0, high=float("inf"), low_inclusive=False)

    def make_config(params: Any) -> QuantizerConfig:
        paths = selection.paths(params)
        _common.check_axis(axis, params, paths)
        return QuantizerConfig(
            method=method or forward,
            forward=forward,
            selected=paths,
            scaled=_common.scaled_paths(paths, scaled_rules),
            axis=axis,
            quantize_step=int(quantize_step),
            threshold=threshold,
            scale=scale,
            factor=None if factor is None else _static_float(factor, "factor"),
            normalization=normalization,
            min_factor=_static_float(min_factor, "min_factor"),
        )

    def signs_of(sel: Any, params: Any) -> Any:
        return _common.per_leaf_state(lambda x: jnp.sign(x).astype(jnp.int8), sel, params)

    def init_fn(params: Any) -> QuantizerState:
        config = make_config(params)
        sel = _common.selected_tree(params, selection)
        return QuantizerState(
            config=config,
            count=_common.zeros_count(),
            temperature=temp_fn(0),
            sparsity=sparsity_fn(0),
            signs=signs_of(sel, params),
        )

    def update_fn(updates: Any, state: QuantizerState, params: Any = None) -> tuple[Any, QuantizerState]:
        if params is None:
            raise ValueError("hqjax quantizer needs `params` in tx.update(grads, state, params).")
        sel = _common.selected_tree(params, selection)
        count = optax.safe_increment(state.count)
        return updates, QuantizerState(
            config=state.config,
            count=count,
            temperature=temp_fn(count),
            sparsity=sparsity_fn(count),
            signs=signs_of(sel, params),
        )

    return optax.GradientTransformation(_common.abstract_safe(init_fn), update_fn)


def _static_float(value: Any, name: str) -> float:
    out = _common.concrete_float(value)
    if out is None:
        raise ValueError(
            f"`{name}` is static configuration and must be a concrete number, got {value!r}. Under "
            "optax.inject_hyperparams list it in `static_args` (see hqjax.static_args)."
        )
    return out
