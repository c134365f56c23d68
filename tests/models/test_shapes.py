"""Output shapes on each dataset's input, parameter names and layouts, and input errors.

Shapes only (`jax.eval_shape`): nothing is computed, so the 224x224 models cost no time.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from hqjax import models

NAMES = models.names()


def _abstract(model, x_shape, **apply_kw):
    """(variables, output) shapes for an input of shape `x_shape`."""
    x = jax.ShapeDtypeStruct(x_shape, jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False, **apply_kw), variables, x)
    return variables, out


@functools.cache
def _abstract_named(name):
    """`_abstract` of a registry model on a batch of 3 of its dataset's images."""
    return _abstract(models.get(name), (3, *models.spec(name).input_shape))


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_on_dataset_input(name):
    spec = models.spec(name)
    expected_input = {"mnist": (28, 28, 1), "cifar10": (32, 32, 3), "imagenet": (224, 224, 3)}
    assert spec.input_shape == expected_input[spec.dataset]
    _, out = _abstract_named(name)
    assert out.shape == (3, spec.num_classes)
    assert out.dtype == jnp.float32


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2"])
def test_imagenet_models_also_take_32x32(name):
    _, out = _abstract(models.get(name, num_classes=10), (2, 32, 32, 3))
    assert out.shape == (2, 10)


@pytest.mark.parametrize(
    ("small_stem", "stage_sizes"),
    [(False, (8, 4, 2, 1)), (True, (32, 16, 8, 4))],
    ids=["standard-stem", "small-stem"],
)
def test_resnet_stem_resolution_on_32x32(small_stem, stage_sizes):
    """The standard stem divides 32x32 by 4 before stage 1; the small stem keeps it."""
    model = models.get("resnet18", num_classes=10, small_stem=small_stem)
    variables, (_, state) = _abstract(model, (2, 32, 32, 3), capture_intermediates=True)
    inter = state["intermediates"]
    for s, size in enumerate(stage_sizes, start=1):
        out = inter[f"stage{s}_block1"]["__call__"][0]
        assert out.shape == (2, size, size, 64 * 2 ** (s - 1))
    kernel = variables["params"]["conv_init"]["kernel"]
    assert kernel.shape == ((3, 3, 3, 64) if small_stem else (7, 7, 3, 64))


def _tree_paths(tree):
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {jax.tree_util.keystr(path, simple=True, separator="/") for path, _ in leaves}


def test_cifar_resnet_parameter_names():
    variables, _ = _abstract(models.get("resnet20"), (1, 32, 32, 3))
    params = variables["params"]
    assert set(params) == {"conv_init", "bn_init", "head"} | {
        f"stage{s}_block{b}" for s in (1, 2, 3) for b in range(3)
    }
    assert set(params["stage2_block0"]) == {"conv1", "bn1", "conv2", "bn2"}  # option A
    assert params["stage2_block0"]["conv1"]["kernel"].shape == (3, 3, 16, 32)
    assert params["head"]["kernel"].shape == (64, 10)
    assert set(variables["batch_stats"]["stage1_block0"]["bn1"]) == {"mean", "var"}

    variables_b, _ = _abstract(models.get("resnet20", shortcut="B"), (1, 32, 32, 3))
    block = variables_b["params"]["stage2_block0"]
    assert block["shortcut_conv"]["kernel"].shape == (1, 1, 16, 32)
    assert set(block["shortcut_bn"]) == {"scale", "bias"}
    assert "shortcut_conv" not in variables_b["params"]["stage2_block1"]


def test_resnet50_parameter_names():
    variables, _ = _abstract(models.get("resnet50"), (1, 64, 64, 3))
    params = variables["params"]
    block = params["stage1_block0"]
    assert set(block) == {f"{k}{i}" for k in ("conv", "bn") for i in (1, 2, 3)} | {
        "shortcut_conv",
        "shortcut_bn",
    }
    assert block["conv3"]["kernel"].shape == (1, 1, 64, 256)
    assert params["stage2_block0"]["conv2"]["kernel"].shape == (3, 3, 128, 128)
    assert "shortcut_conv" not in params["stage4_block2"]
    assert params["head"]["kernel"].shape == (2048, 1000)


