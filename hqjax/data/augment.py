"""Image augmentation and preprocessing in NumPy (run inside grain transforms, on the host).

Every function takes one HWC image (uint8 or float) and, where random, a `numpy.random.Generator`
(grain hands each record its own seeded generator). Randomness comes only from that generator, so a
pipeline is reproducible given its seed.

Resizing is bilinear with antialiasing (a triangle filter widened by the downscale factor, the same
weights as ``jax.image.resize(..., "linear", antialias=True)`` and close to PIL's ``BILINEAR``). It is
computed as two small matrix products, so no image library is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "center_crop",
    "crop",
    "flip_left_right",
    "normalize",
    "pad",
    "random_crop",
    "random_flip_left_right",
    "random_resized_crop",
    "random_resized_crop_box",
    "resize",
    "resize_center_crop",
    "resize_weights",
]


def flip_left_right(image: np.ndarray) -> np.ndarray:
    """Mirror an HWC image horizontally (along W).

    Args:
      image: (H, W, C) array.

    Returns:
      The mirrored image (a view).

    Examples:
      >>> flip_left_right(np.arange(3).reshape(1, 3, 1))[0, :, 0].tolist()
      [2, 1, 0]
    """
    return image[:, ::-1]


def random_flip_left_right(image: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Mirror `image` horizontally with probability `p`.

    Args:
      image: (H, W, C) array.
      rng: the record's generator (one draw).
      p: flip probability.

    Returns:
      The image, flipped or not.
    """
    return flip_left_right(image) if rng.random() < p else image


def pad(image: np.ndarray, padding: int, mode: str = "constant") -> np.ndarray:
    """Pad H and W by `padding` pixels on each side.

    Args:
      image: (H, W, C) array.
      padding: pixels added on every side (>= 0).
      mode: ``"constant"`` (zeros) or ``"reflect"`` (mirror without repeating the edge pixel).

    Returns:
      Array of shape (H + 2 * padding, W + 2 * padding, C) and the input's dtype.
    """
    if mode not in ("constant", "reflect"):
        raise ValueError(f"Unknown padding mode {mode!r}; use 'constant' (zeros) or 'reflect'.")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}.")
    return np.pad(image, ((padding, padding), (padding, padding), (0, 0)), mode=mode)


