"""HLA-TQ's ternary-attracting regularizer as a gradient transformation (spec section 5.2, phase R).

Adds ``lambda(t) * dR/dV`` to the gradients of the selected leaves, where
``R(w) = 1/2 sum_u ||w_u - alpha_u t_u||^2`` with ``t``, ``alpha`` held constant (`hqjax.ops.ternary_pull`)
and ``w = P(V)`` the latent weights projected per unit onto the sphere (B1). The chain rule through the
projection is an exact VJP of `hqjax.ops.project_to_sphere`: ``dR/dV = J_P(V)^T (w - alpha t)``. This is
the same gradient as adding ``lambda * R(P(V))`` to the loss, but keeps the loss function clean.

With ``alpha`` the least-squares scale, each unit contributes ``1/2 (1 - cos^2(w_u, t_u))`` (B4(i)): the
regularizer raises the cosine between latent and ternary weights. Place it before the inner optimizer.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import optax

from hqjax._checks import check_choice
from hqjax.ops.soft import ternary_pull
from hqjax.ops.sphere import project_to_sphere
from hqjax.ops.ternary import SCALE_RULES, THRESHOLD_RULES
from hqjax.schedules import ScalarOrSchedule, as_schedule, check_schedule
from hqjax.selection import Selection, as_rules
from hqjax.transforms import _common

__all__ = ["RegularizerState", "ternary_regularizer"]


class RegularizerState(NamedTuple):
    """State of `ternary_regularizer`: the step count (``lambda`` is a schedule of it)."""

    count: jax.Array


def ternary_regularizer(
    strength: ScalarOrSchedule,
    *,
    selection: Selection | None = None,
    axis: int | None = -1,
    threshold: str = "twn",
    scale: str = "lsq",
    sparsity: ScalarOrSchedule | None = None,
    sphere: bool = True,
    scaled: str | tuple[str, ...] | None = None,
    check_steps: tuple[int, ...] = (0,),
) -> optax.GradientTransformation:
    """Add the gradient of ``lambda(t) * R(P(V))`` (HLA-TQ phase R, spec section 5.2) to the gradients.

    Args:
      strength: ``lambda``: a number >= 0 or a schedule (HLA-TQ: `hqjax.schedules.ramp`). Steps where it is
        0 skip the computation (`jax.lax.cond`).
      selection: the regularized leaves (default `hqjax.Selection()`).
      axis: unit axis.
      threshold, scale: ternary rules for ``t`` and ``alpha`` (`hqjax.ops.ternary_parts`); default TWN
        threshold with least-squares scale. ``'quantile'`` needs `sparsity`.
      sparsity: number or schedule for the ``'quantile'`` threshold.
      sphere: regularize ``P(V)`` (True, HLA-TQ) or ``V`` itself.
      scaled: regex rules naming leaves regularized without the sphere (as `QuantizerConfig.scaled`).
      check_steps: steps at which schedules are validated at construction.

    Returns:
      An `optax.GradientTransformation` with `RegularizerState`.

    Examples:
      >>> tx = ternary_regularizer(1.0, sphere=False, axis=None)
      >>> p = {'d': {'kernel': jnp.array([[0.9], [0.1], [-1.1]])}}
      >>> g, _ = tx.update(jax.tree.map(jnp.zeros_like, p), tx.init(p), p)
      >>> [round(x, 3) for x in g['d']['kernel'][:, 0].tolist()]
      [-0.1, 0.1, -0.1]
    """
    selection = _common.as_selection(selection)
    check_choice(threshold, THRESHOLD_RULES, "threshold")
    check_choice(scale, SCALE_RULES, "scale")
    if threshold in ("mask", "loss_aware") or scale == "curvature":
        raise ValueError(
            "ternary_regularizer supports thresholds twn/ttq/quantile/exact_cosine and scales lsq/unit."
        )
    if threshold == "quantile" and sparsity is None:
        raise ValueError("threshold='quantile' needs a `sparsity` (number or schedule).")
    lam = as_schedule(strength)
    check_schedule(lam, "strength", check_steps, low=0.0, high=float("inf"))
    sparsity_fn = as_schedule(0.0 if sparsity is None else sparsity)
    check_schedule(sparsity_fn, "sparsity", check_steps, low=0.0, high=1.0, high_inclusive=False)
    scaled_rules = as_rules(scaled, "scaled")

    def on_sphere(path_scaled: bool) -> bool:
        return sphere and not path_scaled

    def init_fn(params: Any) -> RegularizerState:
        paths = selection.paths(params)
        _common.check_axis(axis, params, paths)
        _common.scaled_paths(paths, scaled_rules)
        return RegularizerState(count=_common.zeros_count())

    def update_fn(updates: Any, state: RegularizerState, params: Any = None) -> tuple[Any, RegularizerState]:
        if params is None:
            raise ValueError("hqjax ternary_regularizer needs `params` in tx.update(grads, state, params).")
        sel = _common.selected_tree(params, selection)
        sc = _common.scaled_tree(params, scaled_rules)
        weight = lam(state.count)
        s = sparsity_fn(state.count)
        kw = dict(threshold=threshold, scale=scale, axis=axis)
        if threshold == "quantile":
            kw["sparsity"] = s

        def pull(v: jax.Array, is_scaled: bool) -> jax.Array:
            if not on_sphere(is_scaled):
                return ternary_pull(v, **kw)
            w, vjp = jax.vjp(lambda x: project_to_sphere(x, axis), v)
            (g,) = vjp(ternary_pull(w, **kw))
            return g

        def add_all(operands: tuple[Any, Any, jax.Array]) -> Any:
            params, updates, weight = operands

            def one(on: bool, is_sc: bool, v: jax.Array, u: jax.Array) -> jax.Array:
                return (u + weight * pull(v, is_sc).astype(u.dtype)).astype(u.dtype) if on else u

            return jax.tree.map(one, sel, sc, params, updates)

        new = jax.lax.cond(weight > 0, add_all, lambda ops: ops[1], (params, updates, weight))
        return new, RegularizerState(count=optax.safe_increment(state.count))

    return optax.GradientTransformation(_common.abstract_safe(init_fn), update_fn)
