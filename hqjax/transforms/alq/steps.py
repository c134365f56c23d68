"""ALQ's per-mode steps (ALGORITHMS.md 1.2-1.4) as pure functions of arrays and `ALQLayer` pytrees.

=============  ==============================================================================
`sketch_layer`  initial binary bases of a (pretrained) weight tensor (1.2)
`coordinate`    Adam/AMSGrad step on the coordinates with the bases fixed (1.4 a)
`basis`         nearest representable value of the quadratic-model optimum ``w - p/h``, then a
                curvature-weighted least-squares refit of the coordinates (1.4 b)
`ste`           as basis, on a maintained full-precision tensor (post-training, 1.4 c)
`prune`         moments only; then the coordinates with the smallest modelled loss increase
                ``-p alpha + h alpha^2 / 2`` are removed, ranked across all layers (1.4 d)
=============  ==============================================================================

Every mode first takes the weight-domain AMSGrad moments of each leaf (`layer_step`), which give the
quadratic loss model's pseudo gradient ``p`` and pseudo Hessian ``h`` (1.3). The list-level functions
(`coordinate`, `basis`, `ste`, `prune`) map the per-layer ones over every quantized leaf.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from hqjax.ops import alq as alq_ops
from hqjax.transforms.alq.schedule import STE
from hqjax.transforms.alq.state import ALQLayer, layer_weights

__all__ = [
    "Candidates",
    "LayerStep",
    "LossModel",
    "alpha_moments",
    "amsgrad",
    "basis",
    "basis_step",
    "candidate_count",
    "coordinate",
    "coordinate_step",
    "layer_step",
    "loss_model",
    "prune",
    "prune_apply",
    "prune_candidates",
    "prune_choose",
    "refit",
    "sketch_layer",
    "ste",
    "ste_step",
]

Moments = tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]


class LossModel(NamedTuple):
    """AMSGrad constants of one step (1.3): learning rate, bias corrections ``1 - b1^t`` and
    ``sqrt(1 - b2^t)``, and ``b1, b2, eps``."""

    lr: jax.Array
    bc1: jax.Array
    bc2: jax.Array
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8


def loss_model(
    t: jax.Array, lr: jax.Array, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> LossModel:
    """The `LossModel` of update number `t` (1-based, float32) at learning rate `lr`."""
    return LossModel(lr, 1.0 - b1**t, jnp.sqrt(1.0 - b2**t), b1, b2, eps)


def amsgrad(model: LossModel, m: jax.Array, v: jax.Array, v_max: jax.Array, g: jax.Array) -> Moments:
    """Moments after gradient `g`, then the pseudo gradient ``p`` (lr-scaled) and pseudo Hessian ``h``
    of the quadratic loss model (1.3): ``(m, v, v_max, p, h)``."""
    b1, b2 = model.b1, model.b2
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    v_max = jnp.maximum(v_max, v)
    return m, v, v_max, model.lr * m / model.bc1, (jnp.sqrt(v_max) + model.eps) / model.bc2


class LayerStep(NamedTuple):
    """One quantized leaf at one step: its layer (weight-domain moments updated), float32 gradient,
    the model's ``p`` and ``h`` (1.3) and its group layout."""

    layer: ALQLayer
    grad: jax.Array
    p: jax.Array
    h: jax.Array
    shape: tuple[int, ...]
    structure: str
    subc: int


def layer_step(
    layer: ALQLayer, grad: jax.Array, shape: tuple[int, ...], structure: str, subc: int, model: LossModel
) -> LayerStep:
    """The weight-domain AMSGrad step every mode starts with (1.3)."""
    g = jnp.asarray(grad, jnp.float32)
    mu, nu, nu_max, p, h = amsgrad(model, layer.mu, layer.nu, layer.nu_max, g)
    return LayerStep(layer._replace(mu=mu, nu=nu, nu_max=nu_max), g, p, h, shape, structure, subc)


def sketch_layer(
    w: jax.Array, shape: tuple[int, ...], structure: str, subc: int, num_bases: int, *,
    rel_tol: float = 1e-6, quirks: bool = False,
) -> ALQLayer:
    """The initial `ALQLayer` of weight `w`: greedy binary bases (1.2), zero moments, and the STE buffer
    at the reconstruction (`quirks`: at `w` itself, as the official code)."""
    w32 = jnp.asarray(w, jnp.float32)
    g = alq_ops.to_groups(w32, structure, subc)
    bases, alpha, mask = alq_ops.sketch(g, num_bases, rel_tol=rel_tol)
    w_hat = alq_ops.from_groups(alq_ops.reconstruct(bases, alpha, mask), shape, structure, subc)
    zw, za = jnp.zeros_like(w32), jnp.zeros_like(alpha)
    w_fp = w32 if quirks else w_hat
    return ALQLayer(bases, alpha, mask, w_fp, zw, zw, zw, za, za, za)