def crop(image: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """Cut the window ``[top:top+height, left:left+width]`` out of an HWC image.

    Args:
      image: (H, W, C) array.
      top: first row.
      left: first column.
      height: window height.
      width: window width.

    Returns:
      The (height, width, C) window (a view).
    """
    h, w = image.shape[:2]
    if not (0 <= top and top + height <= h and 0 <= left and left + width <= w):
        raise ValueError(f"crop window ({top}, {left}, {height}, {width}) lies outside an image of {h}x{w}.")
    return image[top : top + height, left : left + width]


def random_crop(
    image: np.ndarray, rng: np.random.Generator, size: Sequence[int], padding: int = 4, mode: str = "constant"
) -> np.ndarray:
    """Pad by `padding` then cut a random `size` window (the CIFAR recipe: pad 4, crop 32).

    Args:
      image: (H, W, C) array.
      rng: the record's generator (two draws: row and column offsets).
      size: (height, width) of the output.
      padding: pixels of padding on each side before cropping.
      mode: padding mode, ``"constant"`` (zeros, the usual CIFAR choice) or ``"reflect"``.

    Returns:
      The (height, width, C) crop, same dtype as `image`.
    """
    padded = pad(image, padding, mode) if padding else image
    height, width = int(size[0]), int(size[1])
    top = int(rng.integers(0, padded.shape[0] - height + 1))
    left = int(rng.integers(0, padded.shape[1] - width + 1))
    return crop(padded, top, left, height, width)


def resize_weights(in_size: int, out_size: int) -> np.ndarray:
    """The (out_size, in_size) matrix of antialiased bilinear interpolation weights along one axis.

    Output pixel ``i`` samples input coordinate ``(i + 0.5) * in/out - 0.5`` with a triangle filter of
    half-width ``max(in/out, 1)``; weights falling outside the image are dropped and each row is
    renormalised to sum to 1 (the convention of `jax.image.scale_and_translate`).

    Args:
      in_size: input length.
      out_size: output length.

    Returns:
      float32 matrix whose rows sum to 1.
    """
    scale = out_size / in_size
    kernel_scale = max(1.0 / scale, 1.0)
    centers = (np.arange(out_size, dtype=np.float64) + 0.5) / scale - 0.5
    x = np.abs(centers[:, None] - np.arange(in_size, dtype=np.float64)[None, :]) / kernel_scale
    weights = np.maximum(0.0, 1.0 - x)
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    return weights.astype(np.float32)


def _apply_weights(image: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    """``wy @ image @ wx.T`` over the H and W axes of an HWC image, in float32."""
    x = np.asarray(image, dtype=np.float32)
    x = np.tensordot(wy, x, axes=(1, 0))  # (out_h, W, C)
    return np.einsum("pw,hwc->hpc", wx, x, optimize=True)


def resize(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Antialiased bilinear resize of an HWC image.

    Args:
      image: (H, W, C) array (any real dtype).
      size: (height, width) of the output.

    Returns:
      float32 array of shape (height, width, C), values in the input's range.
    """
    h, w = image.shape[:2]
    return _apply_weights(image, resize_weights(h, int(size[0])), resize_weights(w, int(size[1])))


def center_crop(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """The central `size` window of an HWC image (offsets rounded down).

    Args:
      image: (H, W, C) array at least `size` large.
      size: (height, width) of the window.

    Returns:
      The window (a view).
    """
    h, w = image.shape[:2]
    return crop(image, (h - int(size[0])) // 2, (w - int(size[1])) // 2, int(size[0]), int(size[1]))


def resize_center_crop(image: np.ndarray, resize_size: int = 256, crop_size: int = 224) -> np.ndarray:
    """ImageNet evaluation preprocessing: resize the shorter side to `resize_size`, then centre-crop.

    Only the rows and columns of the crop are computed, but the result equals resizing the whole
    image (aspect ratio kept, longer side rounded) and then taking ``center_crop``.

    Args:
      image: (H, W, C) array.
      resize_size: length of the shorter side after resizing (256 for ImageNet).
      crop_size: side of the square centre crop (224 for ImageNet); must be <= `resize_size`.

    Returns:
      float32 array of shape (crop_size, crop_size, C).
    """
    if crop_size > resize_size:
        raise ValueError(f"crop_size={crop_size} must not exceed resize_size={resize_size}.")
    h, w = image.shape[:2]
    short = min(h, w)
    new_h = resize_size if h == short else max(resize_size, round(h * resize_size / short))
    new_w = resize_size if w == short else max(resize_size, round(w * resize_size / short))
    top, left = (new_h - crop_size) // 2, (new_w - crop_size) // 2
    wy = resize_weights(h, new_h)[top : top + crop_size]
    wx = resize_weights(w, new_w)[left : left + crop_size]
    return _apply_weights(image, wy, wx)


def random_resized_crop_box(
    height: int,
    width: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    attempts: int = 10,
) -> tuple[int, int, int, int]:
    """Sample the window of a random-resized crop (Inception / torchvision ``RandomResizedCrop``).

    Up to `attempts` times, draw an area fraction uniformly from `scale` and an aspect ratio
    (width / height) log-uniformly from `ratio`; return the first window that fits, at a uniform random
    position. If none fits, fall back to the largest central window with a ratio inside `ratio`.

    Args:
      height: image height.
      width: image width.
      rng: the record's generator.
      scale: range of the window's area as a fraction of the image's.
      ratio: range of the window's aspect ratio (width / height).
      attempts: how many windows to try before the fallback.

    Returns:
      ``(top, left, crop_height, crop_width)``.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(attempts):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        h, w = height, width
    h, w = max(1, min(h, height)), max(1, min(w, width))
    return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop(
    image: np.ndarray,
    rng: np.random.Generator,
    size: Sequence[int] = (224, 224),
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> np.ndarray:
    """Random-resized crop: a window from `random_resized_crop_box`, resized to `size`.

    Args:
      image: (H, W, C) array.
      rng: the record's generator.
      size: (height, width) of the output (224x224 for ImageNet).
      scale: range of the window's area fraction.
      ratio: range of the window's aspect ratio.

    Returns:
      float32 array of shape (height, width, C).
    """
    top, left, h, w = random_resized_crop_box(image.shape[0], image.shape[1], rng, scale, ratio)
    return resize(crop(image, top, left, h, w), size)


def normalize(
    images: np.ndarray, mean: Sequence[float], std: Sequence[float], pixel_max: float = 255.0
) -> np.ndarray:
    """``(images / pixel_max - mean) / std`` per channel, in float32.

    Args:
      images: array whose last axis is the channel axis (HWC or NHWC).
      mean: per-channel mean of pixels scaled to [0, 1].
      std: per-channel standard deviation of pixels scaled to [0, 1].
      pixel_max: the value that maps to 1.0 before standardisation.

    Returns:
      float32 array of the same shape.

    Examples:
      >>> normalize(np.array([[[255]]], np.uint8), mean=[0.5], std=[0.5]).tolist()
      [[[1.0]]]
    """
    mean_arr = np.asarray(mean, np.float32) * np.float32(pixel_max)
    inv_std = 1.0 / (np.asarray(std, np.float32) * np.float32(pixel_max))
    return ((np.asarray(images, np.float32) - mean_arr) * inv_std).astype(np.float32, copy=False)
