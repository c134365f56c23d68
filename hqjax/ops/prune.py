"""Magnitude pruning masks with exact zero counts, and the gradual (AGP) sparsity schedule.

Spec block B6 (ALGORITHMS.md section 2) and defaults 4-5 of section 8.

A mask for sparsity ``s`` over ``n`` weights has exactly ``k = floor(s * n + 1/2)`` zeros (``s * n``
rounded half up): the ``k`` smallest magnitudes, ties broken by position (lower flat index pruned
first), so the count never depends on ties.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from hqjax._checks import check_fraction, check_int, is_concrete, normalize_axis
from hqjax.ops._dtypes import compute_dtype

Schedule = Callable[[Any], jax.Array]


def num_pruned(n: int, sparsity: Any) -> jax.Array:
    """Number of zeros a mask over `n` weights has at `sparsity`: ``floor(s * n + 1/2)`` (B6)."""
    s = jnp.clip(jnp.asarray(sparsity, jnp.float32), 0.0, 1.0)
    return jnp.floor(s * n + 0.5).astype(jnp.int32)


_INT_OF_WIDTH = {2: jnp.int16, 4: jnp.int32, 8: jnp.int64}


def _kth_bits(bits: jax.Array, k: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per row of non-negative integers, the smallest ``t`` with at least `k` entries ``<= t`` (0 when
    ``k = 0``): one bisection step per bit, each a count. Also returns the integers the loop counted.

    Compare against the returned integers, not against a recomputation of `bits`: XLA may duplicate a
    cheap elementwise producer into every consumer's fusion and round it differently there (e.g. a
    contracted multiply-add), so an entry equal to the k-th in one copy may differ by an ulp in
    another. The copy is written on the first iteration, in a loop-carried buffer that no consumer can
    re-derive.
    """
    lo = jnp.zeros_like(bits[:, :1])  # *_like: the bounds keep the rows' sharding under explicit meshes
    hi = jnp.full_like(lo, jnp.iinfo(bits.dtype).max)

    def halve(i, carry):
        lo, hi, seen = carry
        seen = jnp.where(i == 0, bits, seen)
        mid = lo + (hi - lo) // 2  # count(seen <= hi) >= k throughout, so mid + 1 <= hi
        enough = jnp.sum(seen <= mid, axis=1, keepdims=True) >= k
        return jnp.where(enough, lo, mid + 1), jnp.where(enough, mid, hi), seen

    lo, _, seen = jax.lax.fori_loop(0, 8 * bits.dtype.itemsize - 1, halve, (lo, hi, jnp.zeros_like(bits)))
    return lo, seen


def _as_ordered_ints(scores: jax.Array) -> jax.Array:
    """Non-negative floats as integers of the same width and the same order (their IEEE bit patterns)."""
    return jax.lax.bitcast_convert_type(scores, _INT_OF_WIDTH[scores.dtype.itemsize])


def kth_smallest(scores: jax.Array, k: jax.Array) -> jax.Array:
    """Row-wise `k`-th smallest entry (1-based) of a 2-D array of non-negative floats, shape ``(rows, 1)``;
    0 for ``k = 0``.

    Exact and sort-free: non-negative IEEE floats order as their bit patterns read as integers, so a
    bisection over those integers, one count per bit, finds the value. Far cheaper than a sort on CPUs
    (a 500 x 800 layer: ~20x), and free of gathers and scatters, so mesh shardings propagate through it.

    Examples:
      >>> kth_smallest(jnp.array([[0.5, 0.1, 0.3, 0.1]]), 3).tolist()
      [[0.30000001192092896]]
    """
    return jax.lax.bitcast_convert_type(_kth_bits(_as_ordered_ints(scores), k)[0], scores.dtype)


def _keep_top(scores: jax.Array, k: jax.Array) -> jax.Array:
    """Row-wise mask of a 2-D non-negative score matrix: False on the `k` smallest entries of each row,
    ties broken by position (the lower index pruned first, as the ranks of a stable sort)."""
    kth, bits = _kth_bits(_as_ordered_ints(scores), k)
    below, tied = bits < kth, bits == kth
    tied_pruned = k - jnp.sum(below, axis=1, keepdims=True)
    return ~(below | (tied & (jnp.cumsum(tied, axis=1) <= tied_pruned)))


def magnitude_mask(w: jax.Array, sparsity: Any, axis: int | None = -1) -> jax.Array:
    """Boolean mask keeping the largest magnitudes, per unit or per layer (B6).

    Args:
      w: weights (or any scores: the magnitude ``|w|`` is ranked).
      sparsity: fraction of zeros in [0, 1); a Python number or a (traced) scalar, e.g. from a
        schedule. Traced values cannot be validated and are clipped to [0, 1].
      axis: unit axis: each index along it (e.g. an output filter) gets exactly
        ``floor(sparsity * n_unit + 1/2)`` zeros. None: one mask over the whole tensor.

    Returns:
      Boolean array shaped like `w`, False where a weight is pruned.

    Examples:
      >>> magnitude_mask(jnp.array([0.3, -0.1, 2.0, 0.05]), 0.5, axis=None).tolist()
      [True, False, True, False]
    """
    check_fraction(sparsity, "sparsity")
    w = jnp.asarray(w)
    ax = normalize_axis(axis, w.ndim)
    scores = jnp.abs(w.astype(compute_dtype(w)))
    if ax is None:
        flat = scores.reshape(1, -1)
        return _keep_top(flat, num_pruned(flat.shape[1], sparsity)).reshape(w.shape)
    moved = jnp.moveaxis(scores, ax, 0)
    flat = moved.reshape(moved.shape[0], -1)
    mask = _keep_top(flat, num_pruned(flat.shape[1], sparsity))
    return jnp.moveaxis(mask.reshape(moved.shape), 0, ax)


