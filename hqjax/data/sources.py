"""Random-access data sources: ``len(source)`` records of ``{'image': uint8 HWC, 'label': int}``.

Three kinds, all usable by `grain.MapDataset.source`:

- `TfdsSource`: a tfds dataset prepared in array_record format, read with `tfds.data_source` (no
  TensorFlow needed). tfds stores images PNG/JPEG-encoded and decodes them on read with OpenCV or
  Pillow (``pip install pillow``); ImageNet records therefore come back as decoded uint8 arrays of
  varying size.
- `ArraySource`: images and labels held in memory (scikit-learn digits, IDX MNIST, or your own).
- `get_dataset` picks and builds the right one from a registry name (`hqjax.data.info`).

Every source has a stable ``repr`` (it names the data, never a memory address) and an `info`
attribute (`DatasetInfo` or None), so pipelines built from it can be checkpointed and validated.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from hqjax.data import idx
from hqjax.data.registry import DatasetInfo, info

__all__ = [
    "ArraySource",
    "SubsetSource",
    "TfdsSource",
    "get_dataset",
    "load_digits_split",
    "split_validation",
]

DIGITS_SPLIT_SEED = 0
"""`random_state` of the fixed, stratified 1,437/360 train/test split of the scikit-learn digits."""

VALIDATION_SEED = 0
"""Seed of the fixed permutation that picks the validation examples out of a training split."""


class ArraySource(Sequence):
    """In-memory source over NumPy arrays.

    Args:
      images: uint8 array (N, H, W, C).
      labels: integer array (N,).
      name: short description used in ``repr`` (keep it stable: grain checkpoints may record it).
      dataset_info: the dataset's `DatasetInfo`, if it is a registered one.
      ids: optional (N,) array of original record indices (e.g. into the full scikit-learn digits).

    Examples:
      >>> src = ArraySource(np.zeros((2, 4, 4, 1), np.uint8), np.array([3, 7]), name="toy")
      >>> len(src), src[1]["label"], src[1]["image"].shape
      (2, 7, (4, 4, 1))
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        name: str = "arrays",
        dataset_info: DatasetInfo | None = None,
        ids: np.ndarray | None = None,
    ) -> None:
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim != 4:
            raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}.")
        if labels.shape != (len(images),):
            raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}.")
        self.images = images
        self.labels = labels.astype(np.int64, copy=False)
        self.ids = None if ids is None else np.asarray(ids)
        self.name = name
        self.info = dataset_info

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: Any) -> dict[str, Any]:
        index = int(index)
        return {"image": self.images[index], "label": int(self.labels[index])}

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.images.shape[1:]))
        return f"ArraySource(name={self.name!r}, len={len(self)}, image={shape} {self.images.dtype})"


class TfdsSource(Sequence):
    """Adapter over a `tfds.data_source` split: keeps only ``image`` and ``label``.

    Args:
      data_source: what ``tfds.data_source(name, split=...)`` returned.
      name: the tfds dataset name.
      split: the tfds split it reads.
      dataset_info: the dataset's `DatasetInfo`.
    """

    def __init__(self, data_source: Any, *, name: str, split: str, dataset_info: DatasetInfo | None) -> None:
        self.data_source = data_source
        self.name = name
        self.split = split
        self.info = dataset_info

    def __len__(self) -> int:
        return len(self.data_source)

    def __getitem__(self, index: Any) -> dict[str, Any]:
        try:
            record = self.data_source[int(index)]
        except ImportError as e:
            raise ImportError(
                f"Reading {self.name!r} with tfds needs an image decoder: tfds stores images PNG/JPEG-"
                "encoded and decodes them with OpenCV or Pillow. Install one: `pip install pillow` "
                f"(or `pip install opencv-python-headless`). ({e})"
            ) from e
        image = np.asarray(record["image"])
        if image.ndim == 2:
            image = image[..., None]
        return {"image": image, "label": int(record["label"])}

    def __repr__(self) -> str:
        return f"TfdsSource(name={self.name!r}, split={self.split!r}, len={len(self)})"


