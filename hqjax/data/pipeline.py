"""grain input pipelines: sharded, shuffled, augmented, batched NumPy batches with checkpointable state.

`train_loader` and `eval_loader` turn a source (`get_dataset`) into a `grain.IterDataset`
(`make_loader` picks one of them with its ``train`` flag). ``iter(loader)`` gives a
`grain.DatasetIterator`; its ``get_state()`` is a small JSON-serialisable dict and ``set_state(state)``
on an iterator of an identically built loader resumes exactly where the first one stopped (mid-epoch
included). With orbax, save it with ``grain.checkpoint.CheckpointSave(iterator)`` (one file per
process) or store ``get_state()`` as JSON.

Pipeline (train): this host's shard (a contiguous, equal-sized slice of the source; the last
``len % shard_count`` records are unused) -> shuffle of the shard, a new permutation every epoch ->
repeat (`num_epochs`, None = forever) -> random augmentation with a per-record generator derived from
the seed, the shard and the record's position -> batch with ``drop_remainder=True`` -> normalise.
Batches run across epoch boundaries (a partial batch only ever is dropped at the very end).

With ``host_sharding='interleaved'`` (what `hqjax.train` uses) the training order instead comes from
one shuffle of the whole source, seeded as a single host's would be, and host ``i`` reads records
``[i*B, (i+1)*B)`` of every global batch of ``B*shard_count`` records. Each host still reads only its
own records, and the global batches are the same for any number of hosts: a run on 2 hosts x 4 devices
trains the same model as one on 1 host x 8 devices.

Pipeline (eval): this host's shard (contiguous; shard sizes differ by at most one) padded to the same
number of batches on every host -> deterministic preprocessing -> batch -> normalise. Batches carry a
``mask`` (bool, False on padding) so that every example counts exactly once across all hosts.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import grain
import jax
import numpy as np

from hqjax._checks import check_choice, check_int
from hqjax.data import augment as aug
from hqjax.data.registry import AUGMENTS, DatasetInfo, info
from hqjax.data.sources import ArraySource

__all__ = [
    "Collate",
    "EvalTransform",
    "TrainTransform",
    "eval_loader",
    "local_batch_size",
    "make_loader",
    "num_batches",
    "train_loader",
]

HOST_SHARDINGS = ("contiguous", "interleaved")
_RESIZE_RATIO = 256 / 224  # ImageNet evaluation: resize the shorter side to 256 for a 224 crop


def _fixed_size(image: np.ndarray, size: tuple[int, int], variable_size: bool) -> np.ndarray:
    """Variable-size images (ImageNet): resize the shorter side and centre-crop to `size`."""
    if not variable_size:
        return image
    return aug.resize_center_crop(image, resize_size=round(size[0] * _RESIZE_RATIO), crop_size=size[0])


@dataclasses.dataclass(frozen=True)
class TrainTransform(grain.transforms.RandomMap):
    """Training augmentation of one record (a picklable grain `RandomMap`).

    Attributes:
      augment: one of `AUGMENTS`.
      image_size: (height, width) of the output image.
      variable_size: stored images vary in size; non-``inception`` augmentations first resize and
        centre-crop them to `image_size`.
      padding: padding of the ``crop_flip`` augmentations.
    """

    augment: str
    image_size: tuple[int, int]
    variable_size: bool = False
    padding: int = 4

    def random_map(self, element: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """Augment ``element['image']`` with the record's generator `rng`."""
        image = element["image"]
        if self.augment == "inception":
            image = aug.random_resized_crop(image, rng, self.image_size)
            image = aug.random_flip_left_right(image, rng)
        else:
            image = _fixed_size(image, self.image_size, self.variable_size)
            if self.augment in ("crop_flip", "crop_flip_reflect"):
                mode = "reflect" if self.augment == "crop_flip_reflect" else "constant"
                image = aug.random_crop(image, rng, self.image_size, self.padding, mode)
                image = aug.random_flip_left_right(image, rng)
        return {**element, "image": image}


