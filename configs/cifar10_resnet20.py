"""CIFAR-10 ResNet-20 (He et al. 2016, option A shortcuts), 200 epochs from scratch (spec section 8 item 11).

Needs tfds' cifar10 in array_record format: `tfds build cifar10 --file_format=array_record`.

    python train.py --config configs/cifar10_resnet20.py:hq --workdir runs/c10_r
"""

from __future__ import annotations

from configs.common import base_config, with_method, with_pretrain


def cifar10_config(model: str, method: str):
    """CIFAR-10 with `model`: SGD-nesterov lr 0.1 cosine, wd 5e-4, batch 128, pad-crop-flip augmentation.

    For 'alq': the model's ALQ preset (`configs.common.with_alq`; ResNet-20/56: "cifar_resnet", 225
    epochs) after 200 full-precision epochs of the recipe above."""
    c = base_config()
    c.dataset = "cifar10"
    c.model = model
    c.augment = True
    c.learning_rate = 0.1
    c.weight_decay = 5e-4
    c.warmup_epochs = 1
    c.num_epochs = 200
    c.batch_size = 128
    c.eval_batch_size = 1000
    c.checkpoint_every_epochs = 5
    c = with_method(c, method or "hq", sparsity=0.5)
    # ALQ starts from the full-precision network of this same recipe
    return with_pretrain(c, 200, learning_rate=0.1, warmup_epochs=1, weight_decay=5e-4)


def get_config(method: str = "hq"):
    """ResNet-20 on CIFAR-10 (see `cifar10_config`)."""
    return cifar10_config("resnet20", method)
