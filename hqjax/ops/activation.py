"""Optional k-bit activation quantization (ALGORITHMS.md section 1.7).

Not part of the official ALQ code (its activations are full precision); offered as a separate module,
off by default: uniform k-bit quantization of a clipped ReLU with a clipped straight-through gradient.
Enable it on a model with ``hqjax.models.get(name, act_bits=k)``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from hqjax._checks import check_int, check_positive

__all__ = ["k_bit_relu", "quantize_activation"]


def _check(bits: int, clip: float) -> int:
    """`bits` as an int in [1, 16]; `clip` must be finite and > 0."""
    bits = check_int(bits, "bits", minimum=1, maximum=16, hint=None)
    check_positive(clip, "clip")
    return bits


@jax.custom_vjp
def _quantize(x: jax.Array, clip: jax.Array, levels: jax.Array) -> jax.Array:
    xc = jnp.clip(x, 0.0, clip)
    return (jnp.round(xc * (levels / clip)) * (clip / levels)).astype(x.dtype)


def _quantize_fwd(x, clip, levels):
    return _quantize(x, clip, levels), (x, clip, levels)


def _quantize_bwd(res, g):
    x, clip, levels = res
    inside = (x >= 0) & (x <= clip)
    return jnp.where(inside, g, jnp.zeros_like(g)), jnp.zeros_like(clip), jnp.zeros_like(levels)


_quantize.defvjp(_quantize_fwd, _quantize_bwd)


def quantize_activation(x: jax.Array, bits: int, clip: float = 1.0) -> jax.Array:
    """Uniform k-bit quantization of ``clip(x, 0, clip)`` with a clipped straight-through gradient
    (section 1.7; an option, not in the official ALQ code).

    Forward: ``round(clip(x, 0, c) (2^k - 1) / c) c / (2^k - 1)``, exactly one of ``2^k`` levels in
    ``[0, c]``. Backward: the upstream gradient where ``0 <= x <= c``, zero elsewhere.

    Examples:
      >>> quantize_activation(jnp.array([-1.0, 0.2, 0.5, 2.0]), bits=2).tolist()
      [0.0, 0.3333333432674408, 0.6666666865348816, 1.0]
    """
    bits = _check(bits, clip)
    dt = jnp.promote_types(jnp.asarray(x).dtype, jnp.float32)
    return _quantize(jnp.asarray(x), jnp.asarray(clip, dt), jnp.asarray(2**bits - 1, dt))


def k_bit_relu(bits: int, clip: float = 1.0) -> Callable[[jax.Array], jax.Array]:
    """A ReLU whose output is quantized to `bits` bits on ``[0, clip]`` (section 1.7), for a model's
    ``act`` attribute.

    Examples:
      >>> k_bit_relu(1)(jnp.array([-0.3, 0.4, 0.7])).tolist()
      [0.0, 0.0, 1.0]
    """
    bits = _check(bits, clip)
    return lambda x: quantize_activation(x, bits, clip)
