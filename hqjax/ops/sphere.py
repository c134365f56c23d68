"""Hyperspherical (L2) projection and the cosine between weights and their ternary codes.

Spec blocks B1 (hyperspherical normalisation) and B4 (cosine identity), ALGORITHMS.md section 2.

Units: a weight tensor is split into *units* along one axis (`axis`, default -1: the output channel of
a Flax conv kernel ``(kh, kw, c_in, c_out)`` or dense kernel ``(c_in, c_out)``); every statistic is
taken per unit over all other axes. ``axis=None`` treats the whole tensor as one unit (per layer).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from hqjax._checks import check_positive, reduce_axes
from hqjax.ops._dtypes import compute_dtype, output_dtype


def unit_norm(w: jax.Array, axis: int | None = -1) -> jax.Array:
    """L2 norm ``||v_u||_2`` of each unit (B1), with the reduced axes kept (broadcasts against `w`).

    Args:
      w: weight tensor.
      axis: unit axis (one norm per index along it), or None for one norm for the whole tensor.

    Returns:
      float array of norms, in the computation dtype (float32 for half-precision inputs).
    """
    w = jnp.asarray(w)
    x = w.astype(compute_dtype(w))
    return jnp.sqrt(jnp.sum(x * x, axis=reduce_axes(w.ndim, axis), keepdims=True))


def project_to_sphere(w: jax.Array, axis: int | None = -1, radius: float = 1.0) -> jax.Array:
    """Project each unit onto the sphere of the given radius: ``radius * v / ||v||`` (B1).

    The backward pass is autodiff's exact Jacobian ``radius * (I - w w^T) / ||v||`` (B1). A unit of
    norm zero maps to zeros, and its gradient is zero (never NaN).

    Args:
      w: raw weights ``v``.
      axis: unit axis (default -1, one unit per output channel), or None for per-layer.
      radius: radius of the sphere (> 0).

    Returns:
      Projected weights, same shape and dtype as `w` (computed in float32 for half precision).

    Examples:
      >>> project_to_sphere(jnp.array([[3.0], [4.0]]))[:, 0].tolist()
      [0.6000000238418579, 0.800000011920929]
    """
    check_positive(radius, "radius")
    w = jnp.asarray(w)
    x = w.astype(compute_dtype(w))
    sq = jnp.sum(x * x, axis=reduce_axes(w.ndim, axis), keepdims=True)
    nonzero = sq > 0
    # Double `where` keeps the gradient of the zero-norm branch finite.
    inv = jnp.where(nonzero, jax.lax.rsqrt(jnp.where(nonzero, sq, 1.0)), 0.0)
    return (radius * x * inv).astype(output_dtype(w))


def cosine_similarity(a: jax.Array, b: jax.Array, axis: int | None = -1) -> jax.Array:
    """Per-unit cosine ``<a, b> / (||a|| ||b||)`` (the quantity of B4); 0 where either unit has norm zero.

    Args:
      a, b: tensors of the same shape.
      axis: unit axis, or None for one cosine over the whole tensor.

    Returns:
      Cosines with one entry per unit (shape of `a` along `axis`; a scalar for ``axis=None``).
    """
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"`a` and `b` must have the same shape, got {a.shape} and {b.shape}.")
    dt = jnp.promote_types(compute_dtype(a), compute_dtype(b))
    a, b = a.astype(dt), b.astype(dt)
    red = reduce_axes(a.ndim, axis)
    dot = jnp.sum(a * b, axis=red)
    den = jnp.sqrt(jnp.sum(a * a, axis=red) * jnp.sum(b * b, axis=red))
    return jnp.where(den > 0, dot / jnp.where(den > 0, den, 1.0), 0.0)


def cosine_to_ternary(w: jax.Array, codes: jax.Array, axis: int | None = -1) -> jax.Array:
    """Cosine between weights and a ternary code tensor, by the B4 identity.

    For codes ``t`` in {-1, 0, +1} that agree in sign with `w` on their support S (``t = T(w)``),
    ``cos(w, t) = sum_{i in S} |w_i| / (||w||_2 sqrt(|S|))`` (B4). For codes of arbitrary sign the
    numerator is ``<w, t>``; this function computes that general form, which equals B4 for ``t = T(w)``.
    Any positive per-unit scale of the codes leaves the cosine unchanged.

    Args:
      w: full-precision weights.
      codes: ternary codes in {-1, 0, +1}, same shape as `w`.
      axis: unit axis, or None.

    Returns:
      One cosine per unit; 0 for a unit whose weights or codes are all zero.
    """
    w, codes = jnp.asarray(w), jnp.asarray(codes)
    if w.shape != codes.shape:
        raise ValueError(f"`w` and `codes` must have the same shape, got {w.shape} and {codes.shape}.")
    x = w.astype(compute_dtype(w))
    t = codes.astype(x.dtype)
    red = reduce_axes(w.ndim, axis)
    num = jnp.sum(x * t, axis=red)
    nnz = jnp.sum(jnp.abs(t), axis=red)
    den = jnp.sqrt(jnp.sum(x * x, axis=red) * nnz)
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)
