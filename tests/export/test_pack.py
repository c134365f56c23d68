"""Codes, scales, dense 2-bit and ANS packing, multi-bit (ALQ) bitplanes: exact round trips and bounds."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hqjax.export import pack as pk
from hqjax.export import pack_variables, read_packed
from hqjax.export.pack import MultiBitLayer
from hqjax.ops.alq import reconstruct


def _h(p0):
    """B7: bits per weight of symmetric ternary codes with zero fraction p0."""
    h2 = -(p0 * math.log2(p0) + (1 - p0) * math.log2(1 - p0))
    return h2 + (1 - p0)


def test_b7_entropy_values():
    for p0, h in ((0.80, 0.92), (0.85, 0.76), (0.88, 0.65), (0.90, 0.57)):
        counts = [round(p0 * 1e6), round((1 - p0) * 5e5), round((1 - p0) * 5e5)]
        assert round(pk.code_entropy_bits(counts) / 1e6, 2) == h
        assert round(_h(p0), 2) == h
    assert pk.code_entropy_bits([7, 0, 0]) == 0.0
    assert pk.code_entropy_bits([1, 1, 1]) == pytest.approx(3 * math.log2(3))


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 1001])
def test_dense2_round_trip_and_size(n):
    codes = np.random.default_rng(n).integers(-1, 2, size=n).astype(np.int8)
    data = pk.pack_dense2(codes)
    assert len(data) == (n + 3) // 4
    np.testing.assert_array_equal(pk.unpack_dense2(data, n), codes)


def test_dense2_bit_layout_and_bad_blocks():
    # symbols 0 -> 0, +1 -> 1, -1 -> 2, first code in the lowest bits
    assert pk.pack_dense2(np.array([0, 1, -1, 1], np.int8)) == bytes([0b01_10_01_00])
    with pytest.raises(ValueError, match="invalid symbol 3"):
        pk.unpack_dense2(bytes([0b11]), 1)
    with pytest.raises(ValueError, match="does not hold 9 codes"):
        pk.unpack_dense2(bytes(2), 9)


@pytest.mark.parametrize("p0", [0.0, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("n", [1, 100, 50_000])
def test_ans_round_trip_and_distance_to_the_bound(p0, n):
    rng = np.random.default_rng(n)
    codes = rng.choice(np.array([0, 1, -1], np.int8), size=n, p=[p0, (1 - p0) * 0.6, (1 - p0) * 0.4])
    data, counts = pk.ans_encode(codes)
    assert counts == pk.symbol_counts(codes) and sum(counts) == n
    np.testing.assert_array_equal(pk.ans_decode(data, counts), codes)
    bound = pk.code_entropy_bits(counts) / 8
    assert bound <= len(data) <= 1.002 * bound + 8


def test_ans_constant_and_empty_layers_cost_nothing():
    for codes in (np.zeros(10, np.int8), np.ones(7, np.int8), -np.ones(3, np.int8), np.zeros(0, np.int8)):
        data, counts = pk.ans_encode(codes)
        assert data == b""
        np.testing.assert_array_equal(pk.ans_decode(data, counts), codes)


def test_ans_detects_a_stream_that_does_not_match_its_counts():
    codes = np.random.default_rng(0).choice(np.array([0, 1, -1], np.int8), size=2000, p=[0.8, 0.1, 0.1])
    data, counts = pk.ans_encode(codes)
    with pytest.raises(ValueError):
        pk.ans_decode(data, (counts[0] - 5, counts[1] + 5, counts[2]))
    with pytest.raises(ValueError, match="32-bit words"):
        pk.ans_decode(data[:-1], counts)


@pytest.mark.parametrize("axis", [-1, 0, None])
def test_ternary_split_merge_is_exact(axis):
    rng = np.random.default_rng(0)
    codes = rng.integers(-1, 2, size=(3, 3, 5, 7)).astype(np.int8)
    ax = 3 if axis == -1 else axis
    n_units = 1 if axis is None else codes.shape[ax]
    scale = rng.uniform(0.01, 3.0, n_units).astype(np.float32)
    shape = [1] * 4 if axis is None else [n_units if i == ax else 1 for i in range(4)]
    w = (codes * scale.reshape(shape)).astype(np.float32)
    layer = pk.ternary_split(w, axis)
    assert layer.neg is None and layer.units == n_units
    np.testing.assert_array_equal(layer.codes, codes)
    back = pk.ternary_merge(layer)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back.view(np.uint32), (w + 0.0).view(np.uint32))  # zeros as +0.0


def test_ternary_split_keeps_separate_positive_and_negative_scales():
    w = np.array([[0.5, -0.3], [0.0, 0.2], [-0.25, -0.3]], np.float32)  # TTQ-like: W_p != W_n
    layer = pk.ternary_split(w, -1)
    np.testing.assert_array_equal(layer.pos, np.float32([0.5, 0.2]))
    np.testing.assert_array_equal(layer.neg, np.float32([0.25, 0.3]))
    np.testing.assert_array_equal(pk.ternary_merge(layer), w)
    # a unit with only negative codes shares its magnitude when the layer is symmetric
    sym = pk.ternary_split(np.array([[-0.5, 0.2], [0.0, -0.2]], np.float32), -1)
    assert sym.neg is None
    np.testing.assert_array_equal(sym.pos, np.float32([0.5, 0.2]))


def test_ternary_split_handles_signed_zeros_and_bfloat16():
    w = np.array([[-0.0, 0.5], [0.0, -0.5]], np.float32)
    layer = pk.ternary_split(w, None)
    assert layer.codes.tolist() == [[0, 1], [0, -1]]
    wb = jnp.asarray([[0.375, -0.375], [0.0, 0.375]], jnp.bfloat16)
    lb = pk.ternary_split(np.asarray(wb), -1)
    assert lb.pos.dtype == np.asarray(wb).dtype
    np.testing.assert_array_equal(pk.ternary_merge(lb), np.asarray(wb))


@pytest.mark.parametrize(
    "w, match",
    [
        (np.array([[0.5], [0.25]], np.float32), "2 distinct non-zero magnitudes"),
        (np.array([[-0.5], [-0.25]], np.float32), "2 distinct non-zero magnitudes"),
        (np.array([[np.nan], [0.25]], np.float32), "NaN or infinity"),
        (np.array([[1, 0]], np.int32), "floating-point"),
    ],
)
def test_ternary_split_refuses_non_ternary_units(w, match):
    with pytest.raises(pk.NotTernaryError, match=match):
        pk.ternary_split(w, -1, name="layer")


# ---------------------------------------------------------------------------------------------------------
# Multi-bit (ALQ)


def _alq(g, i, n, seed, live=0.7):
    rng = np.random.default_rng(seed)
    mask = rng.random((g, i)) < live
    mask[0] = False  # a zero group (bitwidth 0)
    alpha = (rng.random((g, i)) * np.exp(rng.normal(size=(g, i)) * 2)).astype(np.float32)
    bases = np.where(rng.random((g, i, n)) < 0.5, -1, 1).astype(np.int8) * mask[..., None]
    return bases.astype(np.int8), alpha, mask


@pytest.mark.parametrize("g, i, n", [(1, 1, 1), (7, 3, 9), (64, 6, 25), (33, 8, 100)])
def test_multibit_pack_round_trip_and_sizes(g, i, n):
    bases, alpha, mask = _alq(g, i, n, seed=g)
    mask_bits, alphas, planes = pk.pack_multibit(bases, alpha, mask)
    live = int(mask.sum())
    assert len(mask_bits) == (g * i + 7) // 8
    assert len(alphas) == 4 * live  # spec 1.6: 32 bits per live alpha
    assert len(planes) == (live * n + 7) // 8  # one bit per weight per live slot
    b2, a2, m2 = pk.unpack_multibit(mask_bits, alphas, planes, (g, i, n))
    np.testing.assert_array_equal(m2, mask)
    np.testing.assert_array_equal(b2, bases)
    np.testing.assert_array_equal(a2, np.where(mask, alpha, 0.0))
    np.testing.assert_array_equal(pk.multibit_groups(b2, a2, m2), pk.multibit_groups(bases, alpha, mask))


def test_multibit_refuses_bad_input():
    bases, alpha, mask = _alq(4, 3, 5, seed=0)
    bad = bases.copy()
    bad[mask] = 0
    with pytest.raises(ValueError, match="-1 or \\+1 on every live slot"):
        pk.pack_multibit(bad, alpha, mask)
    with pytest.raises(ValueError, match="needs bases"):
        pk.pack_multibit(bases[0], alpha, mask)
    mb, al, pl = pk.pack_multibit(bases, alpha, mask)
    with pytest.raises(ValueError, match="bitplane block"):
        pk.unpack_multibit(mb, al, pl + b"\0", (4, 3, 5))


def _jnp_formula(mask, alpha, bases):
    return jnp.sum(mask[..., None] * alpha[..., None] * bases, axis=1)


@pytest.mark.parametrize("i", list(range(1, 9)) + [12, 16])
def test_multibit_groups_match_the_jitted_jnp_formula_bit_for_bit(i):
    bases, alpha, mask = _alq(64, i, 25, seed=i)
    ours = pk.multibit_groups(bases, alpha, mask)
    ref = np.asarray(jax.jit(_jnp_formula)(jnp.asarray(mask), jnp.asarray(alpha), jnp.asarray(bases)))
    np.testing.assert_array_equal(ours.view(np.uint32), ref.view(np.uint32))
    # the ordered jax version and ALQ's own reconstruction, eager and jitted
    for fn in (pk.multibit_groups_jax, reconstruct):
        eager = np.asarray(fn(bases, alpha, mask))
        jitted = np.asarray(jax.jit(fn)(bases, alpha, mask))
        np.testing.assert_array_equal(eager.view(np.uint32), ours.view(np.uint32))
        np.testing.assert_array_equal(jitted.view(np.uint32), ours.view(np.uint32))


def test_multibit_groups_closed_form():
    b = np.array([[[1, -1, 1], [1, 1, -1]]], np.int8)
    out = pk.multibit_groups(b, np.array([[0.5, 2.0]], np.float32), np.array([[True, True]]))
    assert out.tolist() == [[2.5, 1.5, -1.5]]
    out = pk.multibit_groups(b, np.array([[0.5, 2.0]], np.float32), np.array([[False, True]]))
    assert out.tolist() == [[2.0, 2.0, -2.0]]


def test_multibit_tensors_in_a_packed_file(tmp_path):
    """The export hook: ALQ tensors as bitplanes + alphas, rebuilt through `from_groups` at load time."""

    def rows(groups, shape, structure, subc):  # a simple group layout: one group per output channel
        assert structure == "rows" and subc == 1
        return np.asarray(groups).T.reshape(shape)

    bases, alpha, mask = _alq(6, 4, 20, seed=3)  # 6 output channels of a (20, 6) dense kernel
    layer = MultiBitLayer(bases, alpha, mask, shape=(20, 6), structure="rows")
    variables = {"params": {"d": {"kernel": np.zeros((20, 6), np.float32), "bias": np.ones(6, np.float32)}}}
    data, report = pack_variables(variables, multibit={"d/kernel": layer})
    assert report.file_bytes == len(data)
    (t,) = [t for t in report.tensors if t.kind == "multibit"]
    live = int(mask.sum())
    assert t.units == live and t.side_bytes == 4 * live
    assert t.coded_bytes == (live * 20 + 7) // 8 + (6 * 4 + 7) // 8
    assert t.zeros == 20  # group 0 has no live slot
    loaded = read_packed(data, from_groups=rows).variables["params"]["d"]["kernel"]
    np.testing.assert_array_equal(loaded, rows(pk.multibit_groups(bases, alpha, mask), (20, 6), "rows", 1))


def test_multibit_export_matches_the_alq_reconstruction():
    """Against `hqjax.ops.alq`: the stored layer rebuilds the jitted ALQ reconstruction bit for bit."""
    from hqjax.ops import alq

    shape, structure = (3, 3, 8, 16), "kernelwise"
    g, n = alq.group_shape(shape, structure)
    bases, alpha, mask = _alq(g, 6, n, seed=5)

    def weights(bases, alpha, mask):
        return alq.from_groups(alq.reconstruct(bases, alpha, mask), shape, structure)

    ref = np.asarray(jax.jit(weights)(bases, alpha, mask))
    layer = MultiBitLayer(bases, alpha, mask, shape=shape, structure=structure)
    variables = {"params": {"conv": {"kernel": np.zeros(shape, np.float32)}}}
    data, _ = pack_variables(variables, multibit={"conv/kernel": layer})
    got = read_packed(data).variables["params"]["conv"]["kernel"]
    np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))
