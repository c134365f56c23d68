"""HQ's reinitialisation at the phase boundary (spec section 4.2 step 3, section 8 item 6) [recon].

At one step the transform rewrites the updates so that the new latent weights are
``V <- mean_kept|V| * sign(V) * M`` per unit, with ``V`` the weights the step would otherwise produce and
``M = (V != 0)`` (after `prune`, exactly the pruning mask). Then ``P(V) = P(sign(V) * M)``: the cosine
between the latent weights and their ternary projection is 1 when ternary training starts. The new
weights are ``hqjax.ops.ternarize(V, threshold='mask', mask=V != 0, scale='lsq')``.

Place it after `prune` in an `optax.chain`. The landing point is exact up to the one float rounding of
``param + update`` in `optax.apply_updates`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import optax

from hqjax._checks import check_choice
from hqjax.ops.ternary import ternarize
from hqjax.selection import Selection
from hqjax.transforms import _common

__all__ = ["REINIT_RULES", "ReinitState", "reinitialize"]

REINIT_RULES = ("sign", "none")


class ReinitState(NamedTuple):
    """State of `reinitialize`: the step count."""

    count: jax.Array


def reinitialize(
    at_step: int, *, rule: str = "sign", selection: Selection | None = None, axis: int | None = -1
) -> optax.GradientTransformation:
    """Reinitialize the selected latent weights once, so that step `at_step` starts from them (HQ).

    The update that produces the weights for step `at_step` (the one applied when ``count + 1 ==
    at_step``) is replaced by the one landing on ``mean_kept|V| * sign(V) * M`` per unit.

    Args:
      at_step: the step whose weights are reinitialized (HQ: the phase boundary ``quantize_step``).
      rule: ``'sign'`` (default) or ``'none'`` (no-op, for ablations).
      selection: the leaves (default `hqjax.Selection()`).
      axis: unit axis (-1 per output channel, None per layer).

    Returns:
      An `optax.GradientTransformation` with `ReinitState`.

    Examples:
      >>> tx = optax.chain(optax.sgd(0.0), reinitialize(1, axis=None))
      >>> p = {'d': {'kernel': jnp.array([[0.5], [-1.5], [0.0]])}}
      >>> u, _ = tx.update(jax.tree.map(jnp.zeros_like, p), tx.init(p), p)
      >>> optax.apply_updates(p, u)['d']['kernel'][:, 0].tolist()
      [1.0, -1.0, 0.0]
    """
    check_choice(rule, REINIT_RULES, "reinit rule")
    selection = _common.as_selection(selection)
    _common.check_int(at_step, "at_step")

    def init_fn(params: Any) -> ReinitState:
        _common.check_axis(axis, params, selection.paths(params))
        return ReinitState(count=_common.zeros_count())

    def update_fn(updates: Any, state: ReinitState, params: Any = None) -> tuple[Any, ReinitState]:
        if params is None:
            raise ValueError("hqjax reinitialize needs `params` in tx.update(grads, state, params).")
        count = optax.safe_increment(state.count)
        new_state = ReinitState(count=count)
        if rule == "none":
            return updates, new_state
        sel = _common.selected_tree(params, selection)

        def one(p: jax.Array, u: jax.Array) -> jax.Array:
            cand = p + u.astype(p.dtype)
            target = ternarize(cand, threshold="mask", mask=cand != 0, scale="lsq", axis=axis)
            return (target - p).astype(u.dtype)

        def reinit(operands: tuple[Any, Any]) -> Any:
            params, updates = operands
            return _common.map_selected(one, sel, params, updates, other=lambda p, u: u)

        new = jax.lax.cond(count == at_step, reinit, lambda ops: ops[1], (params, updates))
        return new, new_state

    return optax.GradientTransformation(_common.abstract_safe(init_fn), update_fn)
