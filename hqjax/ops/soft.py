"""HLA-TQ's temperature-sigmoid soft ternarizer, its gradient re-scaling factor, and the
ternary-attracting regularizer.

Spec section 5.2 (phase R regularizer R(w) and phase Q re-scaled STE), section 8 items 13-14.
All three are reconstructions of the HLA-TQ paper [recon]; see the spec for the defaults chosen.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from hqjax._checks import check_choice, check_fraction, reduce_axes
from hqjax.ops._dtypes import compute_dtype, output_dtype
from hqjax.ops.ternary import ternary_parts

RESCALE_NORMALIZATIONS = ("peak", "mean")


def _sigmoid_prime(x: jax.Array) -> jax.Array:
    """``sigma'(x) = sigma(x) sigma(-x)``, exact and overflow-free for large ``|x|``."""
    return jax.nn.sigmoid(x) * jax.nn.sigmoid(-x)


def soft_ternarize(w: jax.Array, threshold: Any, tau: Any, scale: Any = 1.0) -> jax.Array:
    """Temperature-sigmoid ternarizer (section 5.2):

    ``phi_tau(w) = alpha * [sigma(tau (w - Delta)) + sigma(tau (w + Delta)) - 1]``.

    It is smooth, odd in ``w``, and tends to the hard ternary ``alpha * sign(w) 1[|w| > Delta]``
    pointwise (away from ``|w| = Delta``) as ``tau -> inf``.

    Args:
      w: weights.
      threshold: ``Delta`` (scalar or broadcastable per unit).
      tau: temperature (> 0; larger is harder).
      scale: ``alpha``.

    Returns:
      Soft ternary weights in the dtype of `w`.

    Examples:
      >>> [round(x, 3) for x in soft_ternarize(jnp.array([-1.0, 0.1, 1.0]), 0.5, 20.0).tolist()]
      [-1.0, 0.0, 1.0]
    """
    w = jnp.asarray(w)
    x = w.astype(compute_dtype(w))
    delta, tau = jnp.asarray(threshold, x.dtype), jnp.asarray(tau, x.dtype)
    y = jax.nn.sigmoid(tau * (x - delta)) + jax.nn.sigmoid(tau * (x + delta)) - 1.0
    return (jnp.asarray(scale, x.dtype) * y).astype(output_dtype(w))


def soft_ternarize_grad(w: jax.Array, threshold: Any, tau: Any, scale: Any = 1.0) -> jax.Array:
    """Closed-form derivative of `soft_ternarize` (section 5.2):

    ``phi'_tau(w) = alpha tau [sigma'(tau(w-Delta)) + sigma'(tau(w+Delta))]``.
    """
    w = jnp.asarray(w)
    x = w.astype(compute_dtype(w))
    delta, tau = jnp.asarray(threshold, x.dtype), jnp.asarray(tau, x.dtype)
    d = _sigmoid_prime(tau * (x - delta)) + _sigmoid_prime(tau * (x + delta))
    return jnp.asarray(scale, x.dtype) * tau * d


def rescale_factor(
    w: jax.Array,
    threshold: Any,
    tau: Any,
    *,
    axis: int | None = -1,
    normalization: str = "peak",
    min_factor: Any = 0.0,
) -> jax.Array:
    """HLA-TQ's backward re-scaling factor ``r_tau(w) = phi'_tau(w) / c`` (section 5.2, item 14).

    ``normalization='peak'`` (default): ``c = alpha tau / 4``, so
    ``r = 4 [sigma'(tau(w - Delta)) + sigma'(tau(w + Delta))]`` and
    ``r(+-Delta) = 1 + 4 sigma'(2 tau Delta) ~ 1``: the factor peaks at the thresholds.
    ``normalization='mean'``: ``c`` = the mean of ``phi'_tau`` over the unit (mean-one rescaling).
    ``alpha`` cancels in both, so the factor does not depend on the scale.

    Args:
      w: weights; threshold: per-unit ``Delta``; tau: temperature.
      axis: unit axis for ``'mean'`` normalisation (None: whole tensor).
      normalization: ``'peak'`` or ``'mean'``.
      min_factor: floor ``r_min`` in [0, 1] so far-from-threshold weights still move.

    Returns:
      Non-negative factors shaped like `w` (float32 for half-precision inputs).
    """
    check_choice(normalization, RESCALE_NORMALIZATIONS, "normalization")
    check_fraction(min_factor, "min_factor", allow_one=True)
    w = jnp.asarray(w)
    g = soft_ternarize_grad(w, threshold, tau)  # alpha = 1
    if normalization == "peak":
        r = g / (jnp.asarray(tau, g.dtype) / 4.0)
    else:
        mean = jnp.mean(g, axis=reduce_axes(w.ndim, axis), keepdims=True)
        r = jnp.where(mean > 0, g / jnp.where(mean > 0, mean, 1.0), 1.0)
    return jnp.maximum(r, jnp.asarray(min_factor, r.dtype))


def ternary_pull(w: jax.Array, *, curvature: jax.Array | None = None, **ternary_kwargs: Any) -> jax.Array:
    """Gradient of the ternary-attracting regularizer: ``d * (w - alpha t)`` (section 5.2).

    ``t`` and ``alpha`` are those of `ternary_parts` (same keyword arguments) and are held constant,
    so above-threshold weights are pulled to ``+-alpha`` and sub-threshold weights to 0. With a
    `curvature` ``d`` (LAT-style "loss-aware" option) the pull is weighted per weight.

    Returns:
      The gradient, shaped like `w`, in the dtype of `w`.
    """
    w = jnp.asarray(w)
    parts = ternary_parts(w, curvature=curvature, **ternary_kwargs)
    x = w.astype(compute_dtype(w))
    diff = x - jax.lax.stop_gradient(parts.scale * parts.codes)
    if curvature is not None:
        diff = jnp.asarray(curvature, diff.dtype) * diff
    return diff.astype(output_dtype(w))


def ternary_regularizer(
    w: jax.Array, *, curvature: jax.Array | None = None, **ternary_kwargs: Any
) -> jax.Array:
    """Ternary-attracting regularizer ``R(w) = 1/2 sum d (w - alpha t)^2`` (section 5.2).

    ``t = T(w)`` and ``alpha`` come from `ternary_parts` (same keyword arguments: threshold rule,
    scale rule, axis, ...) and are wrapped in `stop_gradient`, so ``grad R = ternary_pull(w)``.
    On unit-norm units with ``alpha`` the least-squares scale, each unit contributes
    ``1/2 (1 - cos^2(w_u, t_u))`` (B4(i)).

    Returns:
      float32 scalar: the sum over all units.
    """
    w = jnp.asarray(w)
    parts = ternary_parts(w, curvature=curvature, **ternary_kwargs)
    x = w.astype(jnp.float32)
    diff = x - jax.lax.stop_gradient((parts.scale * parts.codes).astype(jnp.float32))
    d = 1.0 if curvature is None else jnp.asarray(curvature, jnp.float32)
    return 0.5 * jnp.sum(d * diff * diff)