def alpha_moments(x: LayerStep, model: LossModel, weight_decay: float = 0.0) -> Moments:
    """AMSGrad in the coordinate domain: the gradient ``B^T g`` on live slots plus ``wd * alpha`` (1.3)."""
    lay = x.layer
    ga = alq_ops.grad_to_alpha(lay.bases, alq_ops.to_groups(x.grad, x.structure, x.subc), lay.mask)
    ga = ga + weight_decay * lay.alpha * lay.mask
    return amsgrad(model, lay.mu_alpha, lay.nu_alpha, lay.nu_max_alpha, ga)


def coordinate_step(x: LayerStep, model: LossModel, weight_decay: float = 0.0) -> ALQLayer:
    """Coordinate step (1.4 a): ``alpha <- alpha - m * p_alpha / h_alpha``, bases fixed."""
    m_a, v_a, vm_a, p_a, h_a = alpha_moments(x, model, weight_decay)
    lay = x.layer
    alpha = lay.alpha - lay.mask * (p_a / h_a)
    return lay._replace(alpha=alpha, mu_alpha=m_a, nu_alpha=v_a, nu_max_alpha=vm_a)


def refit(
    layer: ALQLayer, target: jax.Array, h: jax.Array, structure: str, subc: int, ridge: float = 1e-6
) -> ALQLayer:
    """Bases: nearest codes of `target` under the old coordinates; coordinates: the `h`-weighted
    least-squares fit on live slots, signs made positive; coordinate moments re-derived (1.3, 1.4 b)."""
    tg = alq_ops.to_groups(target, structure, subc)
    hg = alq_ops.to_groups(h, structure, subc)
    bases = alq_ops.nearest_codes(tg, layer.alpha, layer.mask)
    alpha = alq_ops.wls_refit(bases, tg, hg, layer.mask, ridge=ridge)
    bases, alpha = alq_ops.fix_signs(bases, alpha)
    grouped = lambda x: alq_ops.to_groups(x, structure, subc)  # noqa: E731
    return layer._replace(
        bases=bases,
        alpha=alpha,
        mu_alpha=alq_ops.grad_to_alpha(bases, grouped(layer.mu), layer.mask),
        nu_alpha=alq_ops.diag_to_alpha(grouped(layer.nu), layer.mask),
        nu_max_alpha=alq_ops.diag_to_alpha(grouped(layer.nu_max), layer.mask),
    )


def basis_step(x: LayerStep, first: jax.Array, *, quirks: bool = False, ridge: float = 1e-6) -> ALQLayer:
    """Basis step (1.4 b): `refit` to ``w_hat - p / h`` (`quirks` and `first`: ``w_fp - p / h``, the
    pretrained weights); the STE buffer follows the new reconstruction."""
    lay = x.layer
    w_hat = layer_weights(lay, x.shape, x.structure, x.subc)
    src = jnp.where(first, lay.w_fp, w_hat) if quirks else w_hat
    lay = refit(lay, src - x.p / x.h, x.h, x.structure, x.subc, ridge)
    return lay._replace(w_fp=layer_weights(lay, x.shape, x.structure, x.subc))


def ste_step(x: LayerStep, entering: jax.Array, *, ridge: float = 1e-6) -> ALQLayer:
    """STE step (1.4 c): the full-precision buffer (restarted at the reconstruction when `entering`)
    takes ``-p / h``; the bases and coordinates are its `refit`."""
    lay = x.layer
    w_hat = layer_weights(lay, x.shape, x.structure, x.subc)
    target = jnp.where(entering, w_hat, lay.w_fp) - x.p / x.h
    lay = refit(lay, target, x.h, x.structure, x.subc, ridge)
    return lay._replace(w_fp=target)


class Candidates(NamedTuple):
    """A layer's pruning candidates (1.4 d): the layer with its coordinate moments updated, the
    candidates' ranking scores (inf where invalid), flat slot indices and validity."""

    layer: ALQLayer
    score: jax.Array
    slots: jax.Array
    valid: jax.Array


def candidate_count(live: jax.Array, top_k: float, key: jax.Array | None = None) -> jax.Array:
    """``N_live * top_k`` candidates: ``floor + Bernoulli(frac)`` with `key` (official), else rounded
    half up (1.4 d step 3)."""
    n_live = jnp.sum(live).astype(jnp.float32)
    x = n_live * top_k
    if key is not None:
        extra = jax.random.uniform(key) < (x - jnp.floor(x))
        return jnp.floor(x).astype(jnp.int32) + extra.astype(jnp.int32)
    return jnp.floor(x + 0.5).astype(jnp.int32)


