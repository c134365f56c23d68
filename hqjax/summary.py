"""Per-layer quantization statistics as a flat dict, ready for logging.

`summarize(params, opt_state)` returns, for every quantized leaf ``path`` (e.g. ``'Conv_0/kernel'``):

================================  ===========================================================
key                               value
================================  ===========================================================
``path/sparsity``                 fraction of zeros of the ternary weights
``path/scale``                    mean over units of the ternary magnitude (one per unit)
``path/cosine``                   mean over units of cos(latent, ternary) (spec B4; what HQ
                                  and HLA-TQ push towards 1)
``path/flip_ratio``               fraction of latent weights whose sign changed in the last step
``path/bits_dense``               2 (dense 2-bit ternary code, spec B7)
``path/bits_entropy``             ``H(p0) = h2(p0) + (1 - p0)`` bits per weight (spec B7)
================================  ===========================================================

plus ``quantizer/step``, ``quantizer/phase`` (0 first phase, 1 ternary phase), ``quantizer/temperature``,
and the weight-count-weighted totals ``quantizer/sparsity``, ``quantizer/cosine`` (unweighted mean over
layers), ``quantizer/flip_ratio`` and ``quantizer/bits_entropy``. "Latent" and "ternary" are
`hqjax.latent_params` and `hqjax.ternary_params` (in the first phase the ternary weights are those the
method would switch to). Values are jax float32 scalars; the function is pure and jit-able.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp

from hqjax._checks import reduce_axes
from hqjax.forward import MultiBitFamily, TernaryFamily, find_family
from hqjax.ops.sphere import cosine_similarity
from hqjax.selection import leaf_paths, unbox

__all__ = ["entropy_bits", "summarize", "ternary_entropy_bits"]


def ternary_entropy_bits(p0: Any) -> jax.Array:
    """Entropy bound of a symmetric ternary code with zero fraction `p0` (spec B7), bits per weight.

    (`hqjax.export.pack.code_entropy_bits` is the other entropy: the total bits of given symbol counts.)

    ``H(p0) = h2(p0) + (1 - p0)``: the binary entropy of zero / non-zero plus one sign bit per non-zero.

    Examples:
      >>> [round(float(ternary_entropy_bits(p)), 2) for p in (0.8, 0.85, 0.9)]
      [0.92, 0.76, 0.57]
    """
    p = jnp.clip(jnp.asarray(p0, jnp.float32), 0.0, 1.0)
    xlogx = lambda x: jnp.where(x > 0, x * jnp.log2(jnp.where(x > 0, x, 1.0)), 0.0)
    return -(xlogx(p) + xlogx(1.0 - p)) + (1.0 - p)



def entropy_bits(p0: Any) -> jax.Array:
    """Deprecated name of `ternary_entropy_bits` (same function); warns."""
    warnings.warn("hqjax.entropy_bits is deprecated; use hqjax.ternary_entropy_bits (same function).",
                  DeprecationWarning, stacklevel=2)
    return ternary_entropy_bits(p0)

def summarize(params: Any, opt_state: Any) -> dict[str, jax.Array]:
    """Flat per-layer statistics of the quantized leaves (see the module docstring for the keys).

    Args:
      params: latent parameters (after the last ``optax.apply_updates``).
      opt_state: the optimizer state returned with them.

    Returns:
      ``{key: float32 scalar}``; e.g. log ``{k: float(v) for k, v in summarize(p, s).items()}``.

    Examples:
      >>> import optax, hqjax
      >>> params = {'Dense_0': {'kernel': jnp.array([[0.9, -0.2], [-1.1, 0.05]]), 'bias': jnp.zeros(2)}}
      >>> stats = summarize(params, hqjax.twn(optax.sgd(0.1)).init(params))
      >>> float(stats['Dense_0/kernel/sparsity']), float(stats['quantizer/phase'])
      (0.25, 1.0)
    """
    family = find_family(opt_state)
    if isinstance(family, MultiBitFamily):
        return _summarize_multibit(params, family)
    return _summarize_ternary(params, family)


def _summarize_ternary(params: Any, family: TernaryFamily) -> dict[str, jax.Array]:
    """Statistics of the ternary family (the module docstring lists them)."""
    cfg, qs = family.states.config, family.states.quantizer
    params = unbox(params)
    latent = dict(leaf_paths(family.weights(params, "latent")))
    tern = dict(leaf_paths(family.weights(params, "ternary")))
    raw = dict(leaf_paths(params))
    signs = dict(leaf_paths(qs.signs))
    out: dict[str, jax.Array] = {}
    tot_n, tot_zero, tot_flip, tot_bits, cosines = 0, 0.0, 0.0, 0.0, []
    for path in cfg.selected:
        q = tern[path].astype(jnp.float32)
        lat = latent[path].astype(jnp.float32)
        n = q.size
        nz = q != 0
        p0 = 1.0 - jnp.mean(nz.astype(jnp.float32))
        red = reduce_axes(q.ndim, cfg.axis)
        nnz_u = jnp.sum(nz, axis=red)
        scale_u = jnp.sum(jnp.abs(q), axis=red) / jnp.maximum(nnz_u, 1)
        cos = jnp.mean(cosine_similarity(lat, q, cfg.axis))
        prev = signs.get(path)
        cur = jnp.sign(raw[path]).astype(jnp.int8)
        flip = jnp.mean((cur != prev).astype(jnp.float32)) if prev is not None else jnp.float32(0.0)
        bits = ternary_entropy_bits(p0)
        out[f"{path}/sparsity"] = p0
        out[f"{path}/scale"] = jnp.mean(scale_u)
        out[f"{path}/cosine"] = cos
        out[f"{path}/flip_ratio"] = flip
        out[f"{path}/bits_dense"] = jnp.float32(2.0)
        out[f"{path}/bits_entropy"] = bits
        tot_n += n
        tot_zero = tot_zero + p0 * n
        tot_flip = tot_flip + flip * n
        tot_bits = tot_bits + bits * n
        cosines.append(cos)
    phase = jnp.float32(1.0)
    if cfg.two_phase:
        phase = (qs.count >= cfg.quantize_step).astype(jnp.float32)
    out["quantizer/step"] = qs.count.astype(jnp.float32)
    out["quantizer/phase"] = phase
    out["quantizer/temperature"] = jnp.asarray(qs.temperature, jnp.float32)
    out["quantizer/sparsity"] = tot_zero / tot_n
    out["quantizer/cosine"] = jnp.mean(jnp.stack(cosines))
    out["quantizer/flip_ratio"] = tot_flip / tot_n
    out["quantizer/bits_entropy"] = tot_bits / tot_n
    return out


def _summarize_multibit(params: Any, family: MultiBitFamily) -> dict[str, jax.Array]:
    """ALQ statistics (ALGORITHMS.md 1.6): per layer ``bits`` (live coordinates / groups),
    ``zero_groups`` (groups with no live basis), ``sparsity`` (zero weights of the reconstruction);
    totals ``quantizer/average_bits`` (weighted by weight count), ``quantizer/storage_bytes`` (binary
    codes + 32-bit coordinates + 32-bit full-precision parameters), ``quantizer/mode`` (of the next
    step, index into `hqjax.transforms.ALQ_MODES`)."""
    state = family.state
    params = unbox(params)
    weights = family.reconstruction()
    layers = family.layers()
    out: dict[str, jax.Array] = {}
    tot_n, tot_bits, tot_zero, code_bits, alpha_bits = 0, 0.0, 0.0, 0.0, 0.0
    for path, _shape, _structure, _subc, _nb in state.config.layouts:
        mask = layers[path].mask
        live = jnp.sum(mask, axis=-1)
        bits = jnp.mean(live.astype(jnp.float32))
        n = weights[path].size
        zero = jnp.mean((weights[path] == 0).astype(jnp.float32))
        out[f"{path}/bits"] = bits
        out[f"{path}/zero_groups"] = jnp.mean((live == 0).astype(jnp.float32))
        out[f"{path}/sparsity"] = zero
        tot_n += n
        tot_bits = tot_bits + bits * n
        tot_zero = tot_zero + zero * n
        code_bits = code_bits + bits * n
        alpha_bits = alpha_bits + 32.0 * jnp.sum(mask).astype(jnp.float32)
    selected = set(state.config.selected)
    fp_count = sum(int(x.size) for p, x in leaf_paths(params) if p not in selected)
    out["quantizer/step"] = state.count.astype(jnp.float32)
    out["quantizer/mode"] = state.mode.astype(jnp.float32)
    out["quantizer/learning_rate"] = state.learning_rate
    out["quantizer/sparsity"] = tot_zero / max(tot_n, 1)
    out["quantizer/average_bits"] = tot_bits / max(tot_n, 1)
    out["quantizer/storage_bytes"] = (code_bits + alpha_bits + 32.0 * fp_count) / 8.0
    return out
