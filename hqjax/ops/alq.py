"""ALQ multi-bit math: weight groups, structured sketching, nearest codes, coordinate refits.

ALQ (adaptive loss-aware quantization, Qu et al. 2020), ALGORITHMS.md section 1 (1.1-1.6), the
pseudo-algorithm of section 6 and the function list of section 7.1; defaults 18-19 of section 8.

A quantized kernel is split into ``G`` groups of ``n`` weights (`to_groups`). Group ``g`` is stored as
``I`` binary bases ``b_{g,i}`` in {-1, +1}^n (int8, 0 on dead slots), coordinates ``alpha_{g,i} >= 0``
and a boolean alive mask; its weights are ``w_hat_g = sum_i mask_{g,i} alpha_{g,i} b_{g,i}``
(`reconstruct`). Array conventions: groups ``(G, n)``, bases ``(G, I, n)``, alpha and mask ``(G, I)``.

Kernels use Flax layouts: conv ``(*spatial, c_in, c_out)`` (2-D conv ``(kh, kw, c_in, c_out)``),
dense ``(c_in, c_out)``. Groups are ordered output channel first.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from hqjax._checks import check_choice, check_int, check_positive
from hqjax.ops._dtypes import compute_dtype

ALQ_STRUCTURES = ("channelwise", "kernelwise", "pixelwise", "subchannelwise")

_HIGHEST = jax.lax.Precision.HIGHEST
_STATIC = "It is static under jax.jit (it fixes array shapes): pass a Python int."


# ----------------------------------------------------------------------------------------------------
# Groups (section 1.1)


def _check_shape(shape: Any) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in shape)
    except TypeError:
        raise ValueError(f"`shape` must be a sequence of ints, got {shape!r}.") from None
    if len(dims) < 2:
        raise ValueError(
            f"`shape` must have at least 2 dims (dense (c_in, c_out) or conv (*spatial, c_in, c_out)), "
            f"got {dims}; ALQ quantizes kernels only, 1-D parameters stay full precision."
        )
    if min(dims) < 1:
        raise ValueError(f"`shape` must have positive dims, got {dims}.")
    return dims


def group_shape(shape: Sequence[int], structure: str, subc: int = 1) -> tuple[int, int]:
    """Number of groups ``G`` and group size ``n`` of a kernel (ALGORITHMS.md section 1.1).

    For a conv kernel ``(*spatial, c_in, c_out)`` with ``S = prod(spatial)`` (``S = 1`` for dense):

    * ``'channelwise'``: one group per output channel, ``n = S * c_in``.
    * ``'kernelwise'``: one group per (input, output) channel pair, ``n = S`` (conv only).
    * ``'pixelwise'``: one group per (output channel, spatial position), ``n = c_in``.
    * ``'subchannelwise'``: each output channel's channelwise vector split into `subc` contiguous
      chunks, ``n = S * c_in / subc``. ``subc=1`` is ``'channelwise'``.

    Args:
      shape: kernel shape (at least 2 dims).
      structure: one of `ALQ_STRUCTURES`.
      subc: chunks per output channel (``'subchannelwise'`` only; must divide ``S * c_in``).

    Returns:
      ``(G, n)`` as Python ints.

    Examples:
      >>> group_shape((3, 3, 64, 128), "pixelwise"), group_shape((512, 1000), "subchannelwise", 2)
      ((1152, 64), (2000, 256))
    """
    dims = _check_shape(shape)
    check_choice(structure, ALQ_STRUCTURES, "structure")
    subc = check_int(subc, "subc", minimum=1, hint=_STATIC)
    if subc != 1 and structure != "subchannelwise":
        raise ValueError(f"`subc`={subc} only applies to structure='subchannelwise', got {structure!r}.")
    spatial = math.prod(dims[:-2])
    c_in, c_out = dims[-2], dims[-1]
    if structure == "channelwise":
        return c_out, spatial * c_in
    if structure == "kernelwise":
        if len(dims) < 3:
            raise ValueError(
                f"`structure`='kernelwise' needs a conv kernel (*spatial, c_in, c_out), got shape {dims}; "
                "use 'channelwise' or 'subchannelwise' for dense kernels."
            )
        return c_out * c_in, spatial
    if structure == "pixelwise":
        return c_out * spatial, c_in
    total = spatial * c_in
    if total % subc:
        raise ValueError(f"`subc`={subc} must divide the per-output-channel size {total} of shape {dims}.")
    return c_out * subc, total // subc


def to_groups(w: jax.Array, structure: str, subc: int = 1) -> jax.Array:
    """Reshape a kernel into its ALQ groups ``(G, n)`` (ALGORITHMS.md section 1.1; inverse `from_groups`).

    Pure reshape/transpose, dtype kept. Groups are ordered output channel first; within a group:
    channelwise/subchannelwise in the kernel's ``(*spatial, c_in)`` order, kernelwise over the spatial
    positions, pixelwise over the input channels. See `group_shape` for the structures.

    Examples:
      >>> w = jnp.arange(6.0).reshape(3, 2)  # dense (c_in=3, c_out=2)
      >>> to_groups(w, "channelwise").tolist()
      [[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]]
    """
    w = jnp.asarray(w)
    big_g, n = group_shape(w.shape, structure, subc)
    c_in, c_out = w.shape[-2], w.shape[-1]
    spatial = math.prod(w.shape[:-2])
    if structure in ("channelwise", "subchannelwise"):
        return w.reshape(spatial * c_in, c_out).T.reshape(big_g, n)
    x = w.reshape(spatial, c_in, c_out)
    if structure == "pixelwise":
        return jnp.transpose(x, (2, 0, 1)).reshape(big_g, n)
    return jnp.transpose(x, (2, 1, 0)).reshape(big_g, n)  # kernelwise


def from_groups(groups: jax.Array, shape: Sequence[int], structure: str, subc: int = 1) -> jax.Array:
    """Inverse of `to_groups`: the kernel of shape `shape` from its groups ``(G, n)`` (section 1.1).

    Examples:
      >>> w = jnp.arange(24.0).reshape(2, 2, 3, 2)
      >>> bool(jnp.array_equal(from_groups(to_groups(w, "kernelwise"), w.shape, "kernelwise"), w))
      True
    """
    groups = jnp.asarray(groups)
    dims = _check_shape(shape)
    big_g, n = group_shape(dims, structure, subc)
    if groups.shape != (big_g, n):
        raise ValueError(
            f"`groups` must have shape {(big_g, n)} for a kernel of shape {dims} with "
            f"structure={structure!r}, subc={subc}; got {groups.shape}."
        )
    c_in, c_out = dims[-2], dims[-1]
    spatial = math.prod(dims[:-2])
    if structure in ("channelwise", "subchannelwise"):
        return groups.reshape(c_out, spatial * c_in).T.reshape(dims)
    if structure == "pixelwise":
        x = jnp.transpose(groups.reshape(c_out, spatial, c_in), (1, 2, 0))
    else:  # kernelwise
        x = jnp.transpose(groups.reshape(c_out, c_in, spatial), (2, 1, 0))
    return x.reshape(dims)


# ----------------------------------------------------------------------------------------------------
# Argument checks for the (G, I, n) / (G, I) / (G, n) arrays


def _check_ndim(x: jax.Array, ndim: int, name: str, layout: str) -> None:
    if x.ndim != ndim:
        raise ValueError(f"`{name}` must be {ndim}-D {layout}, got shape {x.shape}.")


def _check_bases(bases: Any) -> jax.Array:
    bases = jnp.asarray(bases)
    _check_ndim(bases, 3, "bases", "(G, I, n)")
    return bases


def _check_slots(x: Any, bases: jax.Array, name: str) -> jax.Array:
    x = jnp.asarray(x)
    if x.shape != bases.shape[:2]:
        raise ValueError(
            f"`{name}` must have shape (G, I) = {bases.shape[:2]} to match `bases`, got {x.shape}."
        )
    return x


def _check_elems(x: Any, bases: jax.Array, name: str) -> jax.Array:
    x = jnp.asarray(x)
    want = (bases.shape[0], bases.shape[2])
    if x.shape != want:
        raise ValueError(f"`{name}` must have shape (G, n) = {want} to match `bases`, got {x.shape}.")
    return x


def _float(x: jax.Array) -> jax.Array:
    return x.astype(compute_dtype(x))


# ----------------------------------------------------------------------------------------------------
# Representation (section 1.1) and chain rule to the coordinates (section 1.3)


def reconstruct(bases: jax.Array, alpha: jax.Array, mask: jax.Array) -> jax.Array:
    """Group weights ``w_hat = sum_i mask_i alpha_i b_i`` ``(G, n)`` (ALGORITHMS.md section 1.1).

    Computed in the dtype ``D`` of `alpha` with a fixed order of operations, so that the result can be
    reproduced bit for bit from exported codes (`hqjax.export.pack.multibit_groups` adds in the same
    order): each term is ``t_i = (mask_i.astype(D) * alpha_i) * bases_i.astype(D)``, exact since the
    factors are 0/1 and -1/0/+1, and the terms are added one slot at a time from ``+0.0``,
    ``((0 + t_0) + t_1) + ... + t_{I-1}`` (an unrolled sum over the slot axis, not a reduction whose
    order the compiler chooses). XLA does not re-associate floating-point additions, and contracting a
    product and an addition into an FMA cannot change the result since every product is exact, so the
    result is the same eagerly and under `jax.jit`, on every backend (up to the sign of an exact zero).

    Args:
      bases: ``(G, I, n)`` codes in {-1, +1} (any value on dead slots; masked out).
      alpha: ``(G, I)`` float coordinates.
      mask: ``(G, I)`` alive mask (bool or 0/1).

    Examples:
      >>> b = jnp.array([[[1, -1, 1], [1, 1, -1]]], jnp.int8)
      >>> reconstruct(b, jnp.array([[0.5, 2.0]]), jnp.array([[True, True]])).tolist()
      [[2.5, 1.5, -1.5]]
    """
    bases = _check_bases(bases)
    alpha = _check_slots(alpha, bases, "alpha")
    mask = _check_slots(mask, bases, "mask")
    if not jnp.issubdtype(alpha.dtype, jnp.floating):
        raise ValueError(f"`alpha` must be a float array, got dtype {alpha.dtype}.")
    dtype = alpha.dtype
    acc = jnp.zeros((bases.shape[0], bases.shape[2]), dtype)
    for i in range(bases.shape[1]):  # unrolled: I is small and static; fixes the summation order
        coef = mask[:, i].astype(dtype) * alpha[:, i]
        acc = acc + coef[:, None] * bases[:, i, :].astype(dtype)
    return acc


def grad_to_alpha(bases: jax.Array, g_groups: jax.Array, mask: jax.Array) -> jax.Array:
    """Coordinate gradient ``mask_i * <b_i, g>`` ``(G, I)`` from the grouped weight gradient (section 1.3).

    The gradient of ``L(reconstruct(bases, alpha, mask))`` with respect to ``alpha`` when `g_groups`
    is ``dL/dw_hat`` in group layout; also maps first moments to the alpha domain (``B m_w``).

    Examples:
      >>> b = jnp.array([[[1, -1, 1], [1, 1, -1]]], jnp.int8)
      >>> grad_to_alpha(b, jnp.array([[1.0, 2.0, 3.0]]), jnp.array([[True, False]])).tolist()
      [[2.0, 0.0]]
    """
    bases = _check_bases(bases)
    g = _float(_check_elems(g_groups, bases, "g_groups"))
    mask = _check_slots(mask, bases, "mask")
    dots = jnp.einsum("gin,gn->gi", bases.astype(g.dtype), g, precision=_HIGHEST)
    return jnp.where(mask, dots, 0.0).astype(g.dtype)


def diag_to_alpha(v_groups: jax.Array, mask: jax.Array) -> jax.Array:
    """Second moments in the alpha domain, ``sum_j b_ij^2 v_j`` = group sums on live slots (section 1.3).

    Since ``b^2 = 1`` this is the sum of ``v`` over the group, broadcast to every live slot; 0 on dead
    slots. Used to re-derive ``v_alpha`` and ``vmax_alpha`` after a basis change.

    Args:
      v_groups: ``(G, n)`` per-weight second moments in group layout.
      mask: ``(G, I)`` alive mask.

    Examples:
      >>> diag_to_alpha(jnp.array([[1.0, 2.0, 3.0]]), jnp.array([[True, False]])).tolist()
      [[6.0, 0.0]]
    """
    v = jnp.asarray(v_groups)
    mask = jnp.asarray(mask)
    _check_ndim(v, 2, "v_groups", "(G, n)")
    _check_ndim(mask, 2, "mask", "(G, I)")
    if mask.shape[0] != v.shape[0]:
        raise ValueError(f"`mask` must have {v.shape[0]} groups like `v_groups`, got shape {mask.shape}.")
    v = _float(v)
    return jnp.where(mask, jnp.sum(v, axis=1, keepdims=True), 0.0).astype(v.dtype)


def fix_signs(bases: jax.Array, alpha: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Make coordinates non-negative: ``alpha_i < 0`` -> ``-alpha_i`` and ``b_i -> -b_i`` (section 1.4(b)).

    The reconstruction is unchanged. Returns ``(bases, alpha)`` in their input dtypes.

    Examples:
      >>> b, a = fix_signs(jnp.array([[[1, -1], [1, 1]]], jnp.int8), jnp.array([[-0.5, 2.0]]))
      >>> b.tolist(), a.tolist()
      ([[[-1, 1], [1, 1]]], [[0.5, 2.0]])
    """
    bases = _check_bases(bases)
    alpha = _check_slots(alpha, bases, "alpha")
    neg = alpha < 0
    return jnp.where(neg[..., None], -bases, bases), jnp.where(neg, -alpha, alpha)


