"""The embedded default: a CIFAR-style ResNet-20 on scikit-learn's 8x8 digits, trained with HQ.

Runs anywhere with no download (``python train.py``); ~2 minutes on a 2-core CPU. Any method:
``python train.py --config configs/default.py:ptq`` (fp, twn, ttq, ptq, hq, hla_tq).
"""

from __future__ import annotations

from configs.common import base_config, with_method


def get_config(method: str = "hq"):
    """ResNet-20 (option A shortcuts) on digits; HQ at 50 % sparsity by default."""
    return with_method(base_config(), method or "hq", sparsity=0.5, alq_preset="mnist_channelwise")
