"""Bit-level representations of quantized tensors (NumPy only; no jax).

Ternary layers
--------------
A ternary weight tensor is ``W = s_u * t`` per unit ``u`` (spec B2/B3), with codes ``t`` in {-1, 0, +1}
and one float magnitude per unit; TTQ's learned scales give different magnitudes ``W_p`` / ``W_n`` to the
positive and the negative codes of a unit. `ternary_split` recovers the codes and the magnitudes
*from the forward weights themselves* and checks that `ternary_merge` rebuilds every element exactly
(value equality in the weights' dtype; a zero is always rebuilt as ``+0.0``), so an export never relies on
re-deriving a scale with other arithmetic.

Codes are stored as symbols ``0`` (zero), ``1`` (+1), ``2`` (-1), either

* dense: 2 bits per weight, four symbols per byte, the first in the lowest bits (`pack_dense2`), or
* entropy-coded: one ANS stream per layer (`ans_encode`, the ``constriction`` library) under the layer's
  i.i.d. categorical model, whose exact symbol counts travel with the stream. ANS stays within a few
  bytes per layer of the entropy bound ``n H(p)`` (`code_entropy_bits`).

Multi-bit (ALQ) layers
----------------------
ALQ's groups ``w_g = sum_i m_gi alpha_gi b_gi`` (spec 1.1) are stored as in spec 1.6: one bit per weight
per live slot (the bitplanes), the live-slot mask (one bit per slot) and the live alphas in float32
(`pack_multibit` / `unpack_multibit`). `multibit_groups` rebuilds the float32 group vectors with the
summation order defined below.
"""

from __future__ import annotations

import dataclasses
import warnings
import zlib
from typing import Any

import numpy as np

__all__ = [
    "MultiBitLayer",
    "NotTernaryError",
    "TernaryLayer",
    "ans_decode",
    "ans_encode",
    "codes_crc32",
    "code_entropy_bits",
    "entropy_bits",
    "multibit_groups",
    "multibit_groups_jax",
    "pack_dense2",
    "pack_multibit",
    "symbol_counts",
    "ternary_merge",
    "ternary_split",
    "unpack_dense2",
    "unpack_multibit",
]


class NotTernaryError(ValueError):
    """A tensor that should be ternary per unit is not (several magnitudes in a unit, NaN, ...)."""


@dataclasses.dataclass(frozen=True)
class TernaryLayer:
    """A ternary tensor ``W = where(t > 0, pos_u, where(t < 0, -neg_u, 0))``.

    Attributes:
      codes: int8 codes in {-1, 0, +1}, shaped like the weights.
      pos: magnitude of the +1 codes, one per unit (the weights' dtype); 0 for a unit without +1 codes.
      neg: magnitude of the -1 codes per unit, or None when it equals `pos` wherever both occur (every
        method but TTQ).
      axis: the unit axis (non-negative), or None for one unit per tensor.
    """

    codes: np.ndarray
    pos: np.ndarray
    neg: np.ndarray | None
    axis: int | None

    @property
    def units(self) -> int:
        """Number of units (scales)."""
        return int(self.pos.shape[0])

    @property
    def neg_or_pos(self) -> np.ndarray:
        """The magnitudes of the -1 codes (`neg`, or `pos` when they are shared)."""
        return self.pos if self.neg is None else self.neg


def _normalize_axis(axis: int | None, ndim: int) -> int | None:
    if axis is None:
        return None
    if not -ndim <= axis < ndim:
        raise ValueError(f"unit axis {axis} is out of range for a tensor of rank {ndim}.")
    return axis % ndim


def _units_first(x: np.ndarray, axis: int | None) -> np.ndarray:
    """``(units, n)`` view/copy of `x` with the unit axis first (one unit for ``axis=None``)."""
    if axis is None:
        return x.reshape(1, -1)
    return np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)


def _unit_shape(shape: tuple[int, ...], axis: int | None) -> tuple[int, ...]:
    """Shape that broadcasts one value per unit against a tensor of `shape`."""
    if axis is None:
        return (1,) * len(shape)
    return tuple(s if i == axis else 1 for i, s in enumerate(shape))