# ----------------------------------------------------------------------------------------------------
# Initialization: structured sketching (section 1.2)


def sketch(
    groups: jax.Array, num_bases: int, rel_tol: float = 1e-6, *, ridge: float = 1e-6
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Structured sketching: greedy residual binarization with least-squares refit (section 1.2).

    Per group ``w``, for ``i = 1 .. min(num_bases, n)``: stop once ``||r||^2 / ||w||^2 < rel_tol``;
    otherwise append ``b_i = sign(r)`` (``sign(0) = +1``), refit all coordinates so far by least
    squares and update the residual ``r = w - B alpha``. Then negative coordinates are flipped
    (`fix_signs`), bases with ``alpha = 0`` dropped, and the live bases sorted by ``alpha`` ascending in
    slots ``0 .. I_g - 1``; dead slots follow (mask False, basis row 0, alpha 0). An all-zero group has
    no live slot.

    The refit solves ``(B^T B / n + diag(d)) alpha = B^T w / n`` with ``d = ridge`` on active slots and
    1 on unused ones (an unrolled Cholesky solve), so a singular ``B^T B`` (a repeated basis) gives finite
    values
    (section 8 item 18); the relative ridge biases ``alpha`` by about ``ridge`` relative. Vectorised
    over groups, a fixed-length loop over the slots: jit-able with `num_bases` static.

    Args:
      groups: ``(G, n)`` float weights (see `to_groups`).
      num_bases: ``I``, the number of slots (``I_max``; Python int >= 1).
      rel_tol: stopping tolerance on the relative squared residual (>= 0).
      ridge: relative ridge of the refit (> 0).

    Returns:
      ``(bases, alpha, mask)``: int8 ``(G, I, n)`` in {-1, +1} on live slots and 0 on dead slots,
      ``(G, I)`` coordinates (> 0 live, 0 dead; float32, or float64 for float64 input) and a bool
      ``(G, I)`` mask.

    Examples:
      >>> b, a, m = sketch(jnp.array([[1.0, -2.0, 3.0, -4.0]]), 2)
      >>> b.tolist(), [round(x, 4) for x in a[0].tolist()], m.tolist()
      ([[[-1, 1, 1, -1], [1, -1, 1, -1]]], [1.0, 2.5], [[True, True]])
      >>> [round(x, 4) for x in reconstruct(b, a, m)[0].tolist()]
      [1.5, -1.5, 3.5, -3.5]
    """
    num_bases = check_int(num_bases, "num_bases", minimum=1, hint=_STATIC)
    check_positive(rel_tol, "rel_tol", allow_zero=True)
    check_positive(ridge, "ridge")
    w = jnp.asarray(groups)
    _check_ndim(w, 2, "groups", "(G, n)")
    if not jnp.issubdtype(w.dtype, jnp.floating):
        raise ValueError(f"`groups` must be a float array, got dtype {w.dtype}.")
    return _sketch(_float(w), num_bases, rel_tol, ridge)


def _spd_solve(a: jax.Array, b: jax.Array) -> jax.Array:
    """Solve batched symmetric positive definite ``I x I`` systems ``a x = b`` by an unrolled Cholesky
    factorisation in plain array ops.

    ``I`` is small (the number of basis slots), so the unrolled loops cost ``O(I^3)`` vectorised
    operations over the batch. Plain ops rather than LAPACK: XLA:CPU's batched LAPACK kernels run a
    parallel loop on the intra-op thread pool and can deadlock when called inside a conditional on a
    machine with few cores.
    """
    n = a.shape[-1]
    tiny = jnp.finfo(a.dtype).tiny
    low: list[list[Any]] = [[None] * n for _ in range(n)]
    for j in range(n):
        acc = a[..., j, j]
        for k in range(j):
            acc = acc - low[j][k] * low[j][k]
        d = jnp.sqrt(jnp.maximum(acc, tiny))
        low[j][j] = d
        for i in range(j + 1, n):
            acc = a[..., i, j]
            for k in range(j):
                acc = acc - low[i][k] * low[j][k]
            low[i][j] = acc / d
    y: list[Any] = []
    for i in range(n):
        acc = b[..., i]
        for k in range(i):
            acc = acc - low[i][k] * y[k]
        y.append(acc / low[i][i])
    x: list[Any] = [None] * n
    for i in reversed(range(n)):
        acc = y[i]
        for k in range(i + 1, n):
            acc = acc - low[k][i] * x[k]
        x[i] = acc / low[i][i]
    return jnp.stack(x, axis=-1)


@functools.partial(jax.jit, static_argnums=1)
def _sketch(w: jax.Array, num_bases: int, rel_tol: Any, ridge: Any) -> tuple[jax.Array, ...]:
    big_g, n = w.shape
    dt = w.dtype
    steps = min(num_bases, n)
    wn2 = jnp.sum(w * w, axis=1)

    def refit(basis: jax.Array, active: jax.Array) -> jax.Array:
        gram = jnp.einsum("gin,gjn->gij", basis, basis, precision=_HIGHEST) / n
        rhs = jnp.einsum("gin,gn->gi", basis, w, precision=_HIGHEST) / n
        diag = jnp.where(active, jnp.asarray(ridge, dt), jnp.asarray(1.0, dt))
        mat = gram + diag[..., None] * jnp.eye(num_bases, dtype=dt)  # symmetric positive definite
        return _spd_solve(mat, rhs)

    def body(i, carry):
        basis, alpha, active, done = carry
        r = w - jnp.einsum("gi,gin->gn", alpha, basis, precision=_HIGHEST)
        r2 = jnp.sum(r * r, axis=1)
        go = ~done & (r2 >= rel_tol * wn2) & (r2 > 0)
        b = jnp.where(r >= 0, 1.0, -1.0).astype(dt) * go[:, None]
        basis = jax.lax.dynamic_update_index_in_dim(basis, b, i, axis=1)
        slot = jnp.arange(num_bases) == i
        active = active | (slot[None, :] & go[:, None])
        alpha = jnp.where(go[:, None], refit(basis, active), alpha)
        return basis, alpha, active, ~go

    init = (
        jnp.zeros((big_g, num_bases, n), dt),
        jnp.zeros((big_g, num_bases), dt),
        jnp.zeros((big_g, num_bases), bool),
        jnp.zeros((big_g,), bool),
    )
    basis, alpha, active, _ = jax.lax.fori_loop(0, steps, body, init)
    basis, alpha = fix_signs(basis, alpha)
    live = active & (alpha > 0)
    order = jnp.argsort(jnp.where(live, alpha, jnp.inf), axis=1, stable=True)
    live = jnp.take_along_axis(live, order, axis=1)
    alpha = jnp.where(live, jnp.take_along_axis(alpha, order, axis=1), 0.0)
    basis = jnp.take_along_axis(basis, order[..., None], axis=1)
    bases = jnp.where(live[..., None], basis, 0.0).astype(jnp.int8)
    return bases, alpha, live


# ----------------------------------------------------------------------------------------------------
# Basis step (section 1.4(b)): nearest representable value, weighted least-squares refit


def nearest_codes(target: jax.Array, alpha: jax.Array, mask: jax.Array) -> jax.Array:
    """Per element, the code ``c`` in {-1,+1}^I with ``sum_i c_i mask_i alpha_i`` nearest to `target`.

    ALGORITHMS.md section 1.4(b) step 3 (exact per-element rounding to the group's representable
    set). Per group the ``2^I`` representable values are sorted once; each target element is placed
    among them by comparing it with the maxima of windows of 4 sorted values, then with the 4 values
    of its window, and reads its two neighbours and their codes in one gather. Memory is
    ``O(G * (2^I + I * n))``, never ``G * n * 2^I`` (section 8 item 19). Ties: between two
    representable values at equal distance the larger one wins (like ``sign(0) = +1``); among codes
    with the same value (dead slots, equal alphas) the one with the lowest table index (bit ``i``
    set = ``+1`` on slot ``i``). Dead slots get 0.

    Args:
      target: ``(G, n)`` target weights ``T``.
      alpha: ``(G, I)`` coordinates (any sign).
      mask: ``(G, I)`` alive mask.

    Returns:
      int8 bases ``(G, I, n)``: {-1, +1} on live slots, 0 on dead slots.

    Examples:
      >>> alpha, mask = jnp.array([[1.0, 2.0]]), jnp.array([[True, True]])
      >>> nearest_codes(jnp.array([[2.9, 0.4, -1.2]]), alpha, mask).tolist()
      [[[1, -1, 1], [1, 1, -1]]]
    """
    alpha = jnp.asarray(alpha)
    mask = jnp.asarray(mask)
    _check_ndim(alpha, 2, "alpha", "(G, I)")
    if mask.shape != alpha.shape:
        raise ValueError(f"`mask` must have the shape of `alpha` {alpha.shape}, got {mask.shape}.")
    t = jnp.asarray(target)
    _check_ndim(t, 2, "target", "(G, n)")
    if t.shape[0] != alpha.shape[0]:
        raise ValueError(f"`target` must have {alpha.shape[0]} groups like `alpha`, got shape {t.shape}.")
    num_bases = alpha.shape[1]
    if num_bases > 16:
        raise ValueError(f"`alpha` has {num_bases} slots; nearest_codes enumerates 2^I codes, I <= 16.")
    return _nearest_codes(t, alpha, mask)


# Sizes of the search in `_nearest_codes`: sorted values are read in windows of `_WINDOW`; windows are
# located by comparing against every window's maximum while there are at most `_MAX_PIVOTS` of them
# (fused elementwise compares), else by binary search; the sort is a rank count up to `_RANK_SORT` codes.
_WINDOW = 4
_MAX_PIVOTS = 64
_RANK_SORT = 64


def _stable_order(values: jax.Array) -> jax.Array:
    """``argsort(values, axis=1, stable=True)``; for at most `_RANK_SORT` columns as a rank count
    (``K^2`` fused compares per row, faster than XLA:CPU's comparison sort of short rows)."""
    num = values.shape[1]
    if num > _RANK_SORT:
        return jnp.argsort(values, axis=1, stable=True)
    k = jnp.arange(num, dtype=jnp.int32)
    vj, vk = values[:, None, :], values[:, :, None]
    before = (vj < vk) | ((vj == vk) & (k[None, None, :] < k[None, :, None]))
    rank = jnp.sum(before, axis=2, dtype=jnp.int32)  # (G, K): sorted position of code k
    return jnp.sum(jnp.where(rank[:, :, None] == k[None, None, :], k[None, :, None], 0), axis=1)


@jax.jit
def _nearest_codes(t: jax.Array, alpha: jax.Array, mask: jax.Array) -> jax.Array:
    num_bases = alpha.shape[1]
    num = 2**num_bases
    dt = jnp.promote_types(compute_dtype(t), compute_dtype(alpha))
    t = t.astype(dt)
    am = jnp.where(mask, alpha, 0.0).astype(dt)
    k = jnp.arange(num, dtype=jnp.int32)
    slots = jnp.arange(num_bases, dtype=jnp.int32)
    table = (((k[:, None] >> slots[None, :]) & 1) * 2 - 1).astype(dt)  # (2^I, I): bit set -> +1
    values = jnp.sum(table[None, :, :] * am[:, None, :], axis=2)  # (G, 2^I)
    order = _stable_order(values)
    srt = jnp.take_along_axis(values, order, axis=1)
    groups = srt.shape[0]
    # hi = #(sorted values < T), the first sorted position with a value >= T: first the window of
    # `_WINDOW` values holding it (from the windows' maxima), then the count inside that window.
    width = min(_WINDOW, num)
    windows = srt.reshape(groups, num // width, width)
    pivots = windows[:, :-1, -1]  # (G, B - 1) every window's maximum but the last's
    if pivots.shape[1] <= _MAX_PIVOTS:  # unrolled: one fused loop (a minor-axis reduction is slower)
        w = jnp.zeros(t.shape, jnp.int32)
        for j in range(pivots.shape[1]):
            w = w + (pivots[:, j : j + 1] < t).astype(jnp.int32)
    else:
        w = jax.vmap(lambda s, x: jnp.searchsorted(s, x, side="left"))(pivots, t)
    window = jax.vmap(lambda s, i: s[i])(windows, w)  # (G, n, width)
    hi = w * width + jnp.sum(window < t[..., None], axis=-1, dtype=jnp.int32)
    # The lowest table index among equal values: the code of the first of each run of equal values.
    new_run = jnp.concatenate([jnp.ones_like(srt[:, :1], bool), srt[:, 1:] != srt[:, :-1]], axis=1)
    first = jax.lax.cummax(jnp.where(new_run, k[None, :], 0), axis=1)
    code = jnp.take_along_axis(order, first, axis=1).astype(dt)  # exact: codes < 2^16
    # One gather per element: at position hi, the values and codes at hi (clipped) and hi - 1 (clipped).
    up = jnp.concatenate([srt, srt[:, -1:]], axis=1)
    down = jnp.concatenate([srt[:, :1], srt], axis=1)
    code_up = jnp.concatenate([code, code[:, -1:]], axis=1)
    code_down = jnp.concatenate([code[:, :1], code], axis=1)
    entries = jax.vmap(lambda e, i: e[i])(jnp.stack([up, down, code_up, code_down], axis=-1), hi)
    v_hi, v_lo = entries[..., 0], entries[..., 1]
    use_hi = (hi == 0) | ((hi < num) & (v_hi - t <= t - v_lo))
    small = jnp.uint8 if num_bases <= 8 else jnp.uint16  # keeps the (G, I, n) bit planes small
    best = jnp.where(use_hi, entries[..., 2], entries[..., 3]).astype(small)  # (G, n) table index
    bits = ((best[:, None, :] >> slots.astype(small)[None, :, None]) & 1).astype(jnp.int8) * 2 - 1
    return jnp.where(mask[..., None], bits, jnp.int8(0)).astype(jnp.int8)


def wls_refit(
    bases: jax.Array, target: jax.Array, h: jax.Array, mask: jax.Array, ridge: float = 1e-6
) -> jax.Array:
    """Weighted least squares ``argmin_alpha sum_j h_j (sum_i alpha_i b_ij - T_j)^2`` (section 1.4(b)).

    ALGORITHMS.md section 1.4(b) step 4: ``alpha_g = (B_g H_g B_g^T + R)^{-1} B_g H_g T_g`` with
    ``H_g = diag(h_g)`` and ``R = diag(1 + ridge - mask)`` (an absolute ridge on live slots, about 1 on
    dead slots), one batched ``I x I`` solve; then ``alpha *= mask`` (dead slots are 0). Basis rows
    of dead slots are ignored. The result may be negative: follow with `fix_signs`.

    Args:
      bases: ``(G, I, n)`` codes.
      target: ``(G, n)`` targets ``T``.
      h: ``(G, n)`` positive weights (the diagonal pseudo-Hessian of section 1.3).
      mask: ``(G, I)`` alive mask.
      ridge: ridge added on live slots (>= 0).

    Returns:
      ``(G, I)`` coordinates in the computation dtype.

    Examples:
      >>> b = jnp.array([[[1, 1, 1], [1, -1, 1]]], jnp.int8)
      >>> a = wls_refit(b, jnp.array([[3.0, 1.0, 3.0]]), jnp.ones((1, 3)), jnp.array([[True, True]]))
      >>> [round(x, 4) for x in a[0].tolist()]
      [2.0, 1.0]
    """
    check_positive(ridge, "ridge", allow_zero=True)
    bases = _check_bases(bases)
    t = _check_elems(target, bases, "target")
    hh = _check_elems(h, bases, "h")
    mask = _check_slots(mask, bases, "mask")
    return _wls_refit(bases, t, hh, mask, ridge)


@jax.jit
def _wls_refit(bases: jax.Array, t: jax.Array, hh: jax.Array, mask: jax.Array, ridge: Any) -> jax.Array:
    dt = jnp.promote_types(compute_dtype(t), compute_dtype(hh))
    t, hh = t.astype(dt), hh.astype(dt)
    m = mask.astype(dt)
    b = bases.astype(dt) * m[..., None]
    bh = b * hh[:, None, :]
    mat = jnp.einsum("gin,gjn->gij", bh, b, precision=_HIGHEST)
    mat = mat + (1.0 + ridge - m)[..., None] * jnp.eye(bases.shape[1], dtype=dt)
    rhs = jnp.einsum("gin,gn->gi", bh, t, precision=_HIGHEST)
    return _spd_solve(mat, rhs) * m


# ----------------------------------------------------------------------------------------------------
# Pruning (section 1.4(d)) and accounting (section 1.6)


def importance(p_alpha: jax.Array, h_alpha: jax.Array, alpha: jax.Array) -> jax.Array:
    """Modelled loss increase of zeroing each coordinate, ``-p alpha + h alpha^2 / 2`` (section 1.4(d)).

    The change of the quadratic model ``p^T d + d^T diag(h) d / 2`` of section 1.3 for the step
    ``d = -alpha`` (step 2 of the pruning mode); the smallest values are pruned first.

    Examples:
      >>> importance(jnp.array([0.5, -0.5]), jnp.array([2.0, 2.0]), jnp.array([1.0, 0.5])).tolist()
      [0.5, 0.5]
    """
    p = jnp.asarray(p_alpha)
    hh = jnp.asarray(h_alpha)
    a = jnp.asarray(alpha)
    if p.shape != a.shape or hh.shape != a.shape:
        raise ValueError(
            f"`p_alpha` and `h_alpha` must have the shape of `alpha` {a.shape}, got {p.shape} and {hh.shape}."
        )
    return -p * a + 0.5 * hh * a * a


def average_bits(mask: jax.Array) -> jax.Array:
    """Layer average bitwidth = live coordinates / groups (ALGORITHMS.md section 1.6), a float32 scalar.

    Examples:
      >>> float(average_bits(jnp.array([[True, True, False], [True, False, False]])))
      1.5
    """
    mask = jnp.asarray(mask)
    _check_ndim(mask, 2, "mask", "(G, I)")
    if mask.shape[0] == 0:
        raise ValueError("`mask` must have at least one group.")
    return jnp.sum(mask.astype(jnp.float32)) / mask.shape[0]


def alq_storage_bits(numel: Any, avg_bits: Any, live_alphas: Any, alpha_bits: int = 32) -> Any:
    """Storage of one ALQ layer in bits: ``numel * avg_bits`` code bits + ``alpha_bits`` per live alpha.

    ALGORITHMS.md section 1.6 (codes of every live slot plus one full-precision coordinate per live
    slot; full-precision parameters such as BatchNorm and biases are counted separately, 32 bits
    each). ``numel * avg_bits`` equals ``live_alphas * n``. Works on Python numbers and arrays.

    Examples:
      >>> alq_storage_bits(3 * 3 * 64 * 64, 2.0, 2 * 9 * 64)
      110592.0
    """
    for value, name in ((numel, "numel"), (avg_bits, "avg_bits"), (live_alphas, "live_alphas")):
        check_positive(value, name, allow_zero=True)
    check_int(alpha_bits, "alpha_bits", hint=None)
    return numel * avg_bits + live_alphas * alpha_bits
