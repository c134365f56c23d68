"""MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
CVPR 2018).

The ImageNet network of table 2: a 3x3/2 stem conv with 32 filters, 17 inverted residual blocks
with the standard ``(t, c, n, s)`` settings, a 1x1 conv to 1280 channels, global average pooling
and a linear classifier; ReLU6 everywhere except after the projection conv (linear bottleneck).
3,504,872 parameters for 1000 classes at width 1.0 (torchvision counting: conv kernels,
BatchNorm scale and bias, classifier kernel and bias).

The width multiplier scales every channel count, rounded with `make_divisible(..., 8)`; the last
conv keeps 1280 channels for multipliers <= 1 and is scaled above 1, as in the reference code.
Dropout before the classifier (torchvision uses 0.2) is off by default (``dropout_rate=0.0``) so
that a training step needs no ``dropout`` rng; with ``dropout_rate > 0`` pass
``rngs={'dropout': key}`` to ``apply`` in train mode.

Parameter names::

    conv_init, bn_init                        stem
    stage{s}_block{b}/expand_conv, expand_bn  1x1 expansion (absent when t == 1)
                      dw_conv, dw_bn          3x3 depthwise
                      project_conv, project_bn 1x1 linear projection
    conv_last, bn_last                        1x1 conv to 1280 (scaled) channels
    head                                      classifier (kernel and bias)

with ``s = 1..7`` the rows of table 2 and ``b = 0, 1, ...`` the blocks of a row. Convs have no
bias; conv kernels use He normal fan-out init and the classifier N(0, 0.01) with a zero bias
(torchvision).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field

import jax
import jax.numpy as jnp
from flax import linen as nn

from hqjax.models.layers import (
    Activation,
    Initializer,
    ModuleDef,
    QuantNet,
    check_nhwc,
    conv_padding,
    global_avg_pool,
    logits_f32,
    make_divisible,
)

__all__ = ["InvertedResidual", "MobileNetV2", "MOBILENET_V2_SETTINGS"]

MOBILENET_V2_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    # t (expansion), c (output channels), n (blocks), s (stride of the first block)
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
"""Table 2 of Sandler et al. 2018."""


class InvertedResidual(nn.Module):
    """Expand (1x1), depthwise 3x3, project (1x1, linear); residual when the shape is kept.

    Attributes:
        features: output channels.
        expand_ratio: hidden channels are ``round(in_channels * expand_ratio)``.
        conv, norm: factories already bound to the model-wide options.
        act: activation (ReLU6).
        strides: stride of the depthwise conv.
    """

    features: int
    expand_ratio: int
    conv: ModuleDef
    norm: ModuleDef
    act: Activation
    strides: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Apply the block to an NHWC batch."""
        in_features = x.shape[-1]
        hidden = int(round(in_features * self.expand_ratio))
        y = x
        if self.expand_ratio != 1:
            y = self.conv(hidden, (1, 1), name="expand_conv")(y)
            y = self.act(self.norm(name="expand_bn")(y))
        y = self.conv(
            hidden,
            (3, 3),
            self.strides,
            padding=conv_padding(3),
            feature_group_count=hidden,
            name="dw_conv",
        )(y)
        y = self.act(self.norm(name="dw_bn")(y))
        y = self.conv(self.features, (1, 1), name="project_conv")(y)
        y = self.norm(name="project_bn")(y)
        if self.strides == 1 and in_features == self.features:
            y = x + y
        return y


class MobileNetV2(QuantNet):
    """MobileNetV2 of Sandler et al. 2018 (3,504,872 parameters at width 1.0, 1000 classes).

    Attributes:
        num_classes: classifier outputs.
        width_multiplier: scales every channel count (0.35 ... 1.4).
        dropout_rate: dropout before the classifier in train mode (0 disables it).
        settings: the inverted residual rows ``(t, c, n, s)``.
        last_channels: channels of the last 1x1 conv at width <= 1.
        dtype, param_dtype, conv, dense, norm, act, kernel_init, head_init, bn_momentum,
            bn_epsilon: keyword-only, see `QuantNet`; here ``act`` defaults to ReLU6 and
            ``head_init`` to N(0, 0.01).
    """

    num_classes: int = 1000
    width_multiplier: float = 1.0
    dropout_rate: float = 0.0
    settings: Sequence[tuple[int, int, int, int]] = MOBILENET_V2_SETTINGS
    last_channels: int = 1280
    act: Activation = field(default=nn.relu6, kw_only=True)
    head_init: Initializer = field(default=nn.initializers.normal(0.01), kw_only=True)

    def __post_init__(self) -> None:
        if not self.width_multiplier > 0:
            raise ValueError(
                f"MobileNetV2: `width_multiplier` must be > 0, got {self.width_multiplier!r}."
            )
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(
                f"MobileNetV2: `dropout_rate` must lie in [0, 1), got {self.dropout_rate!r}."
            )
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """Logits for an NHWC batch.

        Args:
            x: images, shape ``(batch, height, width, channels)`` (224x224x3 for ImageNet).
            train: BatchNorm uses batch statistics and updates ``batch_stats`` (pass
                ``mutable=['batch_stats']``) and dropout is active when True.

        Returns:
            float32 logits of shape ``(batch, num_classes)``.
        """
        check_nhwc(x, "MobileNetV2")
        conv, dense, norm = self.layers(train)
        w = self.width_multiplier
        x = jnp.asarray(x, self.dtype)
        stem = make_divisible(32 * w, 8)
        x = conv(stem, (3, 3), (2, 2), padding=conv_padding(3), name="conv_init")(x)
        x = self.act(norm(name="bn_init")(x))
        for s, (t, c, n, stride) in enumerate(self.settings):
            for b in range(n):
                x = InvertedResidual(
                    features=make_divisible(c * w, 8),
                    expand_ratio=t,
                    conv=conv,
                    norm=norm,
                    act=self.act,
                    strides=stride if b == 0 else 1,
                    name=f"stage{s + 1}_block{b}",
                )(x)
        last = make_divisible(self.last_channels * max(1.0, w), 8)
        x = conv(last, (1, 1), name="conv_last")(x)
        x = self.act(norm(name="bn_last")(x))
        x = global_avg_pool(x)
        if self.dropout_rate > 0:
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return logits_f32(dense(self.num_classes, name="head")(x))