def load_digits_split(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One split of scikit-learn's 8x8 digits (1,797 real images, 10 classes), fixed and stratified.

    The split is ``train_test_split(test_size=360, stratify=labels, random_state=0)``: 1,437 training
    and 360 test images, every class in the same proportion in both.

    Args:
      split: ``"train"`` or ``"test"``.

    Returns:
      ``(images, labels, ids)``: uint8 images (N, 8, 8, 1) with values 0..16 (scaled to [0, 1] by the
      pipeline, ``pixel_max=16``), int64 labels (N,), and the indices into ``load_digits()``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test"):
        raise ValueError(f"Unknown split {split!r} for 'digits'; valid splits are 'train' and 'test'.")
    digits = load_digits()
    labels = digits.target.astype(np.int64)
    train_ids, test_ids = train_test_split(
        np.arange(len(labels)), test_size=360, stratify=labels, random_state=DIGITS_SPLIT_SEED
    )
    ids = np.sort(train_ids if split == "train" else test_ids)
    images = digits.images[ids].astype(np.uint8)[..., None]
    return images, labels[ids], ids


def _tfds_split(meta: DatasetInfo, split: str) -> str:
    """Map our split names to the dataset's tfds split (``test`` is ImageNet's ``validation``)."""
    if split == "test":
        return meta.test_split
    return split


def _tfds_missing_message(name: str, data_dir: str | None, reason: str) -> str:
    """How to prepare a tfds dataset, for error messages."""
    root = data_dir if data_dir else "the default tfds data_dir ($TFDS_DATA_DIR or ~/tensorflow_datasets)"
    flag = f" --data_dir={data_dir}" if data_dir else ""
    extra = ""
    if name == "imagenet2012":
        extra = (
            " ImageNet cannot be downloaded by tfds: first put ILSVRC2012_img_train.tar and "
            "ILSVRC2012_img_val.tar in <data_dir>/downloads/manual (or pass --manual_dir)."
        )
    return (
        f"tfds dataset {name!r} is not available in array_record format in {root} ({reason}). "
        f"Prepare it once with `tfds build {name} --file_format=array_record{flag}` and pass that "
        f"data_dir.{extra}"
    )


def _open_tfds(meta: DatasetInfo, split: str, data_dir: str | None) -> TfdsSource:
    """`tfds.data_source` for a registered dataset, with clear errors for missing data."""
    import tensorflow_datasets as tfds

    assert meta.tfds_name is not None
    tfds_split = _tfds_split(meta, split)
    try:
        source = tfds.data_source(meta.tfds_name, split=tfds_split, data_dir=data_dir, download=False)
    except Exception as e:  # tfds raises KeyError/NotImplementedError/AssertionError... for missing data
        try:
            builder = tfds.builder(meta.tfds_name, data_dir=data_dir)
            prepared = builder.is_prepared()
            file_format = str(getattr(builder.info, "file_format", None))
        except Exception:  # the builder itself cannot be made: report the original error
            raise e from None
        if not prepared:
            raise FileNotFoundError(
                _tfds_missing_message(meta.tfds_name, data_dir, f"nothing prepared at {builder.data_dir}")
            ) from e
        if "array_record" not in file_format.lower():
            raise FileNotFoundError(
                _tfds_missing_message(
                    meta.tfds_name, data_dir, f"it is prepared as {file_format} at {builder.data_dir}, "
                    "which has no random access; rebuild it or convert it with `tfds convert_format`"
                )
            ) from e
        raise
    return TfdsSource(source, name=meta.tfds_name, split=tfds_split, dataset_info=meta)


def get_dataset(name: str, split: str, *, data_dir: str | os.PathLike | None = None) -> Sequence:
    """A random-access source of ``{'image': uint8 (H, W, C), 'label': int}`` records.

    Args:
      name: a registry name (see `hqjax.data.DATASETS`): ``cifar10``, ``cifar100``, ``mnist``,
        ``fashion_mnist``, ``imagenet2012`` (tfds, array_record format), ``mnist_idx`` and
        ``fashion_mnist_idx`` (a directory of IDX files), ``digits`` (scikit-learn, no files).
      split: ``"train"`` or ``"test"`` (``"test"`` is ImageNet's validation set). tfds datasets also
        accept any tfds split string, e.g. ``"train[:90%]"`` or ``"validation"``.
      data_dir: the tfds data directory (default: tfds' own), or the directory holding the IDX files
        (required for ``*_idx``). Ignored for ``digits``.

    Returns:
      A source with ``len()`` and integer indexing (`TfdsSource` or `ArraySource`); its ``info``
      attribute is the dataset's `DatasetInfo`.

    Raises:
      ValueError: unknown dataset or split, or corrupt IDX files.
      FileNotFoundError: the dataset is not prepared / the files are missing; the message says how to
        prepare it (``tfds build NAME --file_format=array_record --data_dir=...``).

    Examples:
      >>> src = get_dataset("digits", "test")
      >>> len(src), src[0]["image"].shape, src[0]["image"].dtype
      (360, (8, 8, 1), dtype('uint8'))
    """
    meta = info(name)
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a non-empty string such as 'train' or 'test', got {split!r}.")
    data_dir = None if data_dir is None else os.fspath(data_dir)
    if meta.source == "sklearn":
        images, labels, ids = load_digits_split(split)
        return ArraySource(images, labels, name=f"digits/{split}", dataset_info=meta, ids=ids)
    if meta.source == "idx":
        if not data_dir:
            raise ValueError(
                f"Dataset {name!r} reads IDX files: pass data_dir= the directory holding "
                "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
                "t10k-labels-idx1-ubyte.gz."
            )
        images, labels = idx.load_idx_split(data_dir, split)
        return ArraySource(images, labels, name=f"{name}/{split}", dataset_info=meta)
    return _open_tfds(meta, split, data_dir)


class SubsetSource(Sequence):
    """The records ``indices`` of another source, in that order (a view: nothing is copied).

    Args:
      source: any random-access source.
      indices: int array of positions in `source`.
      name: short description used in ``repr``.
    """

    def __init__(self, source: Sequence, indices: np.ndarray, *, name: str) -> None:
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.name = name
        self.info = getattr(source, "info", None)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: Any) -> dict[str, Any]:
        return self.source[int(self.indices[int(index)])]

    def __repr__(self) -> str:
        return f"SubsetSource(name={self.name!r}, len={len(self)}, of={self.source!r})"


