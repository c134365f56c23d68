"""ImageNet ResNet-50 (bottleneck), 90 epochs (spec section 8 items 10-11).

Needs tfds' imagenet2012 in array_record format (download the archives by hand, then
`tfds build imagenet2012 --file_format=array_record --manual_dir=DIR`).

    python train.py --config configs/imagenet_resnet50.py:ptq --workdir runs/imagenet_resnet50_ptq
"""

from __future__ import annotations

from configs.imagenet_resnet18 import imagenet_config


def get_config(method: str = "ptq"):
    """ResNet-50: 85 % zeros (PTQ's ~30x ResNet-50 operating point, spec section 3.3)."""
    return imagenet_config("resnet50", method, sparsity=0.85)
