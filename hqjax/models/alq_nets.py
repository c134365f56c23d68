"""The two small networks of ALQ (Qu et al., "Adaptive Loss-aware Quantization for Multi-bit
Networks", CVPR 2020): LeNet-5 for MNIST and VGG-small for CIFAR-10.

Layer sizes, order and options follow the official PyTorch code (``lenet5.py`` and ``vgg.py`` of
github.com/zqu1992/ALQ), written here independently in Flax, NHWC:

LeNet-5 (Caffe-style 20-50-500, 28x28x1 input, 431,080 parameters):
    conv 5x5, 20 filters, stride 1, no padding (28 -> 24), bias -> max-pool 2x2/2 (-> 12) -> ReLU
    -> conv 5x5, 50 filters, no padding (-> 8), bias -> max-pool 2x2/2 (-> 4) -> ReLU
    -> flatten (4 * 4 * 50 = 800) -> fc 500, bias -> ReLU -> fc 10, bias.
    No BatchNorm, no dropout. (ReLU after the max-pool as in the official code; the two commute.)

VGG-small (32x32x3 input; 6 convs 128-128-256-256-512-512, FC 8192-1024-1024-10):
    [conv 3x3/1 pad 1 -> BN -> ReLU, conv 3x3/1 pad 1 -> max-pool 2x2/2 -> BN -> ReLU]
    for 128, 256 and 512 filters (32 -> 16 -> 8 -> 4), flatten (4 * 4 * 512 = 8192)
    -> fc 1024 -> BN -> ReLU -> fc 1024 -> BN -> ReLU -> fc 10.
    BatchNorm after every conv and FC except the last; on the second conv of each pair the
    max-pool comes before the BatchNorm, as in the official code. PyTorch BN momentum 0.1
    (Flax 0.9), affine.

The official convs and FCs all keep PyTorch's default bias, also where a BatchNorm follows (it is
redundant there). Here such biases are off by default (14,029,706 parameters) and
``bias_before_bn=True`` restores them (14,033,546 parameters, the official count). Neither network
has a custom init in the official code, so both default to PyTorch's default weight init
(U(-1/sqrt(fan_in), 1/sqrt(fan_in))), with zero biases.

The flatten is over (H, W, C) here and over (C, H, W) in PyTorch: the fc1 kernel rows are permuted
relative to a PyTorch checkpoint.

Parameter names: LeNet-5 ``conv1, conv2, fc1, head``; VGG-small ``conv1..conv6`` with ``bn1..bn6``,
``fc1, bn_fc1, fc2, bn_fc2, head``.
"""

from __future__ import annotations

from dataclasses import field

import jax
import jax.numpy as jnp
from flax import linen as nn

from hqjax.models.layers import (
    Initializer,
    QuantNet,
    check_nhwc,
    conv_padding,
    logits_f32,
    torch_linear_init,
)

__all__ = ["LeNet5", "VGGSmall"]


def _max_pool_2x2(x: jax.Array) -> jax.Array:
    return nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")


class LeNet5(QuantNet):
    """ALQ's LeNet-5 for 28x28 MNIST (20-50-500-10, 431,080 parameters).

    Attributes:
        num_classes: classifier outputs.
        dtype, param_dtype, conv, dense, norm, act, kernel_init, head_init, bn_momentum,
            bn_epsilon: keyword-only, see `QuantNet`; ``kernel_init`` (convs and fc1) defaults
            to `torch_linear_init`; ``norm`` and the BatchNorm options are accepted for a uniform
            interface and unused (the network has no BatchNorm).
        input_size: the ``(H, W)`` the classifier is sized for, keyword-only.
    """

    num_classes: int = 10
    kernel_init: Initializer = field(default=torch_linear_init, kw_only=True)
    input_size: tuple[int, int] = field(default=(28, 28), kw_only=True)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """Logits for an NHWC batch.

        Args:
            x: images, shape ``(batch, 28, 28, channels)`` (1 channel for MNIST).
            train: accepted for a uniform interface; the network has no train-time behaviour.

        Returns:
            float32 logits of shape ``(batch, num_classes)``.
        """
        check_nhwc(x, "LeNet5", spatial=self.input_size)
        conv, dense, _ = self.layers(train)
        x = jnp.asarray(x, self.dtype)
        x = conv(20, (5, 5), padding="VALID", use_bias=True, name="conv1")(x)
        x = self.act(_max_pool_2x2(x))
        x = conv(50, (5, 5), padding="VALID", use_bias=True, name="conv2")(x)
        x = self.act(_max_pool_2x2(x))
        x = x.reshape((x.shape[0], -1))
        x = self.act(dense(500, kernel_init=self.kernel_init, name="fc1")(x))
        return logits_f32(dense(self.num_classes, name="head")(x))


class VGGSmall(QuantNet):
    """ALQ's VGG-small for 32x32 CIFAR-10 (6 convs 128-128-256-256-512-512, FC 8192-1024-1024-10).

    Attributes:
        num_classes: classifier outputs.
        bias_before_bn: give the convs and FCs followed by a BatchNorm a bias, as the official
            code does (redundant with the BatchNorm shift; default off).
        dtype, param_dtype, conv, dense, norm, act, kernel_init, head_init, bn_momentum,
            bn_epsilon: keyword-only, see `QuantNet`; ``kernel_init`` (convs, fc1 and fc2)
            defaults to `torch_linear_init`.
        input_size: as `LeNet5`.
    """

    num_classes: int = 10
    bias_before_bn: bool = False
    kernel_init: Initializer = field(default=torch_linear_init, kw_only=True)
    input_size: tuple[int, int] = field(default=(32, 32), kw_only=True)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """Logits for an NHWC batch.

        Args:
            x: images, shape ``(batch, 32, 32, channels)`` (3 channels for CIFAR-10).
            train: BatchNorm uses batch statistics and updates ``batch_stats`` (pass
                ``mutable=['batch_stats']``) when True, running averages when False.

        Returns:
            float32 logits of shape ``(batch, num_classes)``.
        """
        check_nhwc(x, "VGGSmall", spatial=self.input_size)
        conv, dense, norm = self.layers(train)
        bias = self.bias_before_bn
        x = jnp.asarray(x, self.dtype)
        for i, features in enumerate((128, 128, 256, 256, 512, 512), start=1):
            x = conv(features, (3, 3), padding=conv_padding(3), use_bias=bias, name=f"conv{i}")(x)
            if i % 2 == 0:
                x = _max_pool_2x2(x)
            x = self.act(norm(name=f"bn{i}")(x))
        x = x.reshape((x.shape[0], -1))
        for i in (1, 2):
            x = dense(1024, use_bias=bias, kernel_init=self.kernel_init, name=f"fc{i}")(x)
            x = self.act(norm(name=f"bn_fc{i}")(x))
        return logits_f32(dense(self.num_classes, name="head")(x))
