"""CIFAR-10 ResNet-56 (He et al. 2016, option A shortcuts), 200 epochs from scratch (spec section 8 item 11).

Needs tfds' cifar10 in array_record format: `tfds build cifar10 --file_format=array_record`.

    python train.py --config configs/cifar10_resnet56.py:hq --workdir runs/cifar10_resnet56_hq
"""

from __future__ import annotations

from configs.cifar10_resnet20 import cifar10_config


def get_config(method: str = "hq"):
    """ResNet-56 on CIFAR-10, with the ResNet-20 config's training recipe."""
    return cifar10_config("resnet56", method)
