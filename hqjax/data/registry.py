"""Dataset registry: the metadata every part of the input pipeline and the training program needs.

One frozen `DatasetInfo` per dataset name. `image_shape` is the shape of one *model input* (HWC) after
preprocessing; for ImageNet the stored JPEGs have variable sizes and are cropped to it. `mean`/`std`
are per-channel statistics of pixel values scaled to [0, 1] (divided by `pixel_max`).
"""

from __future__ import annotations

import dataclasses

__all__ = ["AUGMENTS", "DATASETS", "DatasetInfo", "info"]


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Metadata of one dataset.

    Attributes:
      name: registry name (what `get_dataset` and `info` take).
      source: where the records come from: ``"tfds"`` (`tfds.data_source`, array_record files),
        ``"sklearn"`` (embedded in scikit-learn) or ``"idx"`` (a directory of IDX files).
      num_classes: number of labels; labels are ints in ``[0, num_classes)``.
      image_shape: (H, W, C) of a preprocessed image, i.e. of one model input.
      train_size: number of training examples.
      test_size: number of evaluation examples (the ``"test"`` split; ImageNet's validation set).
      mean: per-channel mean of pixels scaled to [0, 1].
      std: per-channel standard deviation of pixels scaled to [0, 1].
      pixel_max: the largest stored pixel value (255 for 8-bit images, 16 for scikit-learn digits);
        pixels are divided by it before `mean`/`std` are applied.
      variable_size: True when stored images have varying sizes (ImageNet) and are resized/cropped.
      default_augment: the training augmentation `make_loader` uses unless told otherwise
        (one of `AUGMENTS`).
      tfds_name: the tfds dataset name (``None`` unless `source` is ``"tfds"``).
      test_split: the split name holding the evaluation data in the underlying storage.
    """

    name: str
    source: str
    num_classes: int
    image_shape: tuple[int, int, int]
    train_size: int
    test_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pixel_max: float = 255.0
    variable_size: bool = False
    default_augment: str = "none"
    tfds_name: str | None = None
    test_split: str = "test"


AUGMENTS: tuple[str, ...] = ("none", "crop_flip", "crop_flip_reflect", "inception")
"""Training augmentations: ``none``; ``crop_flip`` (zero-pad 4, random crop back to size, random
horizontal flip; the CIFAR recipe); ``crop_flip_reflect`` (the same with reflect padding);
``inception`` (random-resized crop, scale (0.08, 1), ratio (3/4, 4/3), plus flip; the ImageNet recipe)."""

_MNIST_MEAN, _MNIST_STD = (0.1307,), (0.3081,)
_FASHION_MEAN, _FASHION_STD = (0.2860,), (0.3530,)

_REGISTRY: dict[str, DatasetInfo] = {
    info_.name: info_
    for info_ in (
        DatasetInfo(
            "cifar10", "tfds", 10, (32, 32, 3), 50_000, 10_000,
            mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
            default_augment="crop_flip", tfds_name="cifar10",
        ),
        DatasetInfo(
            "cifar100", "tfds", 100, (32, 32, 3), 50_000, 10_000,
            mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
            default_augment="crop_flip", tfds_name="cifar100",
        ),
        DatasetInfo(
            "mnist", "tfds", 10, (28, 28, 1), 60_000, 10_000,
            mean=_MNIST_MEAN, std=_MNIST_STD, tfds_name="mnist",
        ),
        DatasetInfo(
            "fashion_mnist", "tfds", 10, (28, 28, 1), 60_000, 10_000,
            mean=_FASHION_MEAN, std=_FASHION_STD, tfds_name="fashion_mnist",
        ),
        DatasetInfo(
            "imagenet2012", "tfds", 1000, (224, 224, 3), 1_281_167, 50_000,
            mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
            variable_size=True, default_augment="inception", tfds_name="imagenet2012",
            test_split="validation",
        ),
        DatasetInfo(
            "mnist_idx", "idx", 10, (28, 28, 1), 60_000, 10_000, mean=_MNIST_MEAN, std=_MNIST_STD,
        ),
        DatasetInfo(
            "fashion_mnist_idx", "idx", 10, (28, 28, 1), 60_000, 10_000,
            mean=_FASHION_MEAN, std=_FASHION_STD,
        ),
        # Statistics of the fixed 1,437-image training split (see `sources.load_digits_split`).
        DatasetInfo(
            "digits", "sklearn", 10, (8, 8, 1), 1_437, 360, mean=(0.3054,), std=(0.3761,), pixel_max=16.0,
        ),
    )
}

DATASETS: tuple[str, ...] = tuple(_REGISTRY)
"""Every name `get_dataset` and `info` accept."""


def info(name: str) -> DatasetInfo:
    """Metadata of the dataset `name`.

    Args:
      name: one of `DATASETS` (``cifar10``, ``cifar100``, ``mnist``, ``fashion_mnist``,
        ``imagenet2012``, ``mnist_idx``, ``fashion_mnist_idx``, ``digits``).

    Returns:
      The dataset's `DatasetInfo`.

    Raises:
      ValueError: for an unknown name; the message lists the valid ones.

    Examples:
      >>> info("cifar10").num_classes, info("cifar10").image_shape
      (10, (32, 32, 3))
      >>> info("digits").train_size, info("digits").test_size
      (1437, 360)
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(
            f"Unknown dataset {name!r}; valid names are {', '.join(map(repr, DATASETS))}. "
            "Use 'mnist_idx' to read MNIST from a directory of IDX files and 'digits' for the "
            "scikit-learn digits that need no download."
        )
    return _REGISTRY[name]
