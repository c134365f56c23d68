"""`alq_optimizer`: ALQ (Qu, Zhou, Cheng, Thiele, CVPR 2020) as one optax transformation.

ALGORITHMS.md sections 1.1-1.6 and 6. ``init`` sketches every quantized leaf into binary bases
(`hqjax.transforms.alq.steps.sketch_layer`); ``update`` takes the weight-domain AMSGrad step of every
leaf, then the per-mode step of the schedule's mode (`hqjax.transforms.alq.steps`: coordinate, basis,
ste, prune) under one `jax.lax.switch`.

The network must compute with the reconstruction: use ``hqjax.forward_params(params, opt_state)``, which
returns the exact reconstruction and passes the gradient to ``params`` unchanged (ALQ needs the gradient
at the quantized weights, 7.2). ``update`` returns ``reconstruction - params`` for the quantized leaves,
so ``optax.apply_updates`` lands the parameters on the reconstruction (up to the float32 rounding of
``p + (w - p)``, at most one ulp). Full-precision leaves (BatchNorm, biases) take the same learning rate
through optax's Adam.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from hqjax._checks import check_int, check_positive
from hqjax.selection import Selection, leaf_paths, path_str, unbox
from hqjax.transforms import _common
from hqjax.transforms.alq import steps
from hqjax.transforms.alq.schedule import ALQ_MODES, BASIS
from hqjax.transforms.alq.state import (
    ALQConfig,
    ALQLayer,
    ALQState,
    GroupRule,
    alq_layers,
    check_groups,
    layer_weights,
    resolve_layouts,
)

__all__ = ["alq_optimizer"]

Schedule = Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class _Options:
    """The validated arguments of one `alq_optimizer`."""

    learning_rate: Schedule
    mode: Schedule
    prune_rate: Schedule
    selection: Selection
    groups: tuple[GroupRule, ...]
    num_bases: int
    top_k: float
    b1: float
    b2: float
    eps: float
    weight_decay: float
    rel_tol: float
    ridge: float
    seed: int
    stochastic_rounding: bool
    quirks: bool
    fp_tx: optax.GradientTransformation


def alq_optimizer(
    learning_rate: Schedule,
    mode: Schedule,
    prune_rate: Schedule | None = None,
    *,
    top_k: float = 0.005,
    num_bases: int = 6,
    groups: Sequence[GroupRule] = (),
    selection: Selection | None = None,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    rel_tol: float = 1e-6,
    ridge: float = 1e-6,
    seed: int = 0,
    stochastic_rounding: bool = True,
    reproduce_official_quirks: bool = False,
    fp_optimizer: optax.GradientTransformation | None = None,
) -> optax.GradientTransformation:
    """The ALQ optimizer (ALGORITHMS.md 1.3-1.4, 6), driven by step schedules.

    ``tx.init(params)`` sketches every quantized leaf of the (pretrained) params into binary bases
    (1.2); ``tx.update(grads, state, params)`` takes one step of the mode ``mode(count)``.

    Args:
      learning_rate: ``step -> lr`` (also the FP leaves' Adam learning rate).
      mode: ``step -> int`` step type: 0 coordinate, 1 basis, 2 ste, 3 prune
        (`hqjax.transforms.alq_pipeline` builds the official pipeline).
      prune_rate: ``step -> fraction`` of the live coordinates to prune in a prune step (default 0).
      top_k: per-layer candidate fraction of the live coordinates (1.4 d step 3).
      num_bases: I_max, basis slots per group.
      groups: rules ``(path_regex, structure[, subc[, num_bases]])``, first match wins; unmatched
        leaves are ``'channelwise'`` with `num_bases` slots. Structures: `hqjax.ops.ALQ_STRUCTURES`.
      selection: the quantized leaves (default: every kernel with ndim >= 2, first and last included).
      b1, b2, eps: AMSGrad constants of the quadratic loss model (1.3).
      weight_decay: added to the coordinate-domain gradient as ``wd * alpha`` (official default 0).
      rel_tol: sketching stops adding bases when ``|r|^2/|w|^2 < rel_tol``.
      ridge: ridge of the weighted refit on live slots.
      seed: PRNG seed for the stochastic rounding of per-layer candidate counts.
      stochastic_rounding: ``floor(N top_k) + Bernoulli(frac)`` candidates (official); False rounds
        half up (deterministic).
      reproduce_official_quirks: the two deviations of the official code (spec 8 row 17): the first
        basis step targets the pretrained weights, and the global pruning ranking reads each
        candidate's score at its index within the live subset.
      fp_optimizer: optimizer of the full-precision leaves (default ``optax.adam(learning_rate, b1, b2,
        eps)``).

    Returns:
      An `optax.GradientTransformation` with `ALQState`.
    """
    sel, rules = _common.as_selection(selection), check_groups(groups)
    _check_constants(top_k=top_k, num_bases=num_bases, b1=b1, b2=b2, eps=eps, mode=mode)
    lr_fn = learning_rate if callable(learning_rate) else (lambda _: learning_rate)
    fp_tx = optax.adam(lambda t: lr_fn(t), b1=b1, b2=b2, eps=eps) if fp_optimizer is None else fp_optimizer
    opts = _Options(
        lr_fn, mode, prune_rate if prune_rate is not None else (lambda _: 0.0),
        sel, rules, num_bases, float(top_k), b1, b2, eps,
        weight_decay, rel_tol, ridge, seed, stochastic_rounding, reproduce_official_quirks, fp_tx,
    )
    return optax.GradientTransformation(
        _common.abstract_safe(functools.partial(_init, opts)), functools.partial(_update, opts)
    )


def _check_constants(*, top_k: Any, num_bases: Any, b1: Any, b2: Any, eps: Any, mode: Any) -> None:
    check_int(num_bases, "num_bases", minimum=1)
    if not (0.0 < float(top_k) <= 1.0):
        raise ValueError(f"`top_k` must be in (0, 1], got {top_k!r}.")
    for name, v in (("b1", b1), ("b2", b2)):
        if not 0.0 <= float(v) < 1.0:
            raise ValueError(f"`{name}` must be in [0, 1), got {v!r}.")
    check_positive(eps, "eps")
    if not callable(mode):
        raise ValueError("`mode` must be a schedule step -> int (see hqjax.transforms.alq_pipeline).")


def _fp_tree(tree: Any, sel: Any) -> Any:
    """`tree` with None on the quantized leaves (the full-precision optimizer's view)."""
    return jax.tree.map(lambda s, x: None if s else x, sel, tree)


def _mode_at(opts: _Options, step: Any) -> jax.Array:
    return jnp.clip(jnp.asarray(opts.mode(step), jnp.int32), 0, len(ALQ_MODES) - 1)


def _init(opts: _Options, params: Any) -> ALQState:
    sel = _common.selected_tree(params, opts.selection)
    config = ALQConfig(resolve_layouts(params, opts.selection.paths(params), opts.groups, opts.num_bases))

    def layer(path: str, w: jax.Array) -> ALQLayer:
        shape, structure, subc, nb = config.layout(path)
        return steps.sketch_layer(w, shape, structure, subc, nb, rel_tol=opts.rel_tol, quirks=opts.quirks)

    layers = jax.tree_util.tree_map_with_path(
        lambda p, s, x: layer(path_str(p), x) if s else None, sel, params
    )
    return ALQState(
        config=config,
        count=_common.zeros_count(),
        mode=jnp.asarray(opts.mode(0), jnp.int32),
        prev_mode=jnp.asarray(-1, jnp.int32),
        basis_steps=_common.zeros_count(),
        learning_rate=jnp.asarray(opts.learning_rate(0), jnp.float32),
        key=jax.random.key_data(jax.random.PRNGKey(opts.seed)),
        layers=layers,
        fp_state=opts.fp_tx.init(_fp_tree(params, sel)),
    )


def _mode_steps(
    opts: _Options, state: ALQState, xs: list[steps.LayerStep], model: steps.LossModel, cur_mode: jax.Array,
    rate: jax.Array, key: jax.Array,
) -> list[ALQLayer]:
    """The layers after the step of mode `cur_mode` (one `jax.lax.switch` over the four modes)."""
    if not xs:
        return []
    branches = (
        lambda _: steps.coordinate(xs, model, opts.weight_decay),
        lambda _: steps.basis(xs, state.basis_steps, quirks=opts.quirks, ridge=opts.ridge),
        lambda _: steps.ste(xs, state.prev_mode, ridge=opts.ridge),
        lambda _: steps.prune(xs, model, rate, key, top_k=opts.top_k, weight_decay=opts.weight_decay,
                              stochastic_rounding=opts.stochastic_rounding, quirks=opts.quirks),
    )
    return jax.lax.switch(cur_mode, branches, None)


def _update(opts: _Options, grads: Any, state: ALQState, params: Any = None) -> tuple[Any, ALQState]:
    if params is None:
        raise ValueError("hqjax ALQ needs `params` in tx.update(grads, state, params).")
    params, grads = unbox(params), unbox(grads)
    config, sel, step = state.config, _common.selected_tree(params, opts.selection), state.count
    t = (step + 1).astype(jnp.float32)
    cur_mode = _mode_at(opts, step)
    lr = jnp.asarray(opts.learning_rate(step), jnp.float32)
    rate = jnp.asarray(opts.prune_rate(step), jnp.float32)
    key, sub = jax.random.split(jax.random.wrap_key_data(state.key))
    model = steps.loss_model(t, lr, opts.b1, opts.b2, opts.eps)
    flat, grad_by_path = alq_layers(state), dict(leaf_paths(grads))
    xs = [steps.layer_step(flat[path], grad_by_path[path], *config.layout(path)[:3], model)
          for path in config.selected]
    new_layers = _mode_steps(opts, state, xs, model, cur_mode, rate, sub)
    by_path = dict(zip(config.selected, new_layers, strict=True))
    # full-precision leaves: the same learning rate through Adam
    fp_updates, fp_state = opts.fp_tx.update(_fp_tree(grads, sel), state.fp_state, _fp_tree(params, sel))
    fp_by_path = dict(leaf_paths(fp_updates))

    def out_update(path: Any, s: bool, p: jax.Array) -> jax.Array:
        name = path_str(path)
        if not s:
            return fp_by_path[name]
        shape, structure, subc, _ = config.layout(name)
        return (layer_weights(by_path[name], shape, structure, subc) - p).astype(p.dtype)

    updates = jax.tree_util.tree_map_with_path(out_update, sel, params)
    layers = jax.tree_util.tree_map_with_path(
        lambda p, s, _x: by_path[path_str(p)] if s else None, sel, params
    )
    return updates, ALQState(
        config=config,
        count=optax.safe_increment(step),
        mode=_mode_at(opts, step + 1),
        prev_mode=cur_mode,
        basis_steps=state.basis_steps + (cur_mode == BASIS).astype(jnp.int32),
        learning_rate=lr,
        key=jax.random.key_data(key),
        layers=layers,
        fp_state=fp_state,
    )
