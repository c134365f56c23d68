"""Weight decay on the quantized latent weights only (spec section 8 item 10; PTQ/HQ "weight decay").

Equivalent to ``optax.add_decayed_weights(weight_decay, mask=selection.mask)``, written here so that the
mask is resolved on unboxed trees (Flax NNX ``State`` with ``Variable`` boxes works the same as a Linen
dict) and so that the selection rules are validated at ``init``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import optax

from hqjax.schedules import ScalarOrSchedule, as_schedule, check_schedule
from hqjax.selection import Selection
from hqjax.transforms import _common

__all__ = ["DecayState", "add_decayed_weights"]


class DecayState(NamedTuple):
    """State of `add_decayed_weights`: the step count (for a scheduled decay)."""

    count: jax.Array


def add_decayed_weights(
    weight_decay: ScalarOrSchedule, *, selection: Selection | None = None
) -> optax.GradientTransformation:
    """Add ``weight_decay(t) * param`` to the gradients of the selected leaves (coupled, L2-style).

    Place it before the inner optimizer, as SGD's weight decay.

    Args:
      weight_decay: a number >= 0 or a schedule ``step -> number``.
      selection: the decayed leaves (default `hqjax.Selection()`: the quantized kernels; never BN).

    Returns:
      An `optax.GradientTransformation`.

    Examples:
      >>> tx = add_decayed_weights(0.5)
      >>> p = {'d': {'kernel': jnp.ones((2, 2)), 'bias': jnp.ones(2)}}
      >>> g, _ = tx.update(jax.tree.map(jnp.zeros_like, p), tx.init(p), p)
      >>> g['d']['kernel'].tolist(), g['d']['bias'].tolist()
      ([[0.5, 0.5], [0.5, 0.5]], [0.0, 0.0])
    """
    selection = _common.as_selection(selection)
    sched = as_schedule(weight_decay)
    check_schedule(sched, "weight_decay", [0], low=0.0, high=float("inf"))

    def init_fn(params: Any) -> DecayState:
        selection.paths(params)
        return DecayState(count=_common.zeros_count())

    def update_fn(updates: Any, state: DecayState, params: Any = None) -> tuple[Any, DecayState]:
        if params is None:
            raise ValueError("hqjax add_decayed_weights needs `params` in tx.update(grads, state, params).")
        sel = _common.selected_tree(params, selection)
        wd = sched(state.count)

        def one(p: jax.Array, u: jax.Array) -> jax.Array:
            return (u + wd * p).astype(u.dtype)

        new = _common.map_selected(one, sel, params, updates, other=lambda p, u: u)
        return new, DecayState(count=optax.safe_increment(state.count))

    return optax.GradientTransformation(_common.abstract_safe(init_fn), update_fn)