def split_validation(
    source: Sequence, size: int, *, seed: int = VALIDATION_SEED
) -> tuple[Sequence, Sequence]:
    """Hold `size` examples of a training source out as a validation split.

    The held-out examples are the first `size` of one fixed permutation of the source (seed
    `VALIDATION_SEED`, independent of the run's seed), so every run, method and seed of a study tunes
    on the same validation images and trains on the same remainder. The two parts are disjoint and
    together cover `source` exactly once; the test split is never involved.

    Args:
      source: the training source.
      size: number of validation examples, in [1, len(source) - 1].
      seed: seed of the permutation.

    Returns:
      ``(train, validation)``, two `SubsetSource` views, each in increasing index order.

    Raises:
      ValueError: `size` out of range.

    Examples:
      >>> src = ArraySource(np.zeros((10, 2, 2, 1), np.uint8), np.arange(10), name="toy")
      >>> train, val = split_validation(src, 3)
      >>> len(train), len(val), sorted(set(train.indices) | set(val.indices)) == list(range(10))
      (7, 3, True)
    """
    n = len(source)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 0 < size < n:
        raise ValueError(
            f"A validation split of {size!r} examples is not possible for a training split of {n}; "
            f"choose an integer in [1, {n - 1}] (e.g. --config.validation_split=10000 for MNIST)."
        )
    perm = np.random.default_rng(seed).permutation(n)
    val_ids, train_ids = np.sort(perm[:size]), np.sort(perm[size:])
    name = getattr(source, "name", type(source).__name__)
    return (
        SubsetSource(source, train_ids, name=f"{name} minus {size} validation"),
        SubsetSource(source, val_ids, name=f"{name} validation {size}"),
    )