def ternary_split(w: Any, axis: int | None, name: str = "tensor") -> TernaryLayer:
    """Codes and per-unit magnitudes of a tensor that is ternary per unit.

    Args:
      w: the forward weights (e.g. a leaf of `hqjax.ternary_params`), any float dtype.
      axis: the unit axis (-1 for output channels), or None for one unit per tensor.
      name: what to call the tensor in error messages.

    Returns:
      A `TernaryLayer` that `ternary_merge` turns back into `w` exactly.

    Raises:
      NotTernaryError: non-finite values, or a unit whose positive (or negative) values differ.

    Examples:
      >>> layer = ternary_split(np.array([[0.5, 0.0], [-0.5, 2.0]], np.float32), axis=-1)
      >>> layer.codes.tolist(), layer.pos.tolist(), layer.neg
      ([[1, 0], [-1, 1]], [0.5, 2.0], None)
    """
    w = np.asarray(w)
    if not np.issubdtype(w.dtype, np.floating) and w.dtype.kind != "V":
        raise NotTernaryError(f"{name}: expected floating-point weights, got dtype {w.dtype}.")
    ax = _normalize_axis(axis, w.ndim)
    x = w.astype(np.float64)  # exact for every float dtype up to float64
    if not np.all(np.isfinite(x)):
        raise NotTernaryError(f"{name}: weights contain NaN or infinity; they cannot be exported.")
    u = _units_first(x, ax)
    is_pos, is_neg = u > 0, u < 0
    pos = np.where(is_pos, u, 0.0).max(axis=1)
    neg = np.where(is_neg, -u, 0.0).max(axis=1)
    bad_pos = np.any(is_pos & (u != pos[:, None]), axis=1)
    bad_neg = np.any(is_neg & (-u != neg[:, None]), axis=1)
    bad = np.flatnonzero(bad_pos | bad_neg)
    if bad.size:
        k = int(bad[0])
        vals = np.unique(np.abs(u[k][u[k] != 0]))
        raise NotTernaryError(
            f"{name} is not ternary per unit (axis={axis}): unit {k} has {vals.size} distinct non-zero "
            f"magnitudes (e.g. {vals[:3].tolist()}). Export the weights of the ternary forward pass "
            "(hqjax.ternary_params), with the unit axis of the quantizer that produced them."
        )
    both = is_pos.any(axis=1) & is_neg.any(axis=1)
    shared = bool(np.all(~both | (pos == neg)))
    pos_out = np.where(is_pos.any(axis=1), pos, neg if shared else 0.0)
    codes = np.sign(x).astype(np.int8)
    layer = TernaryLayer(
        codes=codes,
        pos=pos_out.astype(w.dtype),
        neg=None if shared else neg.astype(w.dtype),
        axis=ax,
    )
    back = ternary_merge(layer, w.dtype)
    if not np.array_equal(back.astype(np.float64), x):  # the magnitudes survive the cast back to w.dtype
        raise NotTernaryError(f"{name}: the per-unit magnitudes are not representable in {w.dtype}.")
    return layer


def ternary_merge(layer: TernaryLayer, dtype: Any = None) -> np.ndarray:
    """The weights of a `TernaryLayer`: ``pos_u`` on +1, ``-neg_u`` on -1, ``+0.0`` on 0 (exact)."""
    dtype = layer.pos.dtype if dtype is None else np.dtype(dtype)
    shape = _unit_shape(layer.codes.shape, layer.axis)
    pos = layer.pos.astype(dtype).reshape(shape)
    neg = layer.neg_or_pos.astype(dtype).reshape(shape)
    zero = np.zeros((), dtype)
    return np.where(layer.codes > 0, pos, np.where(layer.codes < 0, -neg, zero)).astype(dtype)


# ---------------------------------------------------------------------------------------------------------
# Ternary symbols: 0 -> 0, +1 -> 1, -1 -> 2.


def _symbols(codes: np.ndarray) -> np.ndarray:
    c = np.asarray(codes).reshape(-1)
    if c.size and (c.min() < -1 or c.max() > 1):
        raise ValueError("ternary codes must be in {-1, 0, +1}.")
    return np.where(c < 0, 2, c).astype(np.uint8)


def _codes(symbols: np.ndarray) -> np.ndarray:
    s = symbols.astype(np.int8)
    return np.where(s == 2, np.int8(-1), s)