@dataclasses.dataclass(frozen=True)
class EvalTransform(grain.transforms.Map):
    """Deterministic evaluation preprocessing (ImageNet: resize 256 + centre crop 224; else none).

    Attributes:
      image_size: (height, width) of the output image.
      variable_size: stored images vary in size and are resized and centre-cropped.
    """

    image_size: tuple[int, int]
    variable_size: bool = False

    def map(self, element: dict[str, Any]) -> dict[str, Any]:
        """Preprocess ``element['image']``."""
        return {**element, "image": _fixed_size(element["image"], self.image_size, self.variable_size)}


@dataclasses.dataclass(frozen=True)
class Collate:
    """Stack records into a batch and normalise: the `batch_fn` of the pipelines.

    Attributes:
      mean: per-channel mean of pixels scaled to [0, 1].
      std: per-channel std of pixels scaled to [0, 1].
      pixel_max: the stored value that maps to 1.0.
      normalize: if False, images are only scaled to [0, 1].
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    pixel_max: float = 255.0
    normalize: bool = True

    def __call__(self, records: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
        """``{'image': float32 (B, H, W, C), 'label': int32 (B,)}`` plus ``mask`` (bool) if present."""
        images = np.stack([r["image"] for r in records])
        if self.normalize:
            images = aug.normalize(images, self.mean, self.std, self.pixel_max)
        else:
            images = images.astype(np.float32) / np.float32(self.pixel_max)
        batch = {"image": images, "label": np.asarray([r["label"] for r in records], np.int32)}
        if "mask" in records[0]:
            batch["mask"] = np.asarray([r["mask"] for r in records], bool)
        return batch


class _PaddedShard(Sequence):
    """Records ``[start, stop)`` of `source`, padded to `length` with masked copies of the first one."""

    def __init__(self, source: Sequence, start: int, stop: int, length: int) -> None:
        self.source, self.start, self.stop, self.length = source, start, stop, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: Any) -> dict[str, Any]:
        index = int(index)
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a padded shard of {self.length}.")
        real = index < self.stop - self.start
        # Padding repeats this shard's first record (record 0 when the shard is empty) with mask=False.
        position = self.start + index if real else min(self.start, len(self.source) - 1)
        return {**self.source[position], "mask": real}

    def __repr__(self) -> str:
        return f"PaddedShard({self.source!r}, start={self.start}, stop={self.stop}, len={self.length})"


class _HostSlices(grain.MapDataset):
    """Host `index` of `count`'s records of `parent`: records ``[index*B, (index+1)*B)`` of every run of
    ``B*count`` consecutive records (B = `batch_size`), i.e. its slice of every global batch."""

    def __init__(self, parent: grain.MapDataset, index: int, count: int, batch_size: int) -> None:
        super().__init__(parent)
        self._index, self._count, self._batch = index, count, batch_size

    def __len__(self) -> int:
        return len(self._parent) // (self._count * self._batch) * self._batch

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        step, offset = divmod(int(index), self._batch)
        return self._parent[(step * self._count + self._index) * self._batch + offset]

    def __str__(self) -> str:
        return f"HostSlices(index={self._index}, count={self._count}, batch_size={self._batch})"


# The loaders name their arguments bare in messages ("batch_size must be >= 1"), like the config fields.
_int_arg = functools.partial(check_int, quote=False, hint=None)


def _check_flags_parsed() -> None:
    """grain 0.2.18 worker processes read an absl flag, which fails before flags are parsed."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        raise RuntimeError(
            "worker_count > 0 needs parsed absl flags (grain 0.2.18 reads one when it starts workers, "
            "google/grain#1355): run your program with absl.app.run(main) (train.py does), or call "
            "absl.flags.FLAGS.mark_as_parsed() before iterating; or use worker_count=0."
        )