def global_magnitude_masks(tree: Any, sparsity: Any) -> Any:
    """Masks over a whole pytree of weights ranked together (global pruning, section 8 item 5).

    Exactly ``floor(sparsity * N + 1/2)`` of the ``N`` weights in the tree are pruned. Magnitudes of
    different layers are compared directly, so pass weights on a common scale (e.g. each unit
    projected to the sphere with `project_to_sphere`).

    Args:
      tree: pytree of arrays.
      sparsity: fraction of zeros in [0, 1).

    Returns:
      A pytree of boolean masks with the structure of `tree`.
    """
    check_fraction(sparsity, "sparsity")
    leaves, treedef = jax.tree.flatten(tree)
    if not leaves:
        raise ValueError("`tree` has no array leaves to prune.")
    leaves = [jnp.asarray(x) for x in leaves]
    flat = jnp.concatenate([jnp.abs(x.astype(jnp.float32)).reshape(-1) for x in leaves])[None]
    keep = _keep_top(flat, num_pruned(flat.shape[1], sparsity))[0]
    masks, start = [], 0
    for x in leaves:
        masks.append(keep[start : start + x.size].reshape(x.shape))
        start += x.size
    return jax.tree.unflatten(treedef, masks)


def agp_sparsity(
    step: Any,
    final_sparsity: Any,
    *,
    begin_step: int,
    end_step: int,
    initial_sparsity: Any = 0.0,
    update_every: int = 1,
) -> jax.Array:
    """Cubic gradual sparsity of Zhu & Gupta (2017), B6.

    ``s(t) = s_f + (s_i - s_f) * (1 - (t' - t0) / (t1 - t0))**3`` with ``t'`` the last update step
    ``t0 + update_every * floor((t - t0) / update_every)``. Before `begin_step` the network is dense
    (0.0); from `end_step` on the value is `final_sparsity` (even when ``t1 - t0`` is not a multiple of
    `update_every`).

    Args:
      step: training step (int or traced scalar).
      final_sparsity: ``s_f`` in [0, 1).
      begin_step: ``t0``, the first pruning step.
      end_step: ``t1`` > ``t0``, where ``s_f`` is reached.
      initial_sparsity: ``s_i`` in [0, s_f].
      update_every: ``dt``, steps between mask updates (>= 1).

    Returns:
      float32 scalar sparsity.
    """
    t = jnp.asarray(step, jnp.float32)
    t0, t1 = float(begin_step), float(end_step)
    t_upd = t0 + update_every * jnp.floor((t - t0) / update_every)
    frac = jnp.where(t >= t1, 1.0, jnp.clip((t_upd - t0) / (t1 - t0), 0.0, 1.0))
    s_i = jnp.asarray(initial_sparsity, jnp.float32)
    s_f = jnp.asarray(final_sparsity, jnp.float32)
    s = s_f + (s_i - s_f) * (1.0 - frac) ** 3
    return jnp.where(t < t0, 0.0, s)


def agp_schedule(
    final_sparsity: Any,
    *,
    begin_step: int = 0,
    end_step: int,
    initial_sparsity: Any = 0.0,
    update_every: int = 1,
) -> Schedule:
    """The AGP schedule (B6): a validated ``step -> sparsity`` callable for `agp_sparsity`, usable as any
    optax schedule; 0 before `begin_step`, `final_sparsity` from `end_step` on.

    The targets may be traced scalars (as under `optax.inject_hyperparams`); only concrete values are
    validated. The library's one AGP schedule (``hqjax.schedules.agp`` is a deprecated alias).

    Examples:
      >>> sched = agp_schedule(0.9, begin_step=0, end_step=100)
      >>> float(sched(0)), float(sched(100))
      (0.0, 0.8999999761581421)
    """
    check_fraction(final_sparsity, "final_sparsity")
    check_fraction(initial_sparsity, "initial_sparsity")
    if is_concrete(initial_sparsity) and is_concrete(final_sparsity) and initial_sparsity > final_sparsity:
        raise ValueError(
            f"`initial_sparsity`={initial_sparsity} exceeds `final_sparsity`={final_sparsity}; "
            "AGP only increases sparsity."
        )
    begin_step = check_int(begin_step, "begin_step", hint=None)
    end_step = check_int(end_step, "end_step", hint=None)
    if end_step <= begin_step:
        raise ValueError(f"`end_step`={end_step} must be greater than `begin_step`={begin_step}.")
    update_every = check_int(update_every, "update_every", minimum=1, hint=None)

    def schedule(step: Any) -> jax.Array:
        return agp_sparsity(
            step,
            final_sparsity,
            begin_step=begin_step,
            end_step=end_step,
            initial_sparsity=initial_sparsity,
            update_every=update_every,
        )

    return schedule