def symbol_counts(codes: np.ndarray) -> tuple[int, int, int]:
    """``(zeros, +1 codes, -1 codes)`` of a ternary code array."""
    c = np.asarray(codes)
    pos = int(np.count_nonzero(c > 0))
    neg = int(np.count_nonzero(c < 0))
    return int(c.size) - pos - neg, pos, neg


def code_entropy_bits(counts: Any) -> float:
    """``n H(p)`` in bits: the entropy bound of i.i.d. symbols with the empirical distribution `counts`.

    For symmetric ternary codes with zero fraction ``p0`` this is ``n (h2(p0) + (1 - p0))`` (spec B7).

    Examples:
      >>> round(code_entropy_bits([80, 10, 10]) / 100, 4)
      0.9219
    """
    c = np.asarray(counts, np.float64)
    n = c.sum()
    if n <= 0:
        return 0.0
    p = c[c > 0] / n
    return max(float(-(c[c > 0] * np.log2(p)).sum()), 0.0)


def entropy_bits(counts: Any) -> float:
    """Deprecated name of `code_entropy_bits` (same function); warns."""
    warnings.warn("hqjax.export.pack.entropy_bits is deprecated; use code_entropy_bits (same function).",
                  DeprecationWarning, stacklevel=2)
    return code_entropy_bits(counts)


def codes_crc32(codes: np.ndarray) -> int:
    """CRC-32 of the codes as int8 bytes in C order (stored with a layer, checked after decoding)."""
    return zlib.crc32(np.ascontiguousarray(codes, np.int8).tobytes())


def pack_dense2(codes: np.ndarray) -> bytes:
    """Dense 2-bit packing: four symbols per byte, first symbol in the lowest two bits; C order.

    Examples:
      >>> pack_dense2(np.array([1, 0, -1, 1, -1], np.int8)).hex()
      '6102'
    """
    s = _symbols(codes)
    pad = (-s.size) % 4
    if pad:
        s = np.concatenate([s, np.zeros(pad, np.uint8)])
    q = s.reshape(-1, 4)
    return (q[:, 0] | (q[:, 1] << 2) | (q[:, 2] << 4) | (q[:, 3] << 6)).astype(np.uint8).tobytes()


def unpack_dense2(data: bytes, n: int) -> np.ndarray:
    """Inverse of `pack_dense2`: `n` int8 codes.

    Raises:
      ValueError: wrong length, or a 2-bit field holding the unused value 3.
    """
    b = np.frombuffer(data, np.uint8)
    if b.size != (n + 3) // 4:
        raise ValueError(f"dense 2-bit block of {b.size} bytes does not hold {n} codes.")
    s = np.stack([(b >> k) & 3 for k in (0, 2, 4, 6)], axis=1).reshape(-1)[:n]
    if np.any(s == 3):
        raise ValueError("dense 2-bit block holds the invalid symbol 3.")
    return _codes(s)


def _constriction():
    try:
        import constriction
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ImportError(
            "The entropy-coded format needs the 'constriction' package: pip install constriction "
            "(or export with coder='dense2')."
        ) from e
    return constriction


def _categorical(counts: tuple[int, int, int]):
    c = np.asarray(counts, np.float64)
    return _constriction().stream.model.Categorical(c / c.sum(), perfect=False)


def ans_encode(codes: np.ndarray) -> tuple[bytes, tuple[int, int, int]]:
    """Entropy-code ternary codes with ANS under their empirical i.i.d. categorical model.

    Args:
      codes: ternary codes (any shape; C order).

    Returns:
      ``(data, counts)``: the compressed 32-bit words (little-endian bytes) and the symbol counts
      ``(zeros, +1, -1)`` that define the model (the decoder needs them).

    Examples:
      >>> codes = np.random.default_rng(0).choice([0, 1, -1], size=10000, p=[0.9, 0.05, 0.05])
      >>> data, counts = ans_encode(codes)
      >>> len(data) * 8 / code_entropy_bits(counts) < 1.01
      True
      >>> bool(np.array_equal(ans_decode(data, counts), codes))
      True
    """
    s = _symbols(codes).astype(np.int32)
    counts = symbol_counts(codes)
    if s.size == 0 or max(counts) == s.size:  # nothing to code: the counts say it all
        return b"", counts
    coder = _constriction().stream.stack.AnsCoder()
    coder.encode_reverse(s, _categorical(counts))
    return coder.get_compressed().astype("<u4").tobytes(), counts


