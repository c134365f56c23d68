"""Registry: names, defaults, and clear errors for bad names, keywords and values."""

import jax
import jax.numpy as jnp
import pytest

from hqjax import models
from hqjax.models import CifarResNet, MobileNetV2, ResNet

ALL_NAMES = (
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "resnet18",
    "resnet34",
    "resnet50",
    "mobilenet_v2",
    "lenet5",
    "vgg_small",
)


def _out_shape(model, input_shape):
    x = jax.ShapeDtypeStruct((2, *input_shape), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    return jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x).shape


def test_names_lists_every_model():
    assert models.names() == ALL_NAMES


@pytest.mark.parametrize("name", ALL_NAMES)
def test_get_builds_the_named_architecture(name):
    model = models.get(name)
    spec = models.spec(name)
    assert isinstance(model, spec.cls)
    for key, value in spec.fixed.items():
        assert getattr(model, key) == value
    assert model.num_classes == spec.num_classes


def test_num_classes_overrides_the_dataset_default():
    model = models.get("resnet20", num_classes=100)
    assert _out_shape(model, (32, 32, 3)) == (2, 100)


@pytest.mark.parametrize("bad", ["resnet19", "ResNet20", "", None, "vgg"])
def test_unknown_name_lists_valid_names(bad):
    with pytest.raises(ValueError, match="unknown model") as info:
        models.get(bad)
    for name in ALL_NAMES:
        assert name in str(info.value)


def test_unknown_keyword_is_a_clear_type_error():
    with pytest.raises(TypeError, match=r"unexpected keyword.*'widht'.*accepted:.*width"):
        models.get("resnet20", widht=32)


@pytest.mark.parametrize(
    ("name", "kwargs", "fixed"),
    [
        ("resnet20", {"depth": 56}, "depth"),
        ("resnet18", {"block": "bottleneck"}, "block"),
        ("resnet50", {"stage_sizes": (1, 1, 1, 1)}, "stage_sizes"),
    ],
    ids=["resnet20-depth", "resnet18-block", "resnet50-stage_sizes"],
)
def test_architecture_keywords_are_fixed_by_the_name(name, kwargs, fixed):
    with pytest.raises(TypeError, match=f"{fixed} fixed by the name '{name}'"):
        models.get(name, **kwargs)


def test_model_options_pass_through():
    model = models.get("resnet56", shortcut="B", dtype=jnp.bfloat16, zero_init_residual=True)
    assert (model.depth, model.shortcut, model.dtype) == (56, "B", jnp.bfloat16)
    assert models.get("resnet18", small_stem=True).small_stem
    assert models.get("mobilenet_v2", width_multiplier=0.5).width_multiplier == 0.5


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: CifarResNet(depth=21), "6n \\+ 2"),
        (lambda: CifarResNet(depth=2), "6n \\+ 2"),
        (lambda: CifarResNet(shortcut="C"), "shortcut.*\\['A', 'B'\\]"),
        (lambda: ResNet(block="wide"), "block.*\\['basic', 'bottleneck'\\]"),
        (lambda: ResNet(stage_sizes=()), "stage_sizes"),
        (lambda: ResNet(stage_sizes=(2, 0)), "stage_sizes"),
        (lambda: MobileNetV2(width_multiplier=0.0), "width_multiplier"),
        (lambda: MobileNetV2(dropout_rate=1.0), "dropout_rate"),
        (lambda: models.get("lenet5", num_classes=0), "num_classes"),
    ],
    ids=[
        "depth-21",
        "depth-2",
        "shortcut-C",
        "block-wide",
        "no-stages",
        "empty-stage",
        "width-0",
        "dropout-1",
        "num_classes-0",
    ],
)
def test_invalid_attribute_values_raise_value_error(build, match):
    with pytest.raises(ValueError, match=match):
        build()
