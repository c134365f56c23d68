"""The weights the model computes with: `forward_params(params, opt_state)`.

Params hold the *latent* weights ``V``. The quantizer state inside the optimizer state (found anywhere:
nested in `optax.chain` tuples, `optax.MultiSteps`, `optax.inject_hyperparams`, `optax.apply_if_finite`,
a Flax NNX ``Optimizer``) says how ``V`` becomes the forward weights. The gradient of a loss of the forward
weights w.r.t. ``params`` reaches ``V`` through the straight-through estimators of `hqjax.ops`
(``jax.custom_vjp``); leaves that are not quantized pass through as the exact identity.

Forward pass per quantized leaf, by the ``forward`` kind of the `QuantizerConfig` (spec sections 2-5;
``P`` = per-unit projection onto the unit sphere (B1), ``M`` = pruning mask, all ones without a `prune`
transform):

===========  =======================================  ===============================================
forward      first phase (``count < quantize_step``)   ternary phase
===========  =======================================  ===============================================
ternary      ``V*M`` (only with ``quantize_step > 0``)    ``identity_ste(V, T(V*M))`` (TWN: twn/lsq)
ttq          --                                       ``identity_ste(V, W_p 1[I_p] - W_n 1[I_n])``
sphere       ``P(V*M)`` (exact Jacobian)              ``normalized_ste(V, M) = P(sign(V) * M)``, backward
                                                      the VJP of ``P(V*M)`` (PTQ phase B / HQ step 4)
hla          ``P(V)``                                 ``rescaled_ste(w, alpha T(w), Delta, c/Delta)``
                                                      with ``w = P(V)`` (HLA-TQ phase Q)
===========  =======================================  ===============================================

Leaves named by ``QuantizerConfig.scaled`` use the identity instead of ``P`` and least-squares scales.
The phase switch is a `jax.lax.cond` on the step counter, so only one branch runs per step.

Two quantizer families, detected once by `find_family`: `TernaryFamily` (the recipes above) and
`MultiBitFamily` (ALQ's sums of binary bases). Each gives ``weights(params, mode)`` for the modes
'forward', 'ternary' (evaluation and export) and 'latent', and the description of its storage that
`hqjax.summarize` and `hqjax.export` read.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from hqjax._checks import check_choice
from hqjax.ops.sphere import project_to_sphere
from hqjax.ops.ste import identity_ste, masked_ste, normalized_ste, rescaled_ste
from hqjax.ops.ternary import ternary_parts
from hqjax.selection import path_str, unbox
from hqjax.transforms.alq import (
    ALQLayer,
    ALQState,
    alq_layers,
    alq_params,
    alq_reconstruction,
    find_alq_state,
)
from hqjax.transforms.prune import PruneState
from hqjax.transforms.quantizer import QuantizerConfig, QuantizerState
from hqjax.transforms.ttq import TTQState, ttq_codes

__all__ = [
    "QUANTIZER_STATE_TYPES",
    "TREE_MODES",
    "MultiBitFamily",
    "QuantizerFamily",
    "QuantizerStates",
    "TernaryFamily",
    "find_family",
    "find_quantizer_states",
    "forward_params",
    "latent_params",
    "quantized_tree",
    "ternary_params",
]

QUANTIZER_STATE_TYPES = (QuantizerState, PruneState, TTQState)
_TINY = 1e-12


class QuantizerStates:
    """The quantizer-related states found in an optimizer state (a plain holder, not a pytree).

    Attributes:
      quantizer: the one `QuantizerState`.
      prune: the `PruneState`, or None when there is no `prune` transform.
      ttq: the `TTQState`, or None.
    """

    def __init__(self, quantizer: QuantizerState, prune: PruneState | None, ttq: TTQState | None):
        self.quantizer, self.prune, self.ttq = quantizer, prune, ttq

    @property
    def config(self) -> QuantizerConfig:
        return self.quantizer.config


def find_quantizer_states(opt_state: Any) -> QuantizerStates:
    """Locate the quantizer state(s) anywhere inside an optimizer state.

    Walks `opt_state` with ``jax.tree_util.tree_flatten(..., is_leaf=isinstance(x, QUANTIZER_STATE_TYPES))``.
    Exactly one `QuantizerState` must be present, and at most one `PruneState` and one `TTQState`.

    Raises:
      ValueError: none or several quantizer states (with what to do about it).
    """
    is_q = lambda x: isinstance(x, QUANTIZER_STATE_TYPES)
    leaves, _ = jax.tree_util.tree_flatten(unbox(opt_state), is_leaf=is_q)
    found = [x for x in leaves if is_q(x)]
    by_type = {t: [x for x in found if isinstance(x, t)] for t in QUANTIZER_STATE_TYPES}
    qs = by_type[QuantizerState]
    if len(qs) != 1:
        what = "no" if not qs else f"{len(qs)}"
        raise ValueError(
            f"Found {what} hqjax QuantizerState in the optimizer state; exactly one is needed. Pass the "
            "state of a tx built by hqjax.hq/hla_tq/ptq/twn/ttq (or an optax.chain containing "
            "hqjax.transforms.quantizer), as returned by tx.init / tx.update, wrapped in any optax "
            "wrappers; do not combine two recipes in one optimizer."
        )
    for t in (PruneState, TTQState):
        if len(by_type[t]) > 1:
            raise ValueError(
                f"Found {len(by_type[t])} {t.__name__} in the optimizer state; at most one is allowed."
            )
    prune = by_type[PruneState][0] if by_type[PruneState] else None
    ttq = by_type[TTQState][0] if by_type[TTQState] else None
    if qs[0].config.forward == "ttq" and ttq is None:
        raise ValueError("forward='ttq' needs a hqjax.transforms.ttq_scales transform in the same optimizer.")
    return QuantizerStates(qs[0], prune, ttq)


def _path_tree(params: Any, states: QuantizerStates) -> Any:
    """Tree of path strings shaped like `params`; checks that every quantized path exists."""
    paths = jax.tree_util.tree_map_with_path(lambda p, _: path_str(p), params)
    present = set(jax.tree.leaves(paths))
    missing = [p for p in states.config.selected if p not in present]
    if missing:
        raise ValueError(
            f"The optimizer state quantizes leaves {missing} that are not in `params`. Pass the params the "
            "optimizer state was initialised with (same tree structure)."
        )
    return paths


def _ternary_kwargs(cfg: QuantizerConfig, scaled: bool, sparsity: jax.Array) -> dict[str, Any]:
    kw: dict[str, Any] = dict(threshold=cfg.threshold, scale="lsq" if scaled else cfg.scale, axis=cfg.axis)
    if cfg.factor is not None and cfg.threshold in ("twn", "ttq"):
        kw["factor"] = cfg.factor
    if cfg.threshold == "quantile":
        kw["sparsity"] = sparsity
    return kw


def _leaf(
    v: jax.Array,
    mask: jax.Array | None,
    scales: Any,
    *,
    cfg: QuantizerConfig,
    scaled: bool,
    ternary: bool,
    temperature: jax.Array,
    sparsity: jax.Array,
) -> jax.Array:
    """Forward value of one quantized leaf; `ternary` selects the (static) phase."""
    axis = cfg.axis
    proj = (lambda x: x) if scaled else (lambda x: project_to_sphere(x, axis))
    kw = _ternary_kwargs(cfg, scaled, sparsity)
    # The STEs give the quantized value a zero cotangent; `sg` keeps autodiff from even tracing the
    # derivative of the thresholds, sorts and scales (smaller programs, faster compilation).
    sg = jax.lax.stop_gradient
    if cfg.forward == "ternary":
        x = v if mask is None else v * mask
        if not ternary:  # two-phase TWN: full precision before `quantize_step`
            return x
        if cfg.threshold == "mask" and mask is None:
            raise ValueError("threshold='mask' needs a hqjax.transforms.prune transform in the optimizer.")
        parts = ternary_parts(sg(x), mask=mask, **kw)
        q = parts.scale * parts.codes
        return identity_ste(v, q) if mask is None else masked_ste(v, q, mask)
    if cfg.forward == "ttq":
        x = v if mask is None else v * mask
        t = ttq_codes(sg(x), axis, cfg.factor)
        wp, wn = scales
        q = jnp.where(t > 0, wp, jnp.where(t < 0, -wn, 0.0))
        return identity_ste(v, q) if mask is None else masked_ste(v, q, mask)
    x = v if mask is None else v * mask.astype(v.dtype)
    if cfg.forward == "sphere":
        if not ternary:
            return proj(x)
        # Without a prune transform the mask is all ones (sparsity 0).
        m = jnp.ones_like(v, dtype=bool) if mask is None else mask
        if cfg.threshold == "mask" and cfg.scale == "unit" and not scaled:
            return normalized_ste(v, m, axis)
        w = proj(x)
        parts = ternary_parts(sg(w), mask=m, **kw)
        return identity_ste(w, parts.scale * parts.codes)
    # hla
    w = proj(x)
    if not ternary:
        return w
    parts = ternary_parts(sg(w), mask=mask, **kw)
    q = parts.scale * parts.codes
    delta = parts.threshold
    tau = temperature / jnp.maximum(delta, _TINY)
    return rescaled_ste(
        w, q, delta, tau, axis=axis, normalization=cfg.normalization, min_factor=cfg.min_factor
    )


TREE_MODES = ("forward", "ternary", "latent")


def quantized_tree(params: Any, states: QuantizerStates, mode: str = "forward") -> Any:
    """Map the per-leaf quantizer of `states` over `params`.

    Args:
      params: latent parameters.
      states: the quantizer states of the optimizer state (`find_quantizer_states`).
      mode: ``'forward'``: what the model computes with at the current step (`forward_params`; for
        two-phase methods chosen by the step counter); ``'ternary'``: the hard ternary weights whatever
        the phase (`ternary_params`); ``'latent'``: the full-precision weights they approximate
        (`latent_params`).
    """
    check_choice(mode, TREE_MODES, "mode")
    ternary = {"forward": None, "ternary": True, "latent": None}[mode]
    latent = mode == "latent"
    cfg = states.config
    q = states.quantizer
    params = unbox(params)
    paths = _path_tree(params, states)
    selected, scaled_set = set(cfg.selected), set(cfg.scaled)
    masks = states.prune.masks if states.prune is not None else jax.tree.map(lambda _: None, paths)
    scales = states.ttq.scales if states.ttq is not None else jax.tree.map(lambda _: None, paths)

    def build(phase_ternary: bool, operands: tuple[Any, ...]) -> Any:
        params, masks, scales, temperature, sparsity = operands

        def one(path: str, v: jax.Array, mask: Any, sc: Any) -> jax.Array:
            if path not in selected:
                return v if mask is None else v * mask.astype(v.dtype)
            if latent:
                x = v if mask is None else v * mask.astype(v.dtype)
                if cfg.forward in ("sphere", "hla") and path not in scaled_set:
                    return project_to_sphere(x, cfg.axis)
                return x
            return _leaf(
                v,
                mask,
                sc,
                cfg=cfg,
                scaled=path in scaled_set,
                ternary=phase_ternary,
                temperature=temperature,
                sparsity=sparsity,
            )

        return jax.tree.map(one, paths, params, masks, scales)

    # Arrays enter `lax.cond` as operands (not closures), which keeps explicit shardings intact.
    operands = (params, masks, scales, q.temperature, q.sparsity)
    if latent or not cfg.two_phase:
        return build(True, operands)
    if ternary is not None:
        return build(ternary, operands)
    return jax.lax.cond(
        q.count >= cfg.quantize_step,
        lambda ops: build(True, ops),
        lambda ops: build(False, ops),
        operands,
    )


class _Family:
    """What both families share: the static config of their quantizer state (``config.selected``)."""

    config: Any

    @property
    def selected(self) -> tuple[str, ...]:
        """Paths of the quantized leaves."""
        return tuple(self.config.selected)


class TernaryFamily(_Family):
    """The ternary quantizers of a recipe's optimizer state (`hq`, `hla_tq`, `ptq`, `twn`, `ttq`).

    Attributes:
      states: the `QuantizerStates` found in the optimizer state.
    """

    name = "ternary"

    def __init__(self, states: QuantizerStates):
        self.states = states
        self.config = states.config

    def weights(self, params: Any, mode: str = "forward") -> Any:
        """`quantized_tree` of `params` in `mode` ('forward', 'ternary' or 'latent')."""
        return quantized_tree(params, self.states, mode)

    def storage(self) -> dict[str, int | None]:
        """``{path: unit axis}``: each quantized leaf is stored as ternary codes with one magnitude per
        unit along that axis (None: one per tensor)."""
        return {p: self.config.axis for p in self.selected}


class MultiBitFamily(_Family):
    """ALQ's multi-bit quantizers (`hqjax.alq`): each quantized leaf a sum of binary bases per group.

    Attributes:
      state: the `hqjax.transforms.ALQState` found in the optimizer state.
    """

    name = "multibit"

    def __init__(self, state: ALQState):
        self.state = state
        self.config = state.config

    def weights(self, params: Any, mode: str = "forward") -> Any:
        """'forward': the exact reconstruction, gradients flowing to `params` unchanged; 'ternary' (the
        evaluation and export weights): the same values without the gradient path; 'latent': `params`
        themselves (ALQ keeps no latent weights outside its STE buffer)."""
        check_choice(mode, TREE_MODES, "mode")
        if mode == "latent":
            return unbox(params)
        return alq_params(params, self.state, differentiable=mode == "forward")

    def layers(self) -> dict[str, ALQLayer]:
        """``{path: ALQLayer}``: bases, coordinates and live-slot masks of each quantized leaf."""
        return alq_layers(self.state)

    def reconstruction(self) -> dict[str, jax.Array]:
        """``{path: reconstructed weight}`` of each quantized leaf."""
        return alq_reconstruction(self.state)

    def storage(self) -> tuple[tuple[str, tuple[int, ...], str, int, int], ...]:
        """The group layout of each quantized leaf: ``(path, shape, structure, subc, num_bases)``."""
        return tuple(self.config.layouts)


QuantizerFamily = TernaryFamily | MultiBitFamily


def find_family(opt_state: Any) -> QuantizerFamily:
    """The quantizer family of an optimizer state, detected once: `MultiBitFamily` for an ALQ state,
    `TernaryFamily` otherwise (`find_quantizer_states` raises when there is neither)."""
    alq = find_alq_state(opt_state)
    if alq is not None:
        return MultiBitFamily(alq)
    return TernaryFamily(find_quantizer_states(opt_state))


def forward_params(params: Any, opt_state: Any) -> Any:
    """The weights the model computes with at the current step (spec sections 2-5).

    Quantized leaves become ternary per unit (each unit's non-zero values share one magnitude) in the
    ternary phase, or the method's full-precision forward (``P(V*M)`` / ``P(V)``) before it; every other
    leaf is returned unchanged (masked by a `prune` mask if one covers it). Gradients reach the latent
    weights through the method's straight-through estimator. Pure and jit-able.

    Args:
      params: latent parameters (Linen ``params`` dict, NNX ``State``, any pytree) as given to ``tx.init``.
      opt_state: the optimizer state of a hqjax recipe or chain, possibly nested in optax wrappers.

    Returns:
      A tree shaped like `params` (NNX ``Variable`` boxes removed).

    Examples:
      >>> import optax, hqjax
      >>> params = {'Dense_0': {'kernel': jnp.array([[0.9, -0.2], [-1.1, 0.05]]), 'bias': jnp.zeros(2)}}
      >>> tx = hqjax.twn(optax.sgd(0.1))
      >>> q = forward_params(params, tx.init(params))
      >>> q['Dense_0']['kernel'].tolist()
      [[1.0, -0.20000000298023224], [-1.0, 0.0]]
    """
    return find_family(opt_state).weights(params, "forward")


def ternary_params(params: Any, opt_state: Any) -> Any:
    """The ternary weights the current latent weights map to, whatever the phase (for export/statistics).

    Equals `forward_params` in the ternary phase; in the first phase of two-phase methods it is the
    ternary projection the method will use once that phase ends.

    Args:
      params: latent parameters.
      opt_state: the optimizer state of a hqjax recipe or chain.

    Returns:
      A tree shaped like `params`: ternary quantized leaves, other leaves unchanged.

    Examples:
      >>> import optax, hqjax
      >>> params = {'Dense_0': {'kernel': jnp.array([[3.0, 1.0], [-4.0, 0.1]])}}
      >>> tx = hqjax.hla_tq(optax.sgd(0.1), total_steps=9)
      >>> q = ternary_params(params, tx.init(params))['Dense_0']['kernel']
      >>> [[round(x, 4) for x in row] for row in q.tolist()]
      [[0.7, 0.995], [-0.7, 0.0]]
    """
    return find_family(opt_state).weights(params, "ternary")


def latent_params(params: Any, opt_state: Any) -> Any:
    """The full-precision weights the ternary weights approximate (what `summarize` compares them with).

    ``P(V*M)`` on the sphere for PTQ/HQ and ``P(V)`` for HLA-TQ (``V*M`` for `scaled` leaves), ``V*M``
    (or ``V``) for TWN/TTQ; other leaves unchanged.

    Args:
      params: latent parameters.
      opt_state: the optimizer state of a hqjax recipe or chain.

    Returns:
      A tree shaped like `params`.

    Examples:
      >>> import optax, hqjax
      >>> params = {'Dense_0': {'kernel': jnp.array([[3.0], [-4.0]])}}
      >>> tx = hqjax.hla_tq(optax.sgd(0.1), total_steps=9)
      >>> latent_params(params, tx.init(params))['Dense_0']['kernel'][:, 0].tolist()
      [0.6000000238418579, -0.800000011920929]
    """
    return find_family(opt_state).weights(params, "latent")
