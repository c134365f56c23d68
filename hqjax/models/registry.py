"""Model registry: ``get(name, num_classes=..., **kw)`` builds a model by name.

=============  ========================================  ===========  =========  =================
name           architecture                              input        classes    parameters
=============  ========================================  ===========  =========  =================
resnet20       CIFAR ResNet-20, shortcut A               32x32x3      10         0.27 M
resnet32       CIFAR ResNet-32, shortcut A               32x32x3      10         0.46 M
resnet44       CIFAR ResNet-44, shortcut A               32x32x3      10         0.66 M
resnet56       CIFAR ResNet-56, shortcut A               32x32x3      10         0.85 M
resnet110      CIFAR ResNet-110, shortcut A              32x32x3      10         1.7 M
resnet18       ImageNet ResNet-18                        224x224x3    1000       11,689,512
resnet34       ImageNet ResNet-34                        224x224x3    1000       21,797,672
resnet50       ImageNet ResNet-50 (bottleneck)           224x224x3    1000       25,557,032
mobilenet_v2   MobileNetV2, width 1.0                    224x224x3    1000       3,504,872
lenet5         ALQ LeNet-5 (20-50-500)                   28x28x1      10         431,080
vgg_small      ALQ VGG-small                             32x32x3      10         14,029,706
=============  ========================================  ===========  =========  =================

Parameters are counted as torchvision does (no BatchNorm running statistics), see
`hqjax.models.count_params`. Keyword arguments are the attributes of the model class (e.g.
``shortcut='B'``, ``small_stem=True``, ``width_multiplier=0.5``, ``dtype=jnp.bfloat16``, ``conv=``);
the attributes that define the named architecture (``depth``, ``stage_sizes``, ``block``) are fixed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from flax import linen as nn

from hqjax.models.alq_nets import LeNet5, VGGSmall
from hqjax.models.mobilenet import MobileNetV2
from hqjax.models.resnet import CifarResNet, ResNet

__all__ = ["ModelSpec", "get", "names", "spec"]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about a named model.

    Attributes:
        name: registry name.
        cls: the Flax module class.
        fixed: the class attributes that define this architecture.
        dataset: the dataset the model is meant for.
        input_shape: ``(height, width, channels)`` of one input image.
        num_classes: default number of classes.
        reference: the paper.
    """

    name: str
    cls: type[nn.Module]
    fixed: Mapping[str, Any]
    dataset: str
    input_shape: tuple[int, int, int]
    num_classes: int
    reference: str


_HE = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016"
_SANDLER = "Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018"
_ALQ = "Qu et al., Adaptive Loss-aware Quantization for Multi-bit Networks, CVPR 2020"
_CIFAR = (32, 32, 3)
_IMAGENET = (224, 224, 3)


def _cifar_resnet(depth: int) -> ModelSpec:
    return ModelSpec(f"resnet{depth}", CifarResNet, {"depth": depth}, "cifar10", _CIFAR, 10, _HE)


def _resnet(depth: int, stage_sizes: tuple[int, ...], block: str) -> ModelSpec:
    fixed = {"stage_sizes": stage_sizes, "block": block}
    return ModelSpec(f"resnet{depth}", ResNet, fixed, "imagenet", _IMAGENET, 1000, _HE)


_SPECS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        *(_cifar_resnet(d) for d in (20, 32, 44, 56, 110)),
        _resnet(18, (2, 2, 2, 2), "basic"),
        _resnet(34, (3, 4, 6, 3), "basic"),
        _resnet(50, (3, 4, 6, 3), "bottleneck"),
        ModelSpec("mobilenet_v2", MobileNetV2, {}, "imagenet", _IMAGENET, 1000, _SANDLER),
        ModelSpec("lenet5", LeNet5, {}, "mnist", (28, 28, 1), 10, _ALQ),
        ModelSpec("vgg_small", VGGSmall, {}, "cifar10", _CIFAR, 10, _ALQ),
    )
}


def names() -> tuple[str, ...]:
    """The registered model names, CIFAR ResNets first."""
    return tuple(_SPECS)


def spec(name: str) -> ModelSpec:
    """The `ModelSpec` of a registered model.

    Raises:
        ValueError: if `name` is not registered; the message lists the valid names.
    """
    if not isinstance(name, str) or name not in _SPECS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(_SPECS)}.")
    return _SPECS[name]


def get(name: str, num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """Build a registered model.

    Args:
        name: one of `names()`, e.g. ``'resnet20'``.
        num_classes: classifier outputs; defaults to the model's dataset (10 or 1000).
        **kwargs: other attributes of the model class (e.g. ``shortcut='B'`` for the CIFAR
            ResNets, ``small_stem=True`` for the ImageNet ResNets, ``width_multiplier=0.5``,
            ``dtype=jnp.bfloat16``, ``conv=MyConv``). ``act_bits=k`` (and ``act_clip``, default 1)
            replaces the ReLU by `hqjax.ops.k_bit_relu`: k-bit activations with a clipped STE (an
            option, not in the official ALQ code; spec section 1.7).

    Returns:
        The (unbound) Flax module. Call ``model.init(rng, x, train=False)`` and
        ``model.apply(variables, x, train=..., mutable=[...])``.

    Raises:
        ValueError: if `name` is not registered (the message lists the valid names) or an
            attribute value is invalid.
        TypeError: if a keyword is not an attribute of the model, or fixes its architecture
            (the message lists the accepted keywords).
    """
    s = spec(name)
    act_bits = kwargs.pop("act_bits", None)
    act_clip = kwargs.pop("act_clip", 1.0)
    if act_bits is not None:
        if "act" in kwargs:
            raise TypeError("pass either `act` or `act_bits`, not both.")
        from hqjax.ops.activation import k_bit_relu

        kwargs["act"] = k_bit_relu(act_bits, act_clip)
    # the model's own fields first, then the keyword-only `QuantNet` options (and `name`)
    own_first = sorted(dataclasses.fields(s.cls), key=lambda f: f.kw_only is True or f.name == "name")
    accepted = [
        f.name
        for f in own_first
        if f.init and f.name not in ("parent", "num_classes") and f.name not in s.fixed
    ]
    bad = [k for k in kwargs if k not in accepted]
    if bad:
        fixed = [k for k in bad if k in s.fixed]
        why = f" ({', '.join(fixed)} fixed by the name {name!r})" if fixed else ""
        raise TypeError(
            f"unexpected keyword argument(s) {bad} for model {name!r}{why}; "
            f"accepted: num_classes, {', '.join(accepted)}."
        )
    if num_classes is None:
        num_classes = s.num_classes
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"`num_classes` must be a positive int, got {num_classes!r}.")
    return s.cls(**s.fixed, num_classes=num_classes, **kwargs)
