"""ALQ's VGG-small on CIFAR-10 (the official ALQ CIFAR-10 network, spec section 1.1).

Needs tfds' cifar10 in array_record format: `tfds build cifar10 --file_format=array_record`.

    python train.py --config configs/cifar10_vgg_small.py:alq --workdir runs/c10_vgg_alq
    python train.py --config configs/cifar10_vgg_small.py:hq --workdir runs/c10_vgg_hq
"""

from __future__ import annotations

from configs.cifar10_resnet20 import cifar10_config
from configs.common import with_pretrain


def get_config(method: str = "alq"):
    """VGG-small on CIFAR-10. For 'alq': the official pipeline (5 rounds, pr 0.4, top_k 0.002; 225
    epochs) after 100 epochs of full-precision Adam (the official pre-training starts at an effective
    lr of 1e-2); other methods as `configs.cifar10_resnet20`."""
    c = cifar10_config("vgg_small", method or "alq")
    c.first_layer = "conv1/"  # VGG-small's first convolution (the base config names ResNet's conv_init)
    return with_pretrain(c, 100, optimizer="adam", learning_rate=1e-2, weight_decay=0.0, warmup_epochs=0)
