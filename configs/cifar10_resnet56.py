"""CIFAR-10 ResNet-56 (He et al. 2016, option A shortcuts), 200 epochs from scratch (spec section 8 item 11).

Needs tfds' cifar10 in array_record format: `tfds build cifar10 --file_format=array_record`.

    python train.py --config configs/cifar10_resnet56.py:hq --workdir runs/c10_r
"""

from __future__ import annotations

from configs.common import base_config, with_method


def get_config(method: str = "hq"):
    """SGD-nesterov lr 0.1 cosine, wd 5e-4, batch 128, pad-crop-flip augmentation."""
    c = base_config()
    c.dataset = "cifar10"
    c.model = "resnet56"
    c.augment = True
    c.learning_rate = 0.1
    c.weight_decay = 5e-4
    c.warmup_epochs = 1
    c.num_epochs = 200
    c.batch_size = 128
    c.eval_batch_size = 1000
    c.checkpoint_every_epochs = 5
    return with_method(c, method or "hq", sparsity=0.5)
