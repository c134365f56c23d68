"""LeNet-5 (ALQ's 20-50-500 network) on MNIST from a directory of IDX files.

    python train.py --config configs/mnist_lenet5.py:hq --config.data_dir=PATH/TO/mnist
    python train.py --config configs/mnist_lenet5.py:alq --config.data_dir=PATH/TO/mnist   # ALQ, official
Use ``--config.dataset=mnist`` to read tfds' prepared MNIST instead of IDX files.
"""

from __future__ import annotations

from configs.common import base_config, with_method, with_pretrain


def get_config(method: str = "hq"):
    """LeNet-5, MNIST, SGD-nesterov with cosine lr, 20 epochs, batch 128; for 'alq' the official ALQ
    pipeline (194 epochs, Adam-style steps at lr 1e-3) after 10 epochs of full-precision training."""
    c = base_config()
    c.dataset = "mnist_idx"
    c.model = "lenet5"
    c.first_layer = "conv1"
    c.learning_rate = 0.05
    c.weight_decay = 5e-4
    c.num_epochs = 20
    c.batch_size = 128
    c.eval_batch_size = 1000
    c.checkpoint_every_epochs = 5
    c.layer_stats_every_epochs = 1
    if method == "alq":
        # the official ALQ run (spec section 1.5): 194 epochs of ALQ after full-precision pre-training
        return with_pretrain(with_method(c, "alq"), 10, learning_rate=0.05)
    # LeNet-5 has no BatchNorm: every layer keeps a per-unit FP scale (spec section 8 item 3)
    return with_method(c, method or "hq", sparsity=0.7, scaled="conv1|conv2|fc1|head")
