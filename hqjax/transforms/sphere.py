"""Keep the latent weights on the hypersphere: a projection applied after the optimizer step.

Spec block B1: ``w_u = r * v_u / ||v_u||`` per unit. The transform rewrites the updates so that the new
latent weights are ``r * P(param + update)`` (an `optax.projections`-style constraint on the selected
leaves). Zeros stay zeros, so it commutes with pruning; a unit of norm zero stays zero.

The recipes compute ``P`` in the forward pass and do not need it (their default keeps the latent norm
free, controlled by weight decay); it is offered for ablations and as the ``radius=`` option of
`hqjax.ptq`, `hqjax.hq` and `hqjax.hla_tq`, where it fixes the effective learning rate of
scale-invariant weights.
"""

from __future__ import annotations

from typing import Any

import jax
import optax

from hqjax._checks import check_positive
from hqjax.ops.sphere import project_to_sphere as _project
from hqjax.selection import Selection
from hqjax.transforms import _common

__all__ = ["project_to_sphere"]


def project_to_sphere(
    radius: float = 1.0, *, selection: Selection | None = None, axis: int | None = -1
) -> optax.GradientTransformation:
    """Project the selected latent weights onto the sphere of `radius` after each step (B1).

    Place it last in an `optax.chain` (it needs the final updates).

    Args:
      radius: sphere radius (> 0).
      selection: the leaves to project (default `hqjax.Selection()`).
      axis: unit axis (-1 per output channel, None per layer).

    Returns:
      A stateless `optax.GradientTransformation` (`optax.EmptyState`).

    Examples:
      >>> tx = optax.chain(optax.sgd(0.0), project_to_sphere())
      >>> params = {'d': {'kernel': jnp.array([[3.0], [4.0]])}}
      >>> u, _ = tx.update(params, tx.init(params), params)
      >>> [round(x, 5) for x in optax.apply_updates(params, u)['d']['kernel'][:, 0].tolist()]
      [0.6, 0.8]
    """
    selection = _common.as_selection(selection)
    check_positive(radius, "radius")

    def init_fn(params: Any) -> optax.EmptyState:
        _common.check_axis(axis, params, selection.paths(params))
        return optax.EmptyState()

    def update_fn(updates: Any, state: optax.EmptyState, params: Any = None) -> tuple[Any, optax.EmptyState]:
        if params is None:
            raise ValueError("hqjax project_to_sphere needs `params` in tx.update(grads, state, params).")
        sel = _common.selected_tree(params, selection)

        def one(p: jax.Array, u: jax.Array) -> jax.Array:
            new = _project(p + u.astype(p.dtype), axis, radius)
            return (new - p).astype(u.dtype)

        return _common.map_selected(one, sel, params, updates, other=lambda p, u: u), state

    return optax.GradientTransformation(_common.abstract_safe(init_fn), update_fn)