def ans_decode(data: bytes, counts: Any) -> np.ndarray:
    """Inverse of `ans_encode`: the flat int8 codes.

    Raises:
      ValueError: a stream that does not decode to exactly ``sum(counts)`` symbols with these counts.
    """
    counts = tuple(int(c) for c in counts)
    n = sum(counts)
    if n == 0:
        return np.zeros(0, np.int8)
    if max(counts) == n:
        if data:
            raise ValueError("entropy-coded block should be empty for a constant layer.")
        return np.full(n, (0, 1, -1)[counts.index(n)], np.int8)
    if len(data) % 4 or not data:
        raise ValueError(f"entropy-coded block of {len(data)} bytes is not a sequence of 32-bit words.")
    words = np.frombuffer(data, "<u4").astype(np.uint32)
    coder = _constriction().stream.stack.AnsCoder(words)
    try:
        s = coder.decode(_categorical(counts), n)
    except Exception as e:  # noqa: BLE001 - the library raises its own error types
        raise ValueError(f"entropy-coded block does not decode ({type(e).__name__}: {e}).") from e
    codes = _codes(np.asarray(s))
    if symbol_counts(codes) != counts or not coder.is_empty():
        raise ValueError("entropy-coded block does not decode to the recorded symbol counts.")
    return codes


# ---------------------------------------------------------------------------------------------------------
# Multi-bit (ALQ) layers.


@dataclasses.dataclass(frozen=True)
class MultiBitLayer:
    """One ALQ layer in group form (spec 1.1) plus how its groups map back to the weight tensor.

    Attributes:
      bases: int8 ``(G, I, n)``, entries in {-1, +1} on live slots (anything, conventionally 0, on dead ones).
      alpha: float32 ``(G, I)`` coordinates (only live ones are stored).
      mask: bool ``(G, I)``, True for live slots.
      shape: the weight tensor's shape.
      structure: the group structure (``'channelwise'``, ``'kernelwise'``, ``'pixelwise'``,
        ``'subchannelwise'``), passed to ``from_groups`` at load time.
      subc: number of sub-channels for ``'subchannelwise'``.
    """

    bases: np.ndarray
    alpha: np.ndarray
    mask: np.ndarray
    shape: tuple[int, ...]
    structure: str
    subc: int = 1

    @property
    def live(self) -> int:
        """Number of live slots (= stored alphas)."""
        return int(np.count_nonzero(self.mask))


def _check_multibit(bases: np.ndarray, alpha: np.ndarray, mask: np.ndarray) -> None:
    if bases.ndim != 3 or alpha.shape != bases.shape[:2] or mask.shape != bases.shape[:2]:
        raise ValueError(
            "multi-bit layer needs bases (G, I, n), alpha (G, I) and mask (G, I); got shapes "
            f"{bases.shape}, {alpha.shape}, {mask.shape}."
        )
    live = bases[mask]
    if live.size and not np.all(np.abs(live) == 1):
        raise ValueError("multi-bit bases must be -1 or +1 on every live slot.")
    if not np.all(np.isfinite(alpha[mask])):
        raise ValueError("multi-bit alphas must be finite on live slots.")


def pack_multibit(bases: Any, alpha: Any, mask: Any) -> tuple[bytes, bytes, bytes]:
    """Bitplanes, live-slot mask and live alphas of an ALQ layer (spec 1.6 storage).

    Args:
      bases: ``(G, I, n)`` in {-1, +1} on live slots.
      alpha: ``(G, I)`` float32.
      mask: ``(G, I)`` bool.

    Returns:
      ``(mask_bits, alphas, planes)``: the mask as ``ceil(G I / 8)`` bytes (C order, least significant
      bit first); the live alphas as little-endian float32 in C order of ``(g, i)``; the bitplanes, one
      bit per weight of each live slot (1 for +1) in the same slot order, ``ceil(live n / 8)`` bytes.
    """
    bases, alpha, mask = np.asarray(bases), np.asarray(alpha, np.float32), np.asarray(mask, bool)
    _check_multibit(bases, alpha, mask)
    mask_bits = np.packbits(mask.reshape(-1), bitorder="little").tobytes()
    alphas = alpha[mask].astype("<f4").tobytes()
    planes = np.packbits((bases[mask] > 0).reshape(-1), bitorder="little").tobytes()
    return mask_bits, alphas, planes


