"""A small ResNet (CIFAR ResNet-20, option A) on MNIST from a directory of IDX files.

    python train.py --config configs/mnist_resnet20.py:hla_tq --config.data_dir=PATH/TO/mnist
"""

from __future__ import annotations

from configs.common import base_config, with_method


def get_config(method: str = "hq"):
    """ResNet-20 on 28x28x1 MNIST, 15 epochs, batch 128."""
    c = base_config()
    c.dataset = "mnist_idx"
    c.model = "resnet20"
    c.learning_rate = 0.1
    c.num_epochs = 15
    c.eval_batch_size = 1000
    c.checkpoint_every_epochs = 5
    c.layer_stats_every_epochs = 1
    return with_method(c, method or "hq", sparsity=0.5, alq_preset="mnist_channelwise")
