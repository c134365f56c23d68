"""Gradual magnitude pruning as a gradient transformation: masks in the state, pruned weights at 0.

Spec block B6 (AGP schedule) and section 7.3 ("pruning masks"): the transform recomputes per-unit
magnitude masks on the weights the step would produce, at the schedule's sparsity, and rewrites the
updates so that every pruned weight lands on exactly 0 (``update = -param`` there) and stays there.

Place it *after* the inner optimizer in an `optax.chain` (it needs the final updates). Masks are
monotone while the sparsity does not decrease: a pruned weight scores 0 in the next ranking, so it is
pruned again before any kept weight.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from hqjax.ops.prune import magnitude_mask
from hqjax.schedules import ScalarOrSchedule, as_schedule, check_schedule
from hqjax.selection import Selection
from hqjax.transforms import _common

__all__ = ["PruneState", "prune"]


class PruneState(NamedTuple):
    """State of `prune`.

    Attributes:
      count: int32 number of updates applied.
      masks: boolean keep-masks shaped like the quantized leaves (False = pruned); None for other leaves.
    """

    count: jax.Array
    masks: Any


def prune(
    sparsity: ScalarOrSchedule,
    *,
    selection: Selection | None = None,
    axis: int | None = -1,
    update_every: int = 1,
    frozen_from: int | None = None,
    release_from: int | None = None,
    check_steps: tuple[int, ...] = (0,),
) -> optax.GradientTransformation:
    """Prune the selected leaves by magnitude to a scheduled sparsity; hold pruned weights at exactly 0.

    The mask after update ``t`` (``t = count + 1``) has exactly ``floor(s(t) * n + 1/2)`` zeros in every
    unit of ``n`` weights (`hqjax.ops.magnitude_mask`), ranked on ``|param + update|`` with already
    pruned weights scored 0. Masks are recomputed when ``t % update_every == 0`` and ``t < frozen_from``.
    The initial masks (at ``tx.init``) use ``s(0)``.

    Args:
      sparsity: a fraction in [0, 1) or a schedule ``step -> fraction`` (e.g. `hqjax.ops.agp_schedule`).
      selection: the leaves to prune (default `hqjax.Selection()`).
      axis: unit axis: each unit gets the exact zero count (None: per layer).
      update_every: steps between mask updates (AGP's ``dt``).
      frozen_from: updates ``t >= frozen_from`` keep the masks (PTQ/HQ: ``quantize_step + 1``, so the
        masks of the whole ternary phase are those computed by the update that produces step
        ``quantize_step``).
      release_from: updates ``t >= release_from`` end pruning: the masks become all ones and pruned
        weights are free to regrow (PTQ/HQ with ``zeros='quantile'``, where the ternary threshold
        chooses the zeros from then on). None (default): prune to the end.
      check_steps: steps at which the schedule is validated at construction.

    Returns:
      An `optax.GradientTransformation` with `PruneState`.

    Examples:
      >>> tx = optax.chain(optax.sgd(0.1), prune(0.5))
      >>> params = {'w': {'kernel': jnp.arange(8.0).reshape(4, 2) + 1}}
      >>> state = tx.init(params)
      >>> u, state = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
      >>> optax.apply_updates(params, u)['w']['kernel'][:, 0].tolist()
      [0.0, 0.0, 5.0, 7.0]
    """
    selection = _common.as_selection(selection)
    _common.check_int(update_every, "update_every", minimum=1)
    _common.check_int(frozen_from, "frozen_from", allow_none=True)
    _common.check_int(release_from, "release_from", allow_none=True)
    sched = as_schedule(sparsity)
    check_schedule(sched, "sparsity", check_steps, low=0.0, high=1.0, high_inclusive=False)

    def init_fn(params: Any) -> PruneState:
        sel = _common.selected_tree(params, selection)
        _common.check_axis(axis, params, selection.paths(params))
        s0 = sched(0)
        masks = _common.per_leaf_state(
            lambda x: _common.unsharded_call(lambda y: magnitude_mask(y, s0, axis), x), sel, params
        )
        return PruneState(count=_common.zeros_count(), masks=masks)

    def update_fn(updates: Any, state: PruneState, params: Any = None) -> tuple[Any, PruneState]:
        if params is None:
            raise ValueError("hqjax prune needs `params` in tx.update(grads, state, params).")
        sel = _common.selected_tree(params, selection)
        count = optax.safe_increment(state.count)
        s = sched(count)

        def recompute(operands: tuple[Any, Any, Any]) -> Any:
            params, updates, masks = operands

            def one(p: jax.Array, u: jax.Array, m: jax.Array) -> jax.Array:
                cand = jnp.where(m, p + u.astype(p.dtype), 0.0).astype(p.dtype)
                return _common.unsharded_call(lambda y: magnitude_mask(y, s, axis), cand)

            return _common.map_selected(one, sel, params, updates, masks, other=lambda p, u, m: None)

        operands = (params, updates, state.masks)
        if update_every == 1 and frozen_from is None:
            masks = recompute(operands)
        else:
            refresh = jnp.asarray(True)
            if update_every > 1:
                refresh = count % update_every == 0
            if frozen_from is not None:
                refresh = refresh & (count < frozen_from)
            masks = jax.lax.cond(refresh, recompute, lambda ops: ops[2], operands)
        if release_from is not None:
            released = count >= release_from
            masks = _common.map_selected(
                lambda p, m: m | released, sel, params, masks, other=lambda p, m: None
            )

        def apply(p: jax.Array, u: jax.Array, m: jax.Array) -> jax.Array:
            return jnp.where(m, u, (-p).astype(u.dtype))

        new_updates = _common.map_selected(apply, sel, params, updates, masks, other=lambda p, u, m: u)
        return new_updates, PruneState(count=count, masks=masks)

    return optax.GradientTransformation(_common.abstract_safe(init_fn), update_fn)
