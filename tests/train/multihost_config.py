"""The short HQ runs the multi-process tests train (5 steps of 256 examples; checkpoints every 2 steps
and at the end), loaded by ``train.py --config tests/train/multihost_config.py:MODEL``.

``lenet5``: LeNet-5 on the scikit-learn digits written as 28x28 MNIST IDX files (`write_digits_idx`;
pass their directory with ``--config.data_dir``): compiles fast, no BatchNorm. ``resnet20``: a
width-8 ResNet-20 on the 8x8 digits: BatchNorm statistics over the global batch.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from configs.default import get_config as _digits
from configs.mnist_lenet5 import get_config as _mnist_lenet5


def get_config(model: str = "lenet5"):
    """The run for `model` ('lenet5' or 'resnet20')."""
    if model == "lenet5":
        c = _mnist_lenet5("hq")
    elif model == "resnet20":
        c = _digits("hq")
        c.model_kwargs = {"width": 8}
    else:
        raise ValueError(f"model must be 'lenet5' or 'resnet20', got {model!r}.")
    c.num_epochs = 1
    c.warmup_epochs = 0
    c.batch_size = 256  # 1437 training digits: 5 steps
    c.eval_batch_size = 368  # one batch covers the 360 test digits (184 per process on 2 processes)
    c.checkpoint_every_steps = 2
    c.checkpoint_every_epochs = 1
    c.keep_checkpoints = 5
    c.log_every_steps = 1
    c.layer_stats_every_epochs = 0
    c.bn_recalibration_batches = 1
    c.progress_bar = False
    c.tensorboard = False
    return c


def write_digits_idx(directory: str | os.PathLike) -> None:
    """The digits splits as MNIST IDX files: each 8x8 image scaled to 0-255, enlarged 3x, padded to 28x28."""
    from hqjax.data import get_dataset

    for split, prefix in (("train", "train"), ("test", "t10k")):
        source = get_dataset("digits", split)
        records = [source[i] for i in range(len(source))]
        small = np.stack([r["image"][..., 0] for r in records]).astype(np.float32) * (255.0 / 16.0)
        images = np.pad(np.kron(small, np.ones((3, 3), np.float32)), ((0, 0), (2, 2), (2, 2)))
        labels = np.asarray([r["label"] for r in records])
        for name, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
            array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
            header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
            with open(os.path.join(directory, name), "wb") as f:
                f.write(header + array.tobytes())