def prune_candidates(
    x: LayerStep, model: LossModel, key: jax.Array | None, *, top_k: float, weight_decay: float = 0.0,
    quirks: bool = False,
) -> Candidates:
    """The live slots of least modelled loss increase ``-p alpha + h alpha^2 / 2`` (1.4 d steps 2-3).
    `quirks`: each candidate's score is read at its index within the live subset (official code)."""
    m_a, v_a, vm_a, p_a, h_a = alpha_moments(x, model, weight_decay)
    lay = x.layer._replace(mu_alpha=m_a, nu_alpha=v_a, nu_max_alpha=vm_a)
    d_all = alq_ops.importance(p_a, h_a, lay.alpha).reshape(-1)
    live = lay.mask.reshape(-1)
    size = live.size
    k = candidate_count(live, top_k, key)
    k_max = min(math.ceil(size * top_k) + 1, size)
    d = jnp.where(live, d_all, jnp.inf)
    neg, idx = jax.lax.top_k(-d, k_max)  # the k_max smallest scores among live slots
    ok = (jnp.arange(k_max) < k) & jnp.isfinite(neg)
    if quirks:
        pos = jnp.cumsum(live.astype(jnp.int32))[idx] - 1
        value = jnp.where(live, d_all, 0.0)[jnp.clip(pos, 0, size - 1)]
    else:
        value = -neg
    return Candidates(lay, jnp.where(ok, value, jnp.inf), idx, ok)


def prune_choose(scores: Sequence[jax.Array], valid: Sequence[jax.Array], q: jax.Array) -> jax.Array:
    """The ``floor(K q)`` valid candidates of smallest score across all layers (1.4 d step 4), as one
    boolean over the concatenated candidates (ties: the earlier layer and slot first)."""
    all_scores = jnp.concatenate(scores)
    all_valid = jnp.concatenate(valid)
    n_prune = jnp.floor(jnp.sum(all_valid).astype(jnp.float32) * q).astype(jnp.int32)
    order = jnp.argsort(all_scores, stable=True)
    rank = jnp.zeros_like(order).at[order].set(jnp.arange(order.size, dtype=order.dtype))
    return all_valid & (rank < n_prune)


def prune_apply(layer: ALQLayer, slots: jax.Array, chosen: jax.Array) -> ALQLayer:
    """Kill the flat `slots` where `chosen`: mask off, coordinate and bases zeroed (1.4 d step 5)."""
    mask = layer.mask.reshape(-1).at[slots].min(~chosen).reshape(layer.mask.shape)
    alpha = jnp.where(mask, layer.alpha, 0.0)
    bases = jnp.where(mask[..., None], layer.bases, 0).astype(layer.bases.dtype)
    return layer._replace(mask=mask, alpha=alpha, bases=bases)


def coordinate(xs: Sequence[LayerStep], model: LossModel, weight_decay: float = 0.0) -> list[ALQLayer]:
    """`coordinate_step` on every leaf (1.4 a)."""
    return [coordinate_step(x, model, weight_decay) for x in xs]


def basis(
    xs: Sequence[LayerStep], basis_steps: jax.Array, *, quirks: bool = False, ridge: float = 1e-6
) -> list[ALQLayer]:
    """`basis_step` on every leaf (1.4 b); the first basis step is the one after `basis_steps` == 0."""
    first = basis_steps == 0
    return [basis_step(x, first, quirks=quirks, ridge=ridge) for x in xs]


def ste(xs: Sequence[LayerStep], prev_mode: jax.Array, *, ridge: float = 1e-6) -> list[ALQLayer]:
    """`ste_step` on every leaf (1.4 c); the phase is entered when the previous step was not STE."""
    entering = prev_mode != STE
    return [ste_step(x, entering, ridge=ridge) for x in xs]


def prune(
    xs: Sequence[LayerStep], model: LossModel, rate: jax.Array, key: jax.Array, *, top_k: float,
    weight_decay: float = 0.0, stochastic_rounding: bool = True, quirks: bool = False,
) -> list[ALQLayer]:
    """Pruning step (1.4 d): candidates per layer, then a fraction ``q = rate / top_k`` of them, ranked
    across all layers, removed."""
    keys = jax.random.split(key, max(len(xs), 1))
    q = jnp.clip(rate / top_k, 0.0, 1.0)
    cands = [
        prune_candidates(x, model, keys[i] if stochastic_rounding else None, top_k=top_k,
                         weight_decay=weight_decay, quirks=quirks)
        for i, x in enumerate(xs)
    ]
    chosen = prune_choose([c.score for c in cands], [c.valid for c in cands], q)
    out, start = [], 0
    for c in cands:
        out.append(prune_apply(c.layer, c.slots, chosen[start : start + c.slots.size]))
        start += c.slots.size
    return out
