"""Residual networks (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016).

Two families, NHWC, Flax Linen, BatchNorm statistics in the ``batch_stats`` collection:

- `CifarResNet`: the 6n+2 networks of section 4.2 for 32x32 inputs (ResNet-20/32/44/56/110):
  a 3x3 conv with 16 filters, three stages of n basic blocks with 16/32/64 filters (stride 2 at
  the first block of stages 2 and 3), global average pooling, a linear classifier. Shortcut
  option A is parameter-free (stride-2 subsampling plus zero channels, padded equally on both
  sides of the channel axis); option B uses a 1x1 conv + BatchNorm projection where the shape
  changes and the identity elsewhere.
- `ResNet`: the ImageNet networks of table 1: ResNet-18/34 (basic blocks) and ResNet-50
  (bottleneck blocks, stride on the 3x3 conv as in torchvision, "ResNet v1.5"), with the standard
  stem (7x7/2 conv, BatchNorm, ReLU, 3x3/2 max-pool) or, with ``small_stem=True``, a 3x3/1 conv
  and no max-pool for 32x32 images. Projection shortcuts (option B) where the shape changes.

Parameter names (the quantized-layer substitution relies on them staying stable)::

    conv_init, bn_init                    stem conv and its BatchNorm
    stage{s}_block{b}/conv{i}, bn{i}      s = 1, 2, ... stages, b = 0, 1, ... blocks, i = 1, 2 (3)
    stage{s}_block{b}/shortcut_conv,      the projection shortcut, where there is one
                      shortcut_bn
    head                                  the classifier (kernel and bias)

Convs are ``use_bias=False`` (each is followed by a BatchNorm). Conv kernels use He normal init
with fan-out (as torchvision); the classifier uses PyTorch's default `nn.Linear` weight init with a
zero bias. ``zero_init_residual=True`` zero-initialises the scale of the last BatchNorm of every
residual block (Goyal et al. 2017), so each block starts as the identity; default off.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from hqjax.models.layers import (
    Activation,
    ModuleDef,
    QuantNet,
    check_choice,
    check_nhwc,
    conv_padding,
    global_avg_pool,
    logits_f32,
)

__all__ = ["BasicBlock", "Bottleneck", "CifarResNet", "ResNet", "shortcut_a"]

SHORTCUTS = ("A", "B")
BLOCKS = ("basic", "bottleneck")


def shortcut_a(x: jax.Array, features: int, strides: int) -> jax.Array:
    """He et al. 2016 option A shortcut: subsample by `strides`, zero-pad the channels.

    Args:
        x: NHWC input of the block.
        features: channels of the block output (at least ``x.shape[-1]``).
        strides: spatial stride of the block.

    Returns:
        ``x[:, ::strides, ::strides, :]`` with ``features - C`` zero channels, half before and
        half after the existing ones.
    """
    if strides > 1:
        x = x[:, ::strides, ::strides, :]
    extra = features - x.shape[-1]
    if extra < 0:
        raise ValueError(f"shortcut_a cannot reduce channels: {x.shape[-1]} -> {features}.")
    if extra:
        x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
    return x


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (He et al. 2016, figure 2 left).

    Attributes:
        features: output channels.
        conv: conv factory, already bound to the model-wide options (no bias, dtype, init).
        norm: BatchNorm factory, already bound to train/eval mode.
        act: activation.
        strides: stride of the first conv (and of the shortcut).
        shortcut: ``"A"`` (parameter-free) or ``"B"`` (1x1 conv + BN) where the shape changes.
        zero_init_residual: zero-init the scale of ``bn2``.
    """

    features: int
    conv: ModuleDef
    norm: ModuleDef
    act: Activation
    strides: int = 1
    shortcut: str = "B"
    zero_init_residual: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Apply the block to an NHWC batch."""
        y = self.conv(self.features, (3, 3), self.strides, padding=conv_padding(3), name="conv1")(x)
        y = self.act(self.norm(name="bn1")(y))
        y = self.conv(self.features, (3, 3), padding=conv_padding(3), name="conv2")(y)
        last_scale = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
        y = self.norm(scale_init=last_scale, name="bn2")(y)
        residual = x
        if self.strides != 1 or x.shape[-1] != self.features:
            if self.shortcut == "A":
                residual = shortcut_a(x, self.features, self.strides)
            else:
                residual = self.conv(self.features, (1, 1), self.strides, name="shortcut_conv")(x)
                residual = self.norm(name="shortcut_bn")(residual)
        return self.act(y + residual)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, residual (He et al. 2016, figure 5 right).

    The stride sits on the 3x3 conv (torchvision, "ResNet v1.5"); the parameter count is the same
    as with the stride on the first 1x1 conv.

    Attributes:
        features: bottleneck width; the block outputs ``4 * features`` channels.
        conv, norm, act, strides, zero_init_residual: as `BasicBlock` (``bn3`` is the last BN).
    """

    features: int
    conv: ModuleDef
    norm: ModuleDef
    act: Activation
    strides: int = 1
    zero_init_residual: bool = False

    expansion = 4

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Apply the block to an NHWC batch."""
        out = self.features * self.expansion
        y = self.conv(self.features, (1, 1), name="conv1")(x)
        y = self.act(self.norm(name="bn1")(y))
        y = self.conv(self.features, (3, 3), self.strides, padding=conv_padding(3), name="conv2")(y)
        y = self.act(self.norm(name="bn2")(y))
        y = self.conv(out, (1, 1), name="conv3")(y)
        last_scale = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
        y = self.norm(scale_init=last_scale, name="bn3")(y)
        residual = x
        if self.strides != 1 or x.shape[-1] != out:
            residual = self.conv(out, (1, 1), self.strides, name="shortcut_conv")(x)
            residual = self.norm(name="shortcut_bn")(residual)
        return self.act(y + residual)


class CifarResNet(QuantNet):
    """CIFAR ResNet-(6n+2) of He et al. 2016, section 4.2 (ResNet-20: 0.27 M parameters).

    Attributes:
        depth: 6n + 2 (20, 32, 44, 56, 110, ...).
        num_classes: classifier outputs.
        shortcut: ``"A"`` (zero-padding, parameter-free, the paper's CIFAR choice) or ``"B"``
            (1x1 conv + BN projection where the shape changes).
        width: filters of the first stage (16); stages use width, 2 width, 4 width.
        zero_init_residual: zero-init the last BN scale of every block.
        dtype, param_dtype, conv, dense, norm, act, kernel_init, head_init, bn_momentum,
            bn_epsilon: keyword-only, see `QuantNet`.
    """

    depth: int = 20
    num_classes: int = 10
    shortcut: str = "A"
    width: int = 16
    zero_init_residual: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.depth, int) or self.depth < 8 or (self.depth - 2) % 6:
            raise ValueError(
                "CifarResNet: `depth` must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110), "
                f"got {self.depth!r}."
            )
        check_choice(self.shortcut, SHORTCUTS, "CifarResNet", "shortcut")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """Logits for an NHWC batch.

        Args:
            x: images, shape ``(batch, height, width, channels)`` (32x32x3 for CIFAR).
            train: BatchNorm uses batch statistics and updates ``batch_stats`` (pass
                ``mutable=['batch_stats']`` to ``apply``) when True, running averages when False.

        Returns:
            float32 logits of shape ``(batch, num_classes)``.
        """
        check_nhwc(x, f"CIFAR ResNet-{self.depth}")
        conv, dense, norm = self.layers(train)
        x = jnp.asarray(x, self.dtype)
        x = conv(self.width, (3, 3), padding=conv_padding(3), name="conv_init")(x)
        x = self.act(norm(name="bn_init")(x))
        blocks_per_stage = (self.depth - 2) // 6
        for s in range(3):
            for b in range(blocks_per_stage):
                x = BasicBlock(
                    features=self.width * 2**s,
                    conv=conv,
                    norm=norm,
                    act=self.act,
                    strides=2 if s > 0 and b == 0 else 1,
                    shortcut=self.shortcut,
                    zero_init_residual=self.zero_init_residual,
                    name=f"stage{s + 1}_block{b}",
                )(x)
        x = global_avg_pool(x)
        return logits_f32(dense(self.num_classes, name="head")(x))


class ResNet(QuantNet):
    """ImageNet ResNet of He et al. 2016, table 1 (ResNet-18: 11,689,512 parameters).

    Attributes:
        stage_sizes: blocks per stage: (2, 2, 2, 2) ResNet-18, (3, 4, 6, 3) ResNet-34/50.
        block: ``"basic"`` (`BasicBlock`) or ``"bottleneck"`` (`Bottleneck`).
        num_classes: classifier outputs.
        width: filters of the stem and first stage (64); stage s uses ``width * 2**(s-1)``.
        small_stem: 3x3 stride-1 stem conv without max-pool, for 32x32 inputs.
        zero_init_residual: zero-init the last BN scale of every block.
        dtype, param_dtype, conv, dense, norm, act, kernel_init, head_init, bn_momentum,
            bn_epsilon: keyword-only, see `QuantNet`.
    """

    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    block: str = "basic"
    num_classes: int = 1000
    width: int = 64
    small_stem: bool = False
    zero_init_residual: bool = False

    def __post_init__(self) -> None:
        check_choice(self.block, BLOCKS, "ResNet", "block")
        sizes = tuple(self.stage_sizes)
        if not sizes or not all(isinstance(n, int) and n >= 1 for n in sizes):
            raise ValueError(
                f"ResNet: `stage_sizes` must be positive block counts such as (2, 2, 2, 2), "
                f"got {self.stage_sizes!r}."
            )
        super().__post_init__()

    @property
    def depth(self) -> int:
        """Number of weighted layers on the main path (18, 34, 50, ...)."""
        per_block = 2 if self.block == "basic" else 3
        return per_block * sum(self.stage_sizes) + 2

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """Logits for an NHWC batch.

        Args:
            x: images, shape ``(batch, height, width, channels)`` (224x224x3 for ImageNet, 32x32x3
                with ``small_stem=True``).
            train: as `CifarResNet`.

        Returns:
            float32 logits of shape ``(batch, num_classes)``.
        """
        check_nhwc(x, f"ResNet-{self.depth}")
        conv, dense, norm = self.layers(train)
        x = jnp.asarray(x, self.dtype)
        if self.small_stem:
            x = conv(self.width, (3, 3), padding=conv_padding(3), name="conv_init")(x)
            x = self.act(norm(name="bn_init")(x))
        else:
            x = conv(self.width, (7, 7), (2, 2), padding=conv_padding(7), name="conv_init")(x)
            x = self.act(norm(name="bn_init")(x))
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=conv_padding(3))
        for s, num_blocks in enumerate(self.stage_sizes):
            for b in range(num_blocks):
                kw = dict(
                    features=self.width * 2**s,
                    conv=conv,
                    norm=norm,
                    act=self.act,
                    strides=2 if s > 0 and b == 0 else 1,
                    zero_init_residual=self.zero_init_residual,
                    name=f"stage{s + 1}_block{b}",
                )
                if self.block == "basic":
                    x = BasicBlock(shortcut="B", **kw)(x)
                else:
                    x = Bottleneck(**kw)(x)
        x = global_avg_pool(x)
        return logits_f32(dense(self.num_classes, name="head")(x))
