"""ImageNet ResNet-18 (standard stem), 90 epochs (spec section 8 items 10-11).

Needs tfds' imagenet2012 in array_record format (download the archives by hand, then
`tfds build imagenet2012 --file_format=array_record --manual_dir=DIR`).

    python train.py --config configs/imagenet_resnet18.py:ptq --workdir runs/imagenet_resnet18_ptq
    python train.py --config configs/imagenet_resnet18.py:alq --workdir runs/imagenet_resnet18_alq
"""

from __future__ import annotations

from configs.common import base_config, with_method, with_pretrain


def imagenet_config(model: str, method: str, sparsity: float):
    """ImageNet with `model`: SGD-nesterov, lr 0.1 cosine with 5 warm-up epochs, wd 1e-4, batch 256,
    random-resized crop + flip, bf16 compute; PTQ/HQ prune to `sparsity`. For 'alq': the model's ALQ
    preset (`configs.common.with_alq`; ResNet-18/34/50: "resnet18") after 90 full-precision epochs of
    the recipe above."""
    c = base_config()
    c.dataset = "imagenet2012"
    c.model = model
    c.num_classes = 1000
    c.augment = True
    c.batch_size = 256
    c.eval_batch_size = 500
    c.learning_rate = 0.1
    c.weight_decay = 1e-4
    c.warmup_epochs = 5
    c.num_epochs = 90
    c.compute_dtype = "bfloat16"
    c.checkpoint_every_epochs = 1
    c.log_every_steps = 100
    c.layer_stats_every_epochs = 1
    c = with_method(c, method or "ptq", sparsity=sparsity)
    # ALQ starts from the full-precision network of this same recipe
    return with_pretrain(c, 90, learning_rate=0.1, warmup_epochs=5, weight_decay=1e-4)


def get_config(method: str = "ptq"):
    """ResNet-18: 90 % zeros, what the PTQ paper's 939 KB (49x) ResNet-18 implies (spec B7). For 'alq':
    the official pipeline (5 rounds, I_max 8, pr 0.15, top_k 0.0005, lr 2e-4, batch 256; 180 epochs)
    after 90 epochs of full-precision SGD-nesterov (lr 0.1, 5 warm-up epochs, wd 1e-4)."""
    return imagenet_config("resnet18", method, sparsity=0.9)
