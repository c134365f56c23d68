"""TTQ's learned positive and negative scales as optimizer state (Zhu et al., ICLR 2017; spec B2/B3(c)).

TTQ quantizes ``w_q = W_p`` on ``I_p = {v > Delta}``, ``-W_n`` on ``I_n = {v < -Delta}`` and 0 elsewhere,
with ``Delta = 0.05 * max|v|`` per unit (`hqjax.ops.threshold_ttq`) and two learned scales per unit
(per layer with ``axis=None``). The forward pass uses an identity STE, so the gradient the optimizer
receives is ``g = dL/dw_q``. From it this transform computes

* ``dL/dW_p = sum_{I_p} g`` and ``dL/dW_n = sum_{I_n} (-g)`` (as ``d w_q / d W_n = -1`` on ``I_n``),
  steps the scales with their own optimizer (Adam with `learning_rate`), clipped to stay positive;
* TTQ's scaled gradient for the latent weights, ``W_p g`` on ``I_p``, ``g`` on the zeros and ``W_n g``
  on ``I_n``, which it passes on to the inner optimizer.

It must therefore come *first* in the chain (before weight decay or any transform that changes the
gradients), right after `quantizer`. Scales start at the mean magnitude of the weights in ``I_p`` /
``I_n`` (TWN's least-squares value for each sign).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from hqjax._checks import reduce_axes
from hqjax.ops.ternary import ternary_project, threshold_ttq
from hqjax.schedules import ScalarOrSchedule, as_schedule, check_schedule
from hqjax.selection import Selection
from hqjax.transforms import _common

__all__ = ["TTQState", "ttq_codes", "ttq_scales"]

_MIN_SCALE = 1e-8


class TTQState(NamedTuple):
    """State of `ttq_scales`.

    Attributes:
      scales: per quantized leaf a pair ``(W_p, W_n)`` of positive per-unit scales (reduced axes kept);
        None for other leaves.
      scale_state: state of the scales' optimizer (Adam).
    """

    scales: Any
    scale_state: Any


def ttq_codes(v: jax.Array, axis: int | None = -1, factor: float | None = None) -> jax.Array:
    """TTQ ternary codes of the latent weights: ``sign(v) * 1[|v| > factor * max|v|]`` per unit."""
    return ternary_project(v, threshold_ttq(v, axis, 0.05 if factor is None else factor))


def ttq_scales(
    learning_rate: ScalarOrSchedule = 1e-3,
    *,
    selection: Selection | None = None,
    axis: int | None = -1,
    factor: float | None = None,
) -> optax.GradientTransformation:
    """Learn TTQ's per-unit scales ``W_p, W_n`` in the optimizer state and rescale the weight gradients.

    Args:
      learning_rate: Adam learning rate of the scales (number or schedule).
      selection: the quantized leaves (default `hqjax.Selection()`).
      axis: unit axis (-1 per output channel; None per layer, as in the TTQ paper).
      factor: threshold factor (default 0.05).

    Returns:
      An `optax.GradientTransformation` with `TTQState`.

    Examples:
      >>> tx = ttq_scales(0.1, axis=None)
      >>> p = {'d': {'kernel': jnp.array([[0.5], [-1.0], [0.01]])}}
      >>> s = tx.init(p)
      >>> [float(x[0, 0]) for x in s.scales['d']['kernel']]
      [0.5, 1.0]
    """
    selection = _common.as_selection(selection)
    lr = as_schedule(learning_rate)
    check_schedule(lr, "learning_rate", [0], low=0.0, high=float("inf"))
    inner = optax.adam(learning_rate)

    def sums(x: jax.Array, where: jax.Array) -> jax.Array:
        x = x.astype(jnp.float32)
        return jnp.sum(jnp.where(where, x, 0.0), axis=reduce_axes(x.ndim, axis), keepdims=True)

    def init_scales(v: jax.Array) -> tuple[jax.Array, jax.Array]:
        t = ttq_codes(v, axis, factor)
        mag = jnp.abs(v)
        pos, neg = t > 0, t < 0
        wp = sums(mag, pos) / jnp.maximum(sums(jnp.ones_like(mag), pos), 1.0)
        wn = sums(mag, neg) / jnp.maximum(sums(jnp.ones_like(mag), neg), 1.0)
        return jnp.maximum(wp, _MIN_SCALE), jnp.maximum(wn, _MIN_SCALE)

    def init_fn(params: Any) -> TTQState:
        sel = _common.selected_tree(params, selection)
        _common.check_axis(axis, params, selection.paths(params))
        scales = _common.per_leaf_state(init_scales, sel, params)
        return TTQState(scales=scales, scale_state=inner.init(scales))

    def update_fn(updates: Any, state: TTQState, params: Any = None) -> tuple[Any, TTQState]:
        if params is None:
            raise ValueError("hqjax ttq_scales needs `params` in tx.update(grads, state, params).")
        sel = _common.selected_tree(params, selection)

        def grads_and_updates(v: jax.Array, g: jax.Array, sc: tuple[jax.Array, jax.Array]) -> tuple:
            wp, wn = sc
            t = ttq_codes(v, axis, factor)
            pos, neg = t > 0, t < 0
            g_scales = (sums(g, pos), -sums(g, neg))
            factor_v = jnp.where(pos, wp, jnp.where(neg, wn, 1.0))
            return g_scales, (g.astype(jnp.float32) * factor_v).astype(g.dtype)

        both = _common.map_selected(
            grads_and_updates, sel, params, updates, state.scales, other=lambda v, g, sc: None
        )
        g_scales = jax.tree.map(lambda s, b: b[0] if s else None, sel, both)
        new_updates = jax.tree.map(lambda s, b, u: b[1] if s else u, sel, both, updates)
        su, scale_state = inner.update(g_scales, state.scale_state, state.scales)
        scales = optax.apply_updates(state.scales, su)
        scales = jax.tree.map(lambda x: jnp.maximum(x, _MIN_SCALE), scales)
        return new_updates, TTQState(scales=scales, scale_state=scale_state)

    return optax.GradientTransformation(_common.abstract_safe(init_fn), update_fn)