def test_mobilenet_parameter_names():
    variables, _ = _abstract(models.get("mobilenet_v2"), (1, 64, 64, 3))
    params = variables["params"]
    assert set(params["stage1_block0"]) == {"dw_conv", "dw_bn", "project_conv", "project_bn"}
    layers = {f"{kind}_{layer}" for kind in ("expand", "dw", "project") for layer in ("conv", "bn")}
    assert set(params["stage2_block0"]) == layers
    assert params["stage2_block0"]["dw_conv"]["kernel"].shape == (3, 3, 1, 96)
    assert "stage7_block0" in params and "stage4_block3" in params  # n = 1 and n = 4 rows
    assert "stage7_block1" not in params
    assert params["conv_last"]["kernel"].shape == (1, 1, 320, 1280)


def test_alq_parameter_names():
    lenet, _ = _abstract(models.get("lenet5"), (1, 28, 28, 1))
    assert _tree_paths(lenet["params"]) == {
        f"{layer}/{leaf}"
        for layer in ("conv1", "conv2", "fc1", "head")
        for leaf in ("kernel", "bias")
    }
    assert lenet["params"]["fc1"]["kernel"].shape == (800, 500)
    assert "batch_stats" not in lenet

    vgg, _ = _abstract(models.get("vgg_small"), (1, 32, 32, 3))
    params = vgg["params"]
    convs = {f"{kind}{i}" for kind in ("conv", "bn") for i in range(1, 7)}
    assert set(params) == convs | {"fc1", "bn_fc1", "fc2", "bn_fc2", "head"}
    assert params["fc1"]["kernel"].shape == (8192, 1024)
    assert set(params["conv1"]) == {"kernel"}
    assert set(params["head"]) == {"kernel", "bias"}


@pytest.mark.parametrize("name", [n for n in NAMES if n != "lenet5"])
def test_convs_before_batchnorm_have_no_bias(name):
    variables, _ = _abstract_named(name)
    paths = _tree_paths(variables["params"])
    assert not [p for p in paths if p.endswith("/bias") and "conv" in p.rsplit("/", 2)[-2]]
    assert "head/bias" in paths


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "shape", [(32, 32, 3), (4, 1, 32, 32, 3), (10,)], ids=["rank3", "rank5", "rank1"]
)
def test_wrong_rank_is_a_value_error(name, shape):
    model = models.get(name)
    with pytest.raises(ValueError, match=r"rank-4 NHWC.*got shape \(.*\) of rank"):
        model.init(jax.random.key(0), np.zeros(shape, np.float32), train=False)


def test_wrong_rank_message_names_the_model_and_hints_at_the_batch_axis():
    with pytest.raises(ValueError) as info:
        models.get("resnet20").init(jax.random.key(0), np.zeros((32, 32, 3)), train=False)
    message = str(info.value)
    assert "CIFAR ResNet-20" in message and "(32, 32, 3)" in message and "x[None]" in message


@pytest.mark.parametrize(
    ("name", "shape"),
    [("lenet5", (2, 32, 32, 1)), ("vgg_small", (2, 28, 28, 3))],
    ids=["lenet5-32x32", "vgg_small-28x28"],
)
def test_alq_models_need_their_image_size(name, shape):
    h, w = models.spec(name).input_shape[:2]
    with pytest.raises(ValueError, match=f"{h}x{w} images"):
        models.get(name).init(jax.random.key(0), np.zeros(shape, np.float32), train=False)


def test_injected_conv_replaces_every_conv_and_keeps_the_names():
    """A quantized layer is injected the same way; here a conv that records its own use."""

    class RecordingConv(nn.Conv):
        @nn.compact
        def __call__(self, x):
            self.sow("intermediates", "used", True)
            return super().__call__(x)

    act_calls = []

    def act(x):
        act_calls.append(x.shape)
        return nn.relu(x)

    plain, _ = _abstract(models.get("resnet20"), (1, 32, 32, 3))
    model = models.get("resnet20", conv=RecordingConv, act=act)
    recorded, (_, state) = _abstract(model, (1, 32, 32, 3), mutable=["intermediates"])
    assert jax.tree.map(lambda a: a.shape, recorded) == jax.tree.map(lambda a: a.shape, plain)
    used = {p.rsplit("/", 1)[0] for p in _tree_paths(state["intermediates"])}
    convs = {p.rsplit("/", 1)[0] for p in _tree_paths(plain["params"]) if "conv" in p}
    assert used == {p + "/used" for p in convs}
    # init + apply each call the activation once after the stem and twice per block.
    assert len(act_calls) == 2 * (1 + 2 * 9)
