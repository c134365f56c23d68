"""`QuantNet`: the shared options are declared once, keyword-only; each net keeps its own fields."""

import dataclasses

import jax.numpy as jnp
import pytest
from flax import linen as nn

from hqjax import models
from hqjax.models import CifarResNet, LeNet5, MobileNetV2
from hqjax.models.layers import QuantNet, he_normal_fan_out, torch_linear_init

SHARED = {f.name for f in dataclasses.fields(QuantNet) if f.name not in ("parent", "name")}


@pytest.mark.parametrize("name", models.names())
def test_every_model_is_a_quant_net_with_keyword_only_shared_options(name):
    cls = models.spec(name).cls
    assert issubclass(cls, QuantNet)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert SHARED <= set(fields)
    assert all(fields[n].kw_only is True for n in SHARED)


def test_own_fields_stay_positional_and_shared_ones_keyword_only():
    assert (CifarResNet(32, 100).depth, CifarResNet(32, 100).num_classes) == (32, 100)
    with pytest.raises((TypeError, ValueError)):
        CifarResNet(20, 10, "A", 16, False, jnp.bfloat16)
    assert CifarResNet(dtype=jnp.bfloat16).dtype == jnp.bfloat16


def test_per_model_defaults():
    assert (CifarResNet().act, CifarResNet().kernel_init) == (nn.relu, he_normal_fan_out)
    assert MobileNetV2().act is nn.relu6 and MobileNetV2().head_init is not torch_linear_init
    assert (LeNet5().kernel_init, LeNet5().input_size) == (torch_linear_init, (28, 28))
