"""NumPy augmentations on hand-made images: exact crops and flips, resize against jax.image.resize."""

import jax
import numpy as np
import pytest

from hqjax.data import augment as aug


def ramp(h=6, w=5, c=2):
    """An image whose every pixel is distinct: value = 10 * row + col (+ 100 per channel)."""
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.stack([10 * rows + cols + 100 * k for k in range(c)], axis=-1).astype(np.uint8)


def test_flip_twice_is_identity():
    img = ramp()
    np.testing.assert_array_equal(aug.flip_left_right(aug.flip_left_right(img)), img)
    np.testing.assert_array_equal(aug.flip_left_right(img)[:, 0], img[:, -1])


def test_random_flip_uses_rng():
    img = ramp()
    outs = [aug.random_flip_left_right(img, np.random.default_rng(s)) for s in range(20)]
    flipped = [not np.array_equal(o, img) for o in outs]
    assert 0 < sum(flipped) < 20
    for o, f in zip(outs, flipped, strict=True):
        np.testing.assert_array_equal(o, aug.flip_left_right(img) if f else img)


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_pad(mode):
    img = ramp()
    padded = aug.pad(img, 2, mode)
    assert padded.shape == (10, 9, 2) and padded.dtype == np.uint8
    np.testing.assert_array_equal(padded[2:-2, 2:-2], img)
    if mode == "constant":
        assert padded[:2].max() == 0 and padded[:, :2].max() == 0
    else:  # reflect without repeating the edge: row -1 is row 1
        np.testing.assert_array_equal(padded[1, 2:-2], img[1])
        np.testing.assert_array_equal(padded[2:-2, 0], img[:, 2])


@pytest.mark.parametrize("seed", range(8))
def test_random_crop_contains_original_at_offset(seed):
    """out[y, x] == img[y + top - pad, x + left - pad] wherever that source pixel exists, else 0."""
    img = ramp(32, 32, 3)
    pad = 4
    out = aug.random_crop(img, np.random.default_rng(seed), (32, 32), padding=pad)
    assert out.shape == img.shape and out.dtype == img.dtype
    rng = np.random.default_rng(seed)  # the same two draws random_crop makes
    top, left = int(rng.integers(0, 2 * pad + 1)), int(rng.integers(0, 2 * pad + 1))
    dy, dx = top - pad, left - pad
    for y in range(32):
        for x in range(32):
            sy, sx = y + dy, x + dx
            expected = img[sy, sx] if 0 <= sy < 32 and 0 <= sx < 32 else 0
            np.testing.assert_array_equal(out[y, x], expected)


def test_random_crop_offsets_cover_range():
    img = ramp(8, 8, 1)
    positions = set()
    for s in range(300):
        out = aug.random_crop(img, np.random.default_rng(s), (8, 8), padding=2)
        ys, xs = np.nonzero(out[..., 0] == img[4, 4, 0])  # the centre pixel stays inside every crop
        positions.add((int(ys[0]), int(xs[0])))
    assert positions == {(y, x) for y in range(2, 7) for x in range(2, 7)}  # all 25 offsets occur


def test_crop_rejects_outside_window():
    with pytest.raises(ValueError, match="outside"):
        aug.crop(ramp(), 2, 0, 5, 5)


@pytest.mark.parametrize(
    "in_hw, out_hw", [((47, 17), (224, 224)), ((500, 375), (224, 224)), ((32, 32), (16, 40))]
)
def test_resize_matches_jax(in_hw, out_hw):
    img = np.random.default_rng(0).integers(0, 256, (*in_hw, 3)).astype(np.uint8)
    ours = aug.resize(img, out_hw)
    ref = jax.image.resize(img.astype(np.float32), (*out_hw, 3), "linear", antialias=True)
    assert ours.shape == (*out_hw, 3) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, np.asarray(ref), atol=1e-2)


def test_resize_identity_and_constant():
    img = ramp(7, 9, 3)
    np.testing.assert_allclose(aug.resize(img, (7, 9)), img, atol=1e-4)
    const = np.full((50, 31, 1), 77, np.uint8)
    np.testing.assert_allclose(aug.resize(const, (13, 60)), 77.0, atol=1e-3)


def test_resize_center_crop_equals_resize_then_crop():
    img = np.random.default_rng(1).integers(0, 256, (300, 200, 3)).astype(np.uint8)
    out = aug.resize_center_crop(img, 256, 224)
    full = aug.resize(img, (384, 256))  # shorter side 200 -> 256, 300 -> 384
    assert out.shape == (224, 224, 3)
    np.testing.assert_allclose(out, aug.center_crop(full, (224, 224)), atol=1e-3)


@pytest.mark.parametrize("hw", [(375, 500), (47, 17), (224, 224), (5, 300)])
def test_random_resized_crop_box_bounds(hw):
    h, w = hw
    for s in range(50):
        top, left, ch, cw = aug.random_resized_crop_box(h, w, np.random.default_rng(s))
        assert 0 <= top and top + ch <= h and 0 <= left and left + cw <= w and ch > 0 and cw > 0
        if (ch, cw) != (h, w) and top == (h - ch) // 2 and left == (w - cw) // 2:
            continue  # central fallback window
        area = ch * cw / (h * w)
        assert 0.08 * 0.8 <= area <= 1.0 * 1.2  # rounding of small windows
        assert 3 / 4 * 0.8 <= cw / ch <= 4 / 3 * 1.25


def test_random_resized_crop_shape_and_determinism():
    img = np.random.default_rng(2).integers(0, 256, (120, 90, 3)).astype(np.uint8)
    a = aug.random_resized_crop(img, np.random.default_rng(7), (64, 64))
    b = aug.random_resized_crop(img, np.random.default_rng(7), (64, 64))
    c = aug.random_resized_crop(img, np.random.default_rng(8), (64, 64))
    assert a.shape == (64, 64, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0.0 <= a.min() and a.max() <= 255.0


def test_random_resized_crop_is_a_resized_window():
    img = np.random.default_rng(3).integers(0, 256, (60, 80, 3)).astype(np.uint8)
    top, left, h, w = aug.random_resized_crop_box(60, 80, np.random.default_rng(5))
    expected = aug.resize(img[top : top + h, left : left + w], (32, 32))
    np.testing.assert_array_equal(aug.random_resized_crop(img, np.random.default_rng(5), (32, 32)), expected)


def test_normalize():
    img = np.array([[[0, 255, 51]]], np.uint8)
    out = aug.normalize(img, mean=(0.0, 0.5, 0.2), std=(1.0, 0.5, 0.1))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [0.0, 1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(aug.normalize(np.array([[[16]]]), [0.5], [0.25], pixel_max=16), [[[2.0]]])
