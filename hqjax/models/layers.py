"""Building blocks shared by the model zoo: factory types, initialisers, input checks, the
`QuantNet` base class.

Every model takes its layers as injectable factories, in the style of the Flax ImageNet example:
``conv`` (default `flax.linen.Conv`), ``dense`` (default `flax.linen.Dense`), ``norm`` (default
`flax.linen.BatchNorm`) and ``act`` (an activation function). The model binds the
architecture-independent options (computation ``dtype``, ``param_dtype``, initialisers,
``use_bias=False`` before a BatchNorm, BatchNorm momentum / epsilon / ``use_running_average``)
with `functools.partial` and calls the factory with the layer-specific ones (features, kernel size,
strides, padding, ``name``). A quantized layer can therefore replace ``conv`` or ``dense`` as long
as it accepts the keyword arguments of `flax.linen.Conv` / `flax.linen.Dense`; parameter names are
unchanged by the substitution. `QuantNet` declares these options once for every network.

BatchNorm defaults match PyTorch's (``momentum=0.1`` there, ``0.9`` in Flax's convention;
``epsilon=1e-5``), except that Flax updates the running variance with the biased batch variance
where PyTorch uses the unbiased one (a factor ``n / (n - 1)``, negligible at n = batch x H x W).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

ModuleDef = Any
"""A callable returning a Flax module (a module class or a `functools.partial` of one)."""

Activation = Callable[[jax.Array], jax.Array]
Dtype = Any
Initializer = Callable[..., jax.Array]

BN_MOMENTUM = 0.9
"""Flax BatchNorm momentum equal to PyTorch's ``momentum=0.1`` (weight of the old running value)."""

BN_EPSILON = 1e-5
"""PyTorch's BatchNorm epsilon."""

he_normal_fan_out: Initializer = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
"""He et al. (2015) normal init with ``fan_out`` (untruncated), as torchvision's ResNet and
MobileNetV2 (``kaiming_normal_(mode='fan_out', nonlinearity='relu')``). For a conv kernel
``(kh, kw, cin, cout)`` the fan-out is ``kh * kw * cout``; for a depthwise kernel
``(kh, kw, 1, c)`` it is ``kh * kw * c``, the same numbers PyTorch uses."""

torch_linear_init: Initializer = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
"""PyTorch's default `nn.Linear` / `nn.Conv2d` weight init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""


def conv_padding(kernel_size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Symmetric ``kernel_size // 2`` padding on H and W, as PyTorch's ``padding=k // 2``.

    Unlike ``'SAME'``, this pads a stride-2 conv on an even input identically on both sides, so
    PyTorch weights give the same outputs.
    """
    p = kernel_size // 2
    return ((p, p), (p, p))


def check_nhwc(
    x: Any,
    model: str,
    *,
    spatial: tuple[int, int] | None = None,
) -> None:
    """Raise `ValueError` unless `x` is a rank-4 NHWC batch (of the given spatial size, if any).

    A single image of rank 3 ``(H, W, C)`` is rejected too: add the batch axis with ``x[None]``.

    Args:
        x: the model input (an array or anything with a ``shape``).
        model: the model name used in the message.
        spatial: the required ``(H, W)``, when the architecture fixes it.
    """
    shape = tuple(getattr(x, "shape", ()))
    height, width = spatial if spatial is not None else ("height", "width")
    expected = f"(batch, {height}, {width}, channels)"
    if len(shape) != 4:
        hint = " (a single image? add the batch axis with x[None])" if len(shape) == 3 else ""
        raise ValueError(
            f"{model} expects a rank-4 NHWC input {expected}, "
            f"got shape {shape} of rank {len(shape)}{hint}."
        )
    if spatial is not None and shape[1:3] != tuple(spatial):
        raise ValueError(
            f"{model} expects NHWC input {expected}: its classifier is sized for "
            f"{spatial[0]}x{spatial[1]} images; got shape {shape}."
        )


def check_choice(value: Any, choices: Sequence[Any], model: str, field: str) -> None:
    """Raise `ValueError` unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{model}: `{field}` must be one of {list(choices)}, got {value!r}.")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of `divisor`, never going below 90% of `value`.

    The MobileNet rounding rule (Sandler et al. 2018; the TF-slim and torchvision reference code):
    round to the nearest multiple, at least `min_value` (default `divisor`), then add one more
    `divisor` if rounding lost more than 10%.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def global_avg_pool(x: jax.Array) -> jax.Array:
    """Mean over the spatial axes of an NHWC batch: ``(N, H, W, C) -> (N, C)``."""
    return jnp.mean(x, axis=(1, 2))


def bind_layers(
    conv: ModuleDef,
    dense: ModuleDef,
    norm: ModuleDef,
    *,
    train: bool,
    dtype: Dtype,
    param_dtype: Dtype,
    kernel_init: Initializer,
    head_init: Initializer,
    bn_momentum: float,
    bn_epsilon: float,
) -> tuple[ModuleDef, ModuleDef, ModuleDef]:
    """Bind the model-wide options into the factories (see the module docstring).

    Returns:
        ``(conv, dense, norm)``: ``conv`` without bias and with `kernel_init`; ``dense`` with
        `head_init` and a bias; ``norm`` in train or eval mode. All compute in `dtype` and keep
        parameters in `param_dtype`.
    """
    conv = partial(
        conv, use_bias=False, dtype=dtype, param_dtype=param_dtype, kernel_init=kernel_init
    )
    dense = partial(dense, dtype=dtype, param_dtype=param_dtype, kernel_init=head_init)
    norm = partial(
        norm,
        use_running_average=not train,
        momentum=bn_momentum,
        epsilon=bn_epsilon,
        dtype=dtype,
        param_dtype=param_dtype,
    )
    return conv, dense, norm


class QuantNet(nn.Module, kw_only=True):
    """Base of the zoo's networks: the model-wide options, keyword-only, bound by `layers`.

    A subclass declares its own fields (positional, as before) and changes a default here with a
    keyword-only field, e.g. ``act: Activation = field(default=nn.relu6, kw_only=True)``.

    Attributes:
        dtype: computation dtype (e.g. ``jnp.bfloat16``); logits are returned in float32.
        param_dtype: parameter dtype.
        conv, dense, norm, act: layer factories and activation (see the module docstring).
        kernel_init: conv kernel init; head_init: classifier kernel init.
        bn_momentum, bn_epsilon: BatchNorm options (Flax convention: weight of the old value).
    """

    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    conv: ModuleDef = nn.Conv
    dense: ModuleDef = nn.Dense
    norm: ModuleDef = nn.BatchNorm
    act: Activation = nn.relu
    kernel_init: Initializer = he_normal_fan_out
    head_init: Initializer = torch_linear_init
    bn_momentum: float = BN_MOMENTUM
    bn_epsilon: float = BN_EPSILON

    def layers(self, train: bool) -> tuple[ModuleDef, ModuleDef, ModuleDef]:
        """`bind_layers` with this model's options: ``(conv, dense, norm)``."""
        return bind_layers(
            self.conv,
            self.dense,
            self.norm,
            train=train,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=self.kernel_init,
            head_init=self.head_init,
            bn_momentum=self.bn_momentum,
            bn_epsilon=self.bn_epsilon,
        )


def logits_f32(x: jax.Array) -> jax.Array:
    """Cast logits to float32, whatever the computation dtype, so losses are computed in float32."""
    return jnp.asarray(x, jnp.float32)
