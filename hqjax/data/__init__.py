"""Input pipelines: tfds (array_record, no TensorFlow) / IDX / scikit-learn sources, grain loaders.

- `get_dataset(name, split, data_dir=...)`: a random-access source of ``{'image': uint8 HWC,
  'label': int}`` records; `info(name)`: the dataset's metadata (`DatasetInfo`); `DATASETS`: the names.
- `train_loader(source, batch_size=..., seed=...)`: a sharded, shuffled, augmented `grain.IterDataset`
  of NumPy batches ``{'image': float32 NHWC, 'label': int32}`` whose iterators checkpoint with
  ``get_state()``/``set_state()``; `eval_loader(source, batch_size=...)`: one ordered pass over the
  split, padded batches with a ``mask``; `make_loader(..., train=...)`: either of the two.
- `hqjax.data.augment`: the NumPy augmentations (pad-crop, flip, random-resized crop, resize).
- `hqjax.data.idx`: the IDX (MNIST) file reader.

Examples:
  >>> import hqjax.data as hd
  >>> loader = hd.eval_loader(hd.get_dataset("digits", "test"), batch_size=128)
  >>> [int(b["mask"].sum()) for b in loader]
  [128, 128, 104]
"""

from hqjax.data import augment, idx
from hqjax.data.idx import load_idx_split, read_idx
from hqjax.data.pipeline import (
    Collate,
    EvalTransform,
    TrainTransform,
    eval_loader,
    local_batch_size,
    make_loader,
    num_batches,
    train_loader,
)
from hqjax.data.registry import AUGMENTS, DATASETS, DatasetInfo, info
from hqjax.data.sources import (
    ArraySource,
    SubsetSource,
    TfdsSource,
    get_dataset,
    load_digits_split,
    split_validation,
)

__all__ = [
    "AUGMENTS",
    "DATASETS",
    "ArraySource",
    "SubsetSource",
    "Collate",
    "DatasetInfo",
    "EvalTransform",
    "TfdsSource",
    "TrainTransform",
    "augment",
    "eval_loader",
    "get_dataset",
    "idx",
    "info",
    "load_digits_split",
    "load_idx_split",
    "local_batch_size",
    "make_loader",
    "num_batches",
    "read_idx",
    "split_validation",
    "train_loader",
]