def local_batch_size(
    global_batch_size: int, *, process_count: int | None = None, local_device_count: int | None = None
) -> int:
    """The per-host batch for a global batch, checking that it divides evenly.

    Args:
      global_batch_size: batch summed over all hosts.
      process_count: number of hosts (default ``jax.process_count()``).
      local_device_count: devices per host the host batch is split over (default
        ``jax.local_device_count()``).

    Returns:
      ``global_batch_size // process_count``.

    Raises:
      ValueError: if the batch is <= 0 or does not divide over hosts and devices.

    Examples:
      >>> local_batch_size(256, process_count=2, local_device_count=4)
      128
    """
    process_count = jax.process_count() if process_count is None else process_count
    local_device_count = jax.local_device_count() if local_device_count is None else local_device_count
    _int_arg(global_batch_size, "batch_size", minimum=1)
    if global_batch_size % (process_count * local_device_count):
        raise ValueError(
            f"batch_size={global_batch_size} must be divisible by the number of devices "
            f"({process_count} hosts x {local_device_count} devices = {process_count * local_device_count}); "
            f"use a multiple of {process_count * local_device_count}."
        )
    return global_batch_size // process_count


def _ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for non-negative ints."""
    return -(-a // b)


def num_batches(num_examples: int, batch_size: int, *, train: bool, shard_count: int = 1) -> int:
    """Batches per epoch on each host, as `train_loader` and `eval_loader` produce them.

    Args:
      num_examples: ``len(source)``.
      batch_size: per-host batch size.
      train: training (full batches of this host's equal shard) or evaluation (padded to cover all).
      shard_count: number of hosts.

    Returns:
      ``(num_examples // shard_count) // batch_size`` for training; for evaluation
      ``ceil(ceil(num_examples / shard_count) / batch_size)`` (the same on every host).

    Examples:
      >>> num_batches(10_000, 128, train=False, shard_count=3), num_batches(50_000, 128, train=True)
      (27, 390)
    """
    if train:
        return (num_examples // shard_count) // batch_size
    return _ceil_div(_ceil_div(num_examples, shard_count), batch_size)


def _resolve_info(source: Sequence, dataset: str | DatasetInfo | None) -> DatasetInfo:
    """The DatasetInfo from `dataset` (a name or an info) or the source's ``info`` attribute."""
    if isinstance(dataset, DatasetInfo):
        return dataset
    if dataset is not None:
        return info(dataset)
    meta = getattr(source, "info", None)
    if not isinstance(meta, DatasetInfo):
        raise ValueError(
            "The loader needs the dataset's metadata (mean/std, image size): pass dataset='cifar10' "
            "(a registry name) or a DatasetInfo, or a source made by hqjax.data.get_dataset."
        )
    return meta


def _resolve_augment(augment: bool | str | None, meta: DatasetInfo) -> str:
    """None/True -> the dataset's default augmentation; False -> 'none'; a name is checked."""
    if augment is None or augment is True:
        return meta.default_augment
    if augment is False:
        return "none"
    return check_choice(augment, AUGMENTS, "augment")


def _check_train_args(seed: Any, num_epochs: Any, host_sharding: Any) -> tuple[int, int | None]:
    """The checked `seed` and `num_epochs` of a training pipeline (and a known `host_sharding`)."""
    seed = _int_arg(seed, "seed", below=2**32)
    num_epochs = _int_arg(num_epochs, "num_epochs", minimum=1, allow_none=True)
    check_choice(host_sharding, HOST_SHARDINGS, "host_sharding")
    return seed, num_epochs


@dataclasses.dataclass(frozen=True)
class _Setup:
    """The checked arguments both pipelines share."""

    source: Sequence
    meta: DatasetInfo
    batch_size: int
    shard_index: int
    shard_count: int
    worker_count: int
    worker_buffer_size: int
    read_options: grain.ReadOptions
    collate: Collate

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.meta.image_shape[0], self.meta.image_shape[1])


def _setup(
    source: Sequence, meta: DatasetInfo, *, batch_size: Any, shard_index: Any, shard_count: Any,
    worker_count: Any, worker_buffer_size: int, normalize: bool, local_device_count: Any, read_threads: Any,
) -> _Setup:
    """Check the shared arguments; shards default to this jax process (`grain.ShardByJaxProcess`)."""
    shard_count = jax.process_count() if shard_count is None else shard_count
    shard_index = jax.process_index() if shard_index is None else shard_index
    shard_count = _int_arg(shard_count, "shard_count", minimum=1)
    shard_index = _int_arg(shard_index, "shard_index", below=shard_count)
    batch_size = _int_arg(batch_size, "batch_size", minimum=1)
    worker_count = _int_arg(worker_count, "worker_count")
    if local_device_count is not None:
        devices = _int_arg(local_device_count, "local_device_count", minimum=1)
        if batch_size % devices:
            raise ValueError(
                f"batch_size={batch_size} (per host) must be divisible by local_device_count={devices} to "
                f"split over this host's devices; use a multiple of {devices}."
            )
    if len(source) == 0:
        raise ValueError(f"The source {source!r} is empty.")
    if read_threads is None:
        read_threads = 0 if isinstance(source, ArraySource) else 16
    read_options = grain.ReadOptions(num_threads=_int_arg(read_threads, "read_threads"))
    collate = Collate(meta.mean, meta.std, meta.pixel_max, normalize)
    return _Setup(source, meta, batch_size, shard_index, shard_count, worker_count, worker_buffer_size,
                  read_options, collate)


def _shard_seed(seed: int, shard_index: int, shard_count: int) -> int:
    """The shuffle and augmentation seed of one shard of a contiguous split."""
    return int(np.random.SeedSequence([seed, shard_index, shard_count]).generate_state(1)[0])


def _contiguous_train(
    setup: _Setup, transform: TrainTransform, seed: int, num_epochs: int | None
) -> grain.MapDataset:
    """This host's contiguous shard, reshuffled (and re-augmented) every epoch."""
    n, batch, count, index = len(setup.source), setup.batch_size, setup.shard_count, setup.shard_index
    per_shard = n // count
    if batch > per_shard:
        raise ValueError(
            f"batch_size={batch} (per host) exceeds the {per_shard} training examples of each of "
            f"the {count} shards ({n} in all); use a smaller batch."
        )
    start = index * per_shard  # equal contiguous shards; the remainder n % shard_count is unused
    # Each shard gets its own seed, so hosts do not draw identical augmentations at the same position.
    ds = grain.MapDataset.source(setup.source)[start : start + per_shard]
    ds = ds.seed(_shard_seed(seed, index, count))
    return ds.shuffle().repeat(num_epochs).random_map(transform)


def _interleaved_train(
    setup: _Setup, transform: TrainTransform, seed: int, num_epochs: int | None
) -> grain.MapDataset:
    """One shuffle of the whole source; this host's slice of every global batch."""
    n, batch, count = len(setup.source), setup.batch_size, setup.shard_count
    if batch * count > n:
        raise ValueError(
            f"The global batch of {batch * count} ({count} hosts x {batch}) "
            f"exceeds the {n} training examples; use a smaller batch."
        )
    # The seed of a single host's shard, so one host reads exactly what the contiguous mode reads.
    ds = grain.MapDataset.source(setup.source).seed(_shard_seed(seed, 0, 1))
    ds = ds.shuffle().repeat(num_epochs).random_map(transform)
    return _HostSlices(ds, setup.shard_index, count, batch)


def _eval_records(setup: _Setup) -> grain.MapDataset:
    """This host's contiguous shard (sizes differ by at most one), padded to the same number of batches
    on every host, preprocessed deterministically."""
    n, count, index = len(setup.source), setup.shard_count, setup.shard_index
    base, extra = divmod(n, count)
    start = index * base + min(index, extra)
    stop = start + base + (1 if index < extra else 0)
    steps = num_batches(n, setup.batch_size, train=False, shard_count=count)
    padded = _PaddedShard(setup.source, start, stop, steps * setup.batch_size)
    return grain.MapDataset.source(padded).map(EvalTransform(setup.image_size, setup.meta.variable_size))


def _batched(records: grain.MapDataset, setup: _Setup) -> grain.IterDataset:
    """Batch and normalise the records, in grain worker processes when asked to."""
    it = records.to_iter_dataset(setup.read_options)
    it = it.batch(setup.batch_size, drop_remainder=True, batch_fn=setup.collate)
    if setup.worker_count > 0:
        _check_flags_parsed()
        it = it.mp_prefetch(grain.MultiprocessingOptions(
            num_workers=setup.worker_count, per_worker_buffer_size=setup.worker_buffer_size
        ))
    return it


def train_loader(
    source: Sequence, *, batch_size: int, seed: int = 0, shard_index: int | None = None,
    shard_count: int | None = None, num_epochs: int | None = None, worker_count: int = 0,
    augment: bool | str | None = None, dataset: str | DatasetInfo | None = None, normalize: bool = True,
    local_device_count: int | None = None, read_threads: int | None = None, worker_buffer_size: int = 2,
    host_sharding: str = "contiguous",
) -> grain.IterDataset:
    """A training pipeline of NumPy batches for one host: shuffled every epoch, augmented, full batches.

    Args:
      source: a random-access source of ``{'image', 'label'}`` records (`get_dataset`).
      batch_size: examples per batch *on this host* (the global batch / hosts, see `local_batch_size`).
      seed: seed of the shuffle and of the augmentation, in [0, 2**32). Same seed, same batches.
      shard_index: this host's shard (default ``jax.process_index()``, like `grain.ShardByJaxProcess`).
      shard_count: number of shards (default ``jax.process_count()``).
      num_epochs: epochs to produce (None: forever). Batches run across epoch boundaries.
      worker_count: grain worker processes (0: in this process). Batches and checkpointed states depend
        on it (each worker batches its own slice): restore with the same value. Workers are spawned:
        the script needs an ``if __name__ == "__main__":`` guard and parsed absl flags (``absl.app.run``).
      augment: one of `AUGMENTS`; None or True: the dataset's default (``crop_flip`` for CIFAR,
        ``inception`` for ImageNet, ``none`` otherwise); False: ``none``.
      dataset: registry name or `DatasetInfo` for mean/std and image size (default: ``source.info``).
      normalize: standardise with the dataset's mean/std (else only scale pixels to [0, 1]).
      local_device_count: if given, `batch_size` must be divisible by it (the batch is split over
        this host's devices).
      read_threads: threads reading records (default 0 for in-memory sources, 16 for tfds).
      worker_buffer_size: batches buffered per worker process.
      host_sharding: ``'contiguous'`` (each host shuffles its own contiguous block of the source) or
        ``'interleaved'`` (one shuffle of the whole source, independent of `shard_count`; each host
        reads its `batch_size` slice of every global batch).

    Returns:
      A `grain.IterDataset`. Each ``iter()`` yields dicts ``{'image': float32 (B, H, W, C),
      'label': int32 (B,)}``; the iterator's ``get_state()``/``set_state()`` checkpoint it.

    Raises:
      ValueError: bad batch size (<= 0, larger than a shard, or for ``'interleaved'`` a global batch
        larger than the source, not divisible by `local_device_count`), bad shard index/count, seed or
        `num_epochs`, unknown augmentation or `host_sharding`, an empty source or no dataset metadata.
      RuntimeError: ``worker_count > 0`` before absl flags are parsed.

    Examples:
      >>> from hqjax.data import get_dataset
      >>> batch = next(iter(train_loader(get_dataset("digits", "train"), batch_size=32, seed=0)))
      >>> batch["image"].shape, batch["image"].dtype, batch["label"].shape, batch["label"].dtype
      ((32, 8, 8, 1), dtype('float32'), (32,), dtype('int32'))
    """
    meta = _resolve_info(source, dataset)
    augment_name = _resolve_augment(augment, meta)
    seed, num_epochs = _check_train_args(seed, num_epochs, host_sharding)
    setup = _setup(
        source, meta, batch_size=batch_size, shard_index=shard_index, shard_count=shard_count,
        worker_count=worker_count, worker_buffer_size=worker_buffer_size, normalize=normalize,
        local_device_count=local_device_count, read_threads=read_threads,
    )
    transform = TrainTransform(augment_name, setup.image_size, meta.variable_size)
    records = _interleaved_train if host_sharding == "interleaved" else _contiguous_train
    return _batched(records(setup, transform, seed, num_epochs), setup)


def eval_loader(
    source: Sequence, *, batch_size: int, shard_index: int | None = None, shard_count: int | None = None,
    dataset: str | DatasetInfo | None = None, normalize: bool = True, local_device_count: int | None = None,
    read_threads: int | None = None, worker_count: int = 0, worker_buffer_size: int = 2,
) -> grain.IterDataset:
    """An evaluation pipeline of NumPy batches for one host: one pass in order, every example of the
    split exactly once across hosts, the last batch padded and masked.

    Args:
      source: a random-access source of ``{'image', 'label'}`` records (`get_dataset`).
      batch_size: examples per batch *on this host* (the global batch / hosts, see `local_batch_size`).
      shard_index: this host's shard (default ``jax.process_index()``); shards are contiguous and
        differ in size by at most one.
      shard_count: number of shards (default ``jax.process_count()``). Every host gets the same
        number of batches, `num_batches` with ``train=False``.
      dataset: registry name or `DatasetInfo` for mean/std and image size (default: ``source.info``).
      normalize: standardise with the dataset's mean/std (else only scale pixels to [0, 1]).
      local_device_count: if given, `batch_size` must be divisible by it (the batch is split over
        this host's devices).
      read_threads: threads reading records (default 0 for in-memory sources, 16 for tfds).
      worker_count: grain worker processes (0: in this process); see `train_loader`.
      worker_buffer_size: batches buffered per worker process.

    Returns:
      A `grain.IterDataset`. Each ``iter()`` yields dicts ``{'image': float32 (B, H, W, C),
      'label': int32 (B,), 'mask': bool (B,)}``; the mask is False on padding (padding repeats a real
      record). Images get the deterministic preprocessing only (ImageNet: resize 256, centre crop 224).

    Raises:
      ValueError: bad batch size (<= 0, not divisible by `local_device_count`), bad shard index or
        count, an empty source or no dataset metadata.
      RuntimeError: ``worker_count > 0`` before absl flags are parsed.

    Examples:
      >>> from hqjax.data import get_dataset
      >>> loader = eval_loader(get_dataset("digits", "test"), batch_size=128, shard_index=0, shard_count=1)
      >>> [int(b["mask"].sum()) for b in loader]
      [128, 128, 104]
    """
    setup = _setup(
        source, _resolve_info(source, dataset), batch_size=batch_size, shard_index=shard_index,
        shard_count=shard_count, worker_count=worker_count, worker_buffer_size=worker_buffer_size,
        normalize=normalize, local_device_count=local_device_count, read_threads=read_threads,
    )
    return _batched(_eval_records(setup), setup)


def make_loader(
    source: Sequence, *, batch_size: int, train: bool, seed: int = 0, shard_index: int | None = None,
    shard_count: int | None = None, num_epochs: int | None = None, worker_count: int = 0,
    augment: bool | str | None = None, dataset: str | DatasetInfo | None = None, normalize: bool = True,
    local_device_count: int | None = None, read_threads: int | None = None, worker_buffer_size: int = 2,
    host_sharding: str = "contiguous",
) -> grain.IterDataset:
    """`train_loader` (``train=True``) or `eval_loader` (``train=False``), with the same batches.

    Takes the arguments of both. For evaluation, `seed`, `num_epochs` and `host_sharding` are still
    checked but unused and `augment` is ignored.

    Examples:
      >>> from hqjax.data import get_dataset
      >>> loader = make_loader(get_dataset("digits", "train"), batch_size=32, train=True, seed=0)
      >>> next(iter(loader))["image"].shape
      (32, 8, 8, 1)
    """
    shared = dict(
        batch_size=batch_size, shard_index=shard_index, shard_count=shard_count, dataset=dataset,
        normalize=normalize, local_device_count=local_device_count, read_threads=read_threads,
        worker_count=worker_count, worker_buffer_size=worker_buffer_size,
    )
    if train:
        return train_loader(source, seed=seed, num_epochs=num_epochs, augment=augment,
                            host_sharding=host_sharding, **shared)
    _check_train_args(seed, num_epochs, host_sharding)
    return eval_loader(source, **shared)
