"""Model zoo: Flax Linen image classifiers, NHWC, BatchNorm statistics in ``batch_stats``.

- CIFAR ResNet-20/32/44/56/110 and ImageNet ResNet-18/34/50 (He et al. 2016): `CifarResNet`,
  `ResNet`;
- MobileNetV2 (Sandler et al. 2018): `MobileNetV2`;
- ALQ's LeNet-5 and VGG-small (Qu et al. 2020): `LeNet5`, `VGGSmall`;
- the registry: ``get(name, num_classes=..., **kw)``, `names`, `spec`;
- `count_params`.

Every model is used as ``model.apply(variables, x, train=...)``; in train mode pass
``mutable=['batch_stats']`` to get the updated running statistics. Layers are injectable factories
(``conv``, ``dense``, ``norm``, ``act``), see `hqjax.models.layers`; each model's module docstring
lists its parameter names.
"""

from hqjax.models.alq_nets import LeNet5, VGGSmall
from hqjax.models.layers import make_divisible
from hqjax.models.mobilenet import InvertedResidual, MobileNetV2
from hqjax.models.params import count_params
from hqjax.models.registry import ModelSpec, get, names, spec
from hqjax.models.resnet import BasicBlock, Bottleneck, CifarResNet, ResNet

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "CifarResNet",
    "InvertedResidual",
    "LeNet5",
    "MobileNetV2",
    "ModelSpec",
    "ResNet",
    "VGGSmall",
    "count_params",
    "get",
    "make_divisible",
    "names",
    "spec",
]
