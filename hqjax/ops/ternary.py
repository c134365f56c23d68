"""Ternary thresholds, scales and ternarization.

Spec blocks B2 (ternary projection, threshold rules), B3 (scales) and B4(iii) (the exact-cosine
threshold), ALGORITHMS.md section 2; section 7.1 for the function list.

Every threshold and scale is per unit (see `hqjax.ops.sphere` for the `axis` convention) and returned
with the reduced axes kept, so it broadcasts against the weights.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from hqjax._checks import check_choice, check_fraction, check_int, check_positive, normalize_axis, reduce_axes
from hqjax.ops._dtypes import compute_dtype, output_dtype
from hqjax.ops.prune import kth_smallest, num_pruned

THRESHOLD_RULES = ("twn", "ttq", "quantile", "exact_cosine", "loss_aware", "mask")
SCALE_RULES = ("lsq", "unit", "curvature", "none")


class Ternary(NamedTuple):
    """A ternary decomposition ``w_q = scale * codes``.

    Attributes:
      codes: values in {-1, 0, +1}, shaped like the weights (dtype of the weights).
      scale: one non-negative scale per unit, reduced axes kept.
      threshold: the per-unit threshold ``Delta`` that produced the codes (reduced axes kept).
    """

    codes: jax.Array
    scale: jax.Array
    threshold: jax.Array


def _abs(w: jax.Array) -> jax.Array:
    return jnp.abs(w.astype(compute_dtype(w)))


def _units_last(x: jax.Array, axis: int | None) -> tuple[jax.Array, tuple[int, ...]]:
    """Reshape to (units, n) and return the keepdims shape of one value per unit."""
    ax = normalize_axis(axis, x.ndim)
    if ax is None:
        return x.reshape(1, -1), (1,) * x.ndim
    keep = tuple(s if i == ax else 1 for i, s in enumerate(x.shape))
    return jnp.moveaxis(x, ax, 0).reshape(x.shape[ax], -1), keep


def threshold_twn(w: jax.Array, axis: int | None = -1, factor: float = 0.7) -> jax.Array:
    """TWN threshold ``Delta = factor * mean|w|`` per unit (B2, Li & Liu 2016; factor 0.7)."""
    check_positive(factor, "factor")
    w = jnp.asarray(w)
    return factor * jnp.mean(_abs(w), axis=reduce_axes(w.ndim, axis), keepdims=True)


def threshold_ttq(w: jax.Array, axis: int | None = -1, factor: float = 0.05) -> jax.Array:
    """TTQ threshold ``Delta = factor * max|w|`` per unit (B2, Zhu et al. 2017; factor 0.05)."""
    check_positive(factor, "factor")
    w = jnp.asarray(w)
    return factor * jnp.max(_abs(w), axis=reduce_axes(w.ndim, axis), keepdims=True)


def threshold_quantile(w: jax.Array, sparsity: Any, axis: int | None = -1) -> jax.Array:
    """Sparsity-driven threshold: the k-th smallest ``|w|`` per unit, ``k = floor(s*n + 1/2)`` (B2).

    Thresholding ``|w| > Delta`` then zeroes at least k weights per unit (exactly k without ties;
    `magnitude_mask` gives an exact count with ties). ``k = 0`` gives ``Delta = 0``.
    """
    check_fraction(sparsity, "sparsity")
    w = jnp.asarray(w)
    flat, keep = _units_last(_abs(w), axis)
    k = num_pruned(flat.shape[1], sparsity)
    return kth_smallest(flat, k).reshape(keep)


def threshold_exact_cosine(w: jax.Array, axis: int | None = -1) -> jax.Array:
    """Threshold maximising ``cos(w, T(w))`` exactly (B4(iii); the exact TWN criterion).

    With ``a_1 >= ... >= a_n`` the sorted magnitudes and ``c_k`` their cumulative sums, the support
    size is ``k* = argmax_k c_k^2 / k`` and ``Delta = a_{k*+1}`` (0 when ``k* = n``), so that
    ``|w| > Delta`` keeps exactly the ``k*`` largest magnitudes when there are no ties at the boundary.
    """
    w = jnp.asarray(w)
    flat, keep = _units_last(_abs(w), axis)
    n = flat.shape[1]
    desc = -jnp.sort(-flat, axis=1)
    csum = jnp.cumsum(desc, axis=1)
    ks = jnp.arange(1, n + 1, dtype=desc.dtype)
    kstar = jnp.argmax(csum * csum / ks, axis=1)  # index k*-1, first maximiser
    nxt = jnp.take_along_axis(desc, jnp.minimum(kstar + 1, n - 1)[:, None], axis=1)[:, 0]
    return jnp.where(kstar + 1 < n, nxt, 0.0).reshape(keep)


def threshold_loss_aware(
    w: jax.Array, curvature: jax.Array, axis: int | None = -1, iters: int = 2
) -> jax.Array:
    """Loss-aware threshold ``Delta = alpha / 2`` with the curvature-weighted scale (B2, B3(d), LAT).

    Starts from the TWN threshold and runs `iters` fixed-point iterations of
    ``alpha = sum_S d|w| / sum_S d``, ``Delta = alpha / 2`` (Hou & Kwok 2018).
    """
    iters = check_int(iters, "iters", minimum=1, hint=None)
    w = jnp.asarray(w)
    d = _check_same_shape(w, curvature, "curvature")
    delta = threshold_twn(w, axis)
    for _ in range(iters):
        codes = ternary_project(w, delta)
        delta = 0.5 * scale_curvature(w, codes, d, axis)
    return delta


def ternary_project(w: jax.Array, threshold: jax.Array) -> jax.Array:
    """Ternary codes ``t = sign(w) * 1[|w| > Delta]`` in {-1, 0, +1}, in the dtype of `w` (B2)."""
    w = jnp.asarray(w)
    big = _abs(w) > jnp.asarray(threshold)
    return (jnp.sign(w) * big).astype(output_dtype(w))


def _check_same_shape(w: jax.Array, other: jax.Array, name: str) -> jax.Array:
    other = jnp.asarray(other)
    if other.shape != w.shape:
        raise ValueError(f"`{name}` must have the shape of the weights {w.shape}, got {other.shape}.")
    return other


def _safe_div(num: jax.Array, den: jax.Array) -> jax.Array:
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


def scale_lsq(w: jax.Array, codes: jax.Array, axis: int | None = -1) -> jax.Array:
    """Least-squares scale ``argmin_a ||w - a t||^2 = <w, t> / <t, t>`` per unit (B3(a)).

    For ``t = T(w)`` this is ``mean_{i in S}|w_i|`` (TWN). 0 for a unit with no non-zero code.
    """
    w = jnp.asarray(w)
    t = _check_same_shape(w, codes, "codes").astype(compute_dtype(w))
    x = w.astype(t.dtype)
    red = reduce_axes(w.ndim, axis)
    return _safe_div(jnp.sum(x * t, red, keepdims=True), jnp.sum(t * t, red, keepdims=True))


def scale_unit(codes: jax.Array, axis: int | None = -1) -> jax.Array:
    """Unit-norm scale ``1 / sqrt(|S|)`` so that ``||scale * t||_2 = 1`` (B3(b)); 0 if ``S`` is empty."""
    t = jnp.asarray(codes)
    t = t.astype(compute_dtype(t))
    nnz = jnp.sum(t * t, reduce_axes(t.ndim, axis), keepdims=True)
    return jnp.where(nnz > 0, jax.lax.rsqrt(jnp.where(nnz > 0, nnz, 1.0)), 0.0)


def scale_curvature(
    w: jax.Array, codes: jax.Array, curvature: jax.Array, axis: int | None = -1
) -> jax.Array:
    """Curvature-weighted scale ``argmin_a sum d (w - a t)^2 = sum d w t / sum d t^2`` (B3(d), LAT).

    `curvature` ``d`` > 0 is a diagonal curvature estimate, e.g. Adam's ``sqrt(v_hat) + eps``.
    """
    w = jnp.asarray(w)
    t = _check_same_shape(w, codes, "codes").astype(compute_dtype(w))
    d = _check_same_shape(w, curvature, "curvature").astype(t.dtype)
    x = w.astype(t.dtype)
    red = reduce_axes(w.ndim, axis)
    return _safe_div(jnp.sum(d * x * t, red, keepdims=True), jnp.sum(d * t * t, red, keepdims=True))


def ternary_parts(
    w: jax.Array,
    *,
    threshold: str = "twn",
    scale: str = "lsq",
    axis: int | None = -1,
    sparsity: Any = None,
    factor: float | None = None,
    curvature: jax.Array | None = None,
    mask: jax.Array | None = None,
) -> Ternary:
    """Decompose weights into ternary codes, per-unit scale and threshold (B2 + B3).

    Args:
      w: weights (e.g. projected to the sphere).
      threshold: ``'twn'`` (``factor`` default 0.7), ``'ttq'`` (``factor`` default 0.05),
        ``'quantile'`` (needs ``sparsity``), ``'exact_cosine'``, ``'loss_aware'`` (needs
        ``curvature``), or ``'mask'`` (zero set = ``~mask``: PTQ/HQ's "pruning is the zero bin").
      scale: ``'lsq'`` (B3a), ``'unit'`` (B3b), ``'curvature'`` (B3d, needs ``curvature``), or
        ``'none'`` (scale 1).
      axis: unit axis, or None for per-layer.
      sparsity: zero fraction for ``threshold='quantile'``.
      factor: multiplier for ``'twn'``/``'ttq'``.
      curvature: diagonal curvature ``d`` for the loss-aware rules.
      mask: optional boolean keep-mask (pruning); masked weights are zero before the rule is applied
        and their codes are always 0.

    Returns:
      `Ternary` (codes, scale, threshold).

    Examples:
      >>> parts = ternary_parts(jnp.array([0.8, -0.1, -1.0, 0.9]), axis=None)
      >>> parts.codes.tolist(), round(float(parts.scale[0]), 4)
      ([1.0, 0.0, -1.0, 1.0], 0.9)
    """
    check_choice(threshold, THRESHOLD_RULES, "threshold")
    check_choice(scale, SCALE_RULES, "scale")
    w = jnp.asarray(w)
    normalize_axis(axis, w.ndim)
    if mask is not None:
        w = jnp.where(_check_same_shape(w, mask, "mask").astype(bool), w, jnp.zeros_like(w))
    needs_curv = threshold == "loss_aware" or scale == "curvature"
    if needs_curv and curvature is None:
        raise ValueError("`curvature` is required for threshold='loss_aware' or scale='curvature'.")
    if threshold == "twn":
        delta = threshold_twn(w, axis, 0.7 if factor is None else factor)
    elif threshold == "ttq":
        delta = threshold_ttq(w, axis, 0.05 if factor is None else factor)
    elif threshold == "quantile":
        if sparsity is None:
            raise ValueError("`sparsity` is required for threshold='quantile'.")
        delta = threshold_quantile(w, sparsity, axis)
    elif threshold == "exact_cosine":
        delta = threshold_exact_cosine(w, axis)
    elif threshold == "loss_aware":
        delta = threshold_loss_aware(w, curvature, axis)
    else:  # "mask"
        if mask is None:
            raise ValueError("`mask` is required for threshold='mask'.")
        red = reduce_axes(w.ndim, axis)
        delta = jnp.zeros([1 if i in red else s for i, s in enumerate(w.shape)], jnp.float32)
    codes = ternary_project(w, delta)
    if scale == "lsq":
        alpha = scale_lsq(w, codes, axis)
    elif scale == "unit":
        alpha = scale_unit(codes, axis)
    elif scale == "curvature":
        alpha = scale_curvature(w, codes, curvature, axis)
    else:
        alpha = jnp.ones_like(delta, dtype=compute_dtype(w))
    return Ternary(codes=codes, scale=alpha, threshold=delta)


def ternarize(w: jax.Array, **kwargs: Any) -> jax.Array:
    """Hard ternary weights ``scale * codes`` in the dtype of `w` (B2 + B3).

    Takes the keyword arguments of `ternary_parts`. No gradient flows through this function (its
    derivative is zero almost everywhere); wrap it in a straight-through estimator from
    `hqjax.ops.ste` for training.

    Examples:
      >>> [round(x, 4) for x in ternarize(jnp.array([0.8, -0.1, -1.0, 0.9]), axis=None).tolist()]
      [0.9, 0.0, -0.9, 0.9]
    """
    parts = ternary_parts(w, **kwargs)
    return (parts.scale * parts.codes).astype(output_dtype(jnp.asarray(w)))