def unpack_multibit(
    mask_bits: bytes, alphas: bytes, planes: bytes, groups: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of `pack_multibit`: ``(bases int8, alpha float32, mask bool)``; dead slots are 0.

    Raises:
      ValueError: block sizes that do not fit ``groups = (G, I, n)``.
    """
    g, i, n = (int(x) for x in groups)
    mb = np.frombuffer(mask_bits, np.uint8)
    if mb.size != (g * i + 7) // 8:
        raise ValueError(f"multi-bit mask block of {mb.size} bytes does not fit {g}x{i} slots.")
    mask = np.unpackbits(mb, count=g * i, bitorder="little").astype(bool).reshape(g, i)
    live = int(mask.sum())
    if len(alphas) != 4 * live:
        raise ValueError(f"multi-bit alpha block of {len(alphas)} bytes does not hold {live} float32.")
    pb = np.frombuffer(planes, np.uint8)
    if pb.size != (live * n + 7) // 8:
        raise ValueError(f"multi-bit bitplane block of {pb.size} bytes does not hold {live}x{n} bits.")
    alpha = np.zeros((g, i), np.float32)
    alpha[mask] = np.frombuffer(alphas, "<f4")
    bases = np.zeros((g, i, n), np.int8)
    bits = np.unpackbits(pb, count=live * n, bitorder="little").reshape(live, n)
    bases[mask] = np.where(bits > 0, 1, -1).astype(np.int8)
    return bases, alpha, mask


def multibit_groups(bases: Any, alpha: Any, mask: Any) -> np.ndarray:
    """The float32 group vectors ``w_g = sum_i m_gi alpha_gi b_gi`` with a defined summation order.

    Each term is ``(m_gi * alpha_gi) * b_gi`` in float32 (exact: the factors are 0/1 and +-1); the terms
    are added one slot at a time, ``((0 + t_0) + t_1) + ... + t_{I-1}``, starting from ``+0.0``. This is
    the order of `hqjax.ops.alq.reconstruct`, the reconstruction ALQ trains and evaluates with (eagerly
    and under ``jax.jit``, on every backend), and of `multibit_groups_jax`, so an exported ALQ layer
    rebuilds its forward weights bit for bit. (On XLA:CPU it is also what a jitted ``jnp.sum`` over the
    slot axis computes for ``I <= 16``; an eager ``jnp.sum`` may add in another order.)

    Returns:
      float32 ``(G, n)``.
    """
    bases, alpha, mask = np.asarray(bases), np.asarray(alpha, np.float32), np.asarray(mask, bool)
    if bases.ndim != 3:
        raise ValueError(f"bases must be (G, I, n), got shape {bases.shape}.")
    acc = np.zeros((bases.shape[0], bases.shape[2]), np.float32)
    for i in range(bases.shape[1]):
        coef = mask[:, i, None].astype(np.float32) * alpha[:, i, None]
        acc = acc + coef * bases[:, i, :].astype(np.float32)
    return acc


def multibit_groups_jax(bases: Any, alpha: Any, mask: Any) -> Any:
    """`multibit_groups` in jax (jit-able, differentiable in `alpha`), same order on every backend.

    The slots are added by an unrolled Python loop; XLA does not re-associate floating-point additions,
    so the order ``((0 + t_0) + t_1) + ...`` is kept under ``jax.jit`` on CPU, GPU and TPU.
    """
    import jax.numpy as jnp

    bases, alpha, mask = jnp.asarray(bases), jnp.asarray(alpha, jnp.float32), jnp.asarray(mask)
    acc = jnp.zeros((bases.shape[0], bases.shape[2]), jnp.float32)
    for i in range(bases.shape[1]):
        coef = mask[:, i, None].astype(jnp.float32) * alpha[:, i, None]
        acc = acc + coef * bases[:, i, :].astype(jnp.float32)
    return acc
