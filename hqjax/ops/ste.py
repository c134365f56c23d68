"""Straight-through estimators as `jax.custom_vjp` (spec block B5 and section 7.2).

Each estimator returns the quantized value `q` in the forward pass and sends a chosen gradient to
the latent weights `w` in the backward pass; `q` itself (and every auxiliary argument) receives a
zero cotangent, so no gradient leaks through the quantizer. Typical use::

    q = ternarize(w)                  # hard forward value, computed from w
    y = identity_ste(w, q)            # forward: q exactly; backward: dL/dw = dL/dq

The forward value is exactly `q` (no ``w + stop_gradient(q - w)`` rounding).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from hqjax._checks import check_choice, normalize_axis
from hqjax.ops.soft import RESCALE_NORMALIZATIONS, rescale_factor
from hqjax.ops.sphere import project_to_sphere


def _as_like(w: jax.Array, x: jax.Array, name: str) -> jax.Array:
    x = jnp.asarray(x)
    if x.shape != w.shape:
        raise ValueError(f"`{name}` must have the shape of `w` {w.shape}, got {x.shape}.")
    return x.astype(w.dtype)


@jax.custom_vjp
def _identity(w: jax.Array, q: jax.Array) -> jax.Array:
    return q


def _identity_fwd(w, q):
    return q, None


def _identity_bwd(_, g):
    return g, jnp.zeros_like(g)


_identity.defvjp(_identity_fwd, _identity_bwd)


def identity_ste(w: jax.Array, q: jax.Array) -> jax.Array:
    """Identity STE (B5): forward ``q``, backward ``dL/dw = dL/dq``.

    Args:
      w: latent full-precision weights.
      q: quantized weights of the same shape (cast to the dtype of `w`).

    Examples:
      >>> w = jnp.array([0.3, -0.8])
      >>> jax.grad(lambda w: jnp.sum(identity_ste(w, jnp.sign(w)) * jnp.array([2.0, 3.0])))(w).tolist()
      [2.0, 3.0]
    """
    w = jnp.asarray(w)
    return _identity(w, _as_like(w, q, "q"))


@jax.custom_vjp
def _masked(w: jax.Array, q: jax.Array, mask: jax.Array) -> jax.Array:
    return q


def _masked_fwd(w, q, mask):
    return q, mask


def _masked_bwd(mask, g):
    return g * mask, jnp.zeros_like(g), jnp.zeros_like(mask)


_masked.defvjp(_masked_fwd, _masked_bwd)


def masked_ste(w: jax.Array, q: jax.Array, mask: jax.Array) -> jax.Array:
    """Masked STE (B5): forward ``q``, backward ``dL/dw = mask * dL/dq`` (pruned weights frozen).

    Args:
      w: latent weights.
      q: quantized weights, shape of `w`.
      mask: keep-mask (bool or 0/1), shape of `w`.
    """
    w = jnp.asarray(w)
    return _masked(w, _as_like(w, q, "q"), _as_like(w, mask, "mask"))


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _normalized(v: jax.Array, mask: jax.Array, axis: int | None, radius: float) -> jax.Array:
    return project_to_sphere(jnp.sign(v) * mask, axis, radius)


def _normalized_fwd(v, mask, axis, radius):
    return _normalized(v, mask, axis, radius), (v, mask)


def _normalized_bwd(axis, radius, res, g):
    v, mask = res
    _, vjp = jax.vjp(lambda x: project_to_sphere(x * mask, axis, radius), v)
    (gv,) = vjp(g)
    return gv, jnp.zeros_like(mask)


_normalized.defvjp(_normalized_fwd, _normalized_bwd)


def normalized_ste(
    v: jax.Array, mask: jax.Array, axis: int | None = -1, radius: float = 1.0
) -> jax.Array:
    """Normalisation-aware ("refined") masked STE (B5; PTQ phase B, HQ step 4) [recon].

    Forward: ``P(sign(v) * mask)`` = ``sign(v) * mask / sqrt(nnz_u)`` per unit (a unit-norm ternary
    vector). Backward: the exact VJP of ``v -> P(v * mask)`` at ``v``: sign is treated as the
    identity, the L2 projection and the mask are differentiated exactly.

    Args:
      v: raw latent weights.
      mask: keep-mask, shape of `v`.
      axis: unit axis (None: whole tensor).
      radius: sphere radius.
    """
    v = jnp.asarray(v)
    normalize_axis(axis, v.ndim)
    return _normalized(v, _as_like(v, mask, "mask"), axis, float(radius))


@partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _rescaled(w, q, threshold, tau, min_factor, axis, normalization):
    return q


def _rescaled_fwd(w, q, threshold, tau, min_factor, axis, normalization):
    return q, (w, threshold, tau, min_factor)


def _rescaled_bwd(axis, normalization, res, g):
    w, threshold, tau, min_factor = res
    r = rescale_factor(
        w, threshold, tau, axis=axis, normalization=normalization, min_factor=min_factor
    )
    gw = (g.astype(r.dtype) * r).astype(g.dtype)
    zeros = jax.tree.map(jnp.zeros_like, (threshold, tau, min_factor))
    return (gw, jnp.zeros_like(g), *zeros)


_rescaled.defvjp(_rescaled_fwd, _rescaled_bwd)


def rescaled_ste(
    w: jax.Array,
    q: jax.Array,
    threshold: Any,
    tau: Any,
    *,
    axis: int | None = -1,
    normalization: str = "peak",
    min_factor: Any = 0.0,
) -> jax.Array:
    """HLA-TQ's sigmoid-rescaled STE (section 5.2): forward ``q``, backward
    ``dL/dw = r_tau(w) * dL/dq`` with ``r_tau`` = `rescale_factor` (the temperature-sigmoid
    derivative divided by ``alpha tau / 4`` by default).

    Args:
      w: latent weights; q: quantized weights (shape of `w`).
      threshold: per-unit ``Delta`` (broadcastable); tau: temperature (> 0).
      axis, normalization, min_factor: see `rescale_factor`.
    """
    check_choice(normalization, RESCALE_NORMALIZATIONS, "normalization")
    w = jnp.asarray(w)
    normalize_axis(axis, w.ndim)
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    return _rescaled(
        w, _as_like(w, q, "q"), f32(threshold), f32(tau), f32(min_factor), axis, normalization
    )
