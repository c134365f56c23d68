"""Reader for IDX files, the format of the original MNIST (and Fashion-MNIST) distribution.

An IDX file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then `ndim` big-endian uint32
dimensions, then the data in C order. MNIST images are ``0x00000803`` (uint8, 3 dims: N, 28, 28) and
labels ``0x00000801`` (uint8, 1 dim: N). Files may be gzipped (``.gz``, the standard download) or not.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

__all__ = ["IDX_FILES", "load_idx_split", "parse_idx", "read_idx"]

IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
"""Split -> (images file, labels file) base names; each may carry a ``.gz`` suffix on disk."""

_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def parse_idx(data: bytes, *, name: str = "<bytes>", expected_ndim: int | None = None) -> np.ndarray:
    """Parse the bytes of one (uncompressed) IDX file.

    Args:
      data: the file's content.
      name: how to call the file in error messages.
      expected_ndim: if given, the number of dimensions the header must announce (3 for images,
        1 for labels).

    Returns:
      The array, with the shape from the header and a native-endian dtype.

    Raises:
      ValueError: for a bad magic number, a wrong number of dimensions, or a size that does not match
        the header (truncated or padded file).

    Examples:
      >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9])).tolist()
      [7, 8, 9]
    """
    if len(data) < 4:
        raise ValueError(f"IDX file {name} is truncated: {len(data)} bytes, not even a 4-byte header.")
    zero0, zero1, type_code, ndim = data[:4]
    if zero0 != 0 or zero1 != 0 or type_code not in _DTYPES or ndim == 0:
        raise ValueError(
            f"IDX file {name} has a bad magic number 0x{data[:4].hex()}; expected 0x0000TTNN with a "
            "known type TT (08 = uint8) and NN > 0 dimensions (0x00000803 for images, 0x00000801 for "
            "labels). The file is corrupt or not an IDX file; download it again."
        )
    if expected_ndim is not None and ndim != expected_ndim:
        raise ValueError(
            f"IDX file {name} has {ndim} dimensions (magic 0x{data[:4].hex()}), expected {expected_ndim}; "
            "images and labels files may be swapped."
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"IDX file {name} is truncated inside its header ({len(data)} < {header} bytes).")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"IDX file {name} holds {len(data) - header} data bytes but its header {shape} "
            f"({dtype}) needs {expected}; the file is truncated or corrupt, download it again."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike, *, expected_ndim: int | None = None) -> np.ndarray:
    """Read one IDX file from disk; gzipped files (by content, whatever the name) are decompressed.

    Args:
      path: the file.
      expected_ndim: see `parse_idx`.

    Returns:
      The array stored in the file.

    Raises:
      FileNotFoundError: if `path` does not exist.
      ValueError: if the file is a damaged gzip stream or not a valid IDX file.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":  # gzip magic
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"IDX file {path} is a damaged gzip file ({e}); download it again.") from e
    return parse_idx(raw, name=path, expected_ndim=expected_ndim)


def _find(directory: str, base: str) -> str:
    """The path of `base` or `base.gz` in `directory`, or a `FileNotFoundError` saying what is missing."""
    for candidate in (base + ".gz", base):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"IDX file {base}.gz (or uncompressed {base}) not found in {directory!r}. The directory must "
        "hold the four standard MNIST-format files: "
        + ", ".join(f"{img}.gz, {lab}.gz" for img, lab in IDX_FILES.values())
        + " (e.g. from https://yann.lecun.com/exdb/mnist/ or a mirror); pass that directory as data_dir."
    )


def load_idx_split(directory: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of an MNIST-format directory.

    Args:
      directory: folder holding ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
        ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (or the uncompressed files).
      split: ``"train"`` or ``"test"``.

    Returns:
      ``(images, labels)``: uint8 images of shape (N, H, W, 1) and int64 labels of shape (N,).

    Raises:
      ValueError: for an unknown split, a corrupt file, or images and labels of different lengths.
      FileNotFoundError: if the directory or one of the two files is missing.
    """
    if split not in IDX_FILES:
        raise ValueError(f"Unknown split {split!r} for IDX data; valid splits are 'train' and 'test'.")
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"IDX data directory {directory!r} does not exist; pass data_dir= the folder holding "
            "train-images-idx3-ubyte.gz and the three other MNIST-format files."
        )
    images_name, labels_name = IDX_FILES[split]
    images_path, labels_path = _find(directory, images_name), _find(directory, labels_name)
    images = read_idx(images_path, expected_ndim=3)
    labels = read_idx(labels_path, expected_ndim=1)
    if images.dtype != np.uint8:
        raise ValueError(f"IDX images {images_path} are {images.dtype}; expected uint8 pixels.")
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; "
            "the files belong to different datasets or splits."
        )
    return images[..., None], labels.astype(np.int64)
