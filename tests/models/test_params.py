"""Parameter counts against the published numbers (shapes only: `jax.eval_shape`, no compute).

"params" is the torchvision count (conv kernels, BatchNorm scale and bias, dense kernel and bias);
"with stats" adds the BatchNorm running mean and variance (the ``batch_stats`` collection).
"""

import jax
import jax.numpy as jnp
import pytest

from hqjax import models
from hqjax.models import count_params


def _abstract_variables(model, input_shape):
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)


# name: (params, params + batch_stats); the ImageNet and MobileNetV2 ones are torchvision counts.
COUNTS = {
    "resnet20": (269_722, 271_098),
    "resnet32": (464_154, 466_426),
    "resnet44": (658_586, 661_754),
    "resnet56": (853_018, 857_082),
    "resnet110": (1_727_962, 1_736_058),
    "resnet18": (11_689_512, 11_699_112),
    "resnet34": (21_797_672, 21_814_696),
    "resnet50": (25_557_032, 25_610_152),
    "mobilenet_v2": (3_504_872, 3_538_984),
    "lenet5": (431_080, 431_080),
    "vgg_small": (14_029_706, 14_037_386),
}


@pytest.mark.parametrize("name", list(COUNTS))
def test_parameter_counts(name):
    variables = _abstract_variables(models.get(name), models.spec(name).input_shape)
    params, with_stats = COUNTS[name]
    assert count_params(variables) == params
    assert count_params(variables, include_batch_stats=True) == with_stats


@pytest.mark.parametrize(
    ("name", "published"),
    [("resnet20", "0.27"), ("resnet56", "0.85"), ("resnet110", "1.7")],
    ids=["resnet20", "resnet56", "resnet110"],
)
def test_cifar_counts_match_the_paper(name, published):
    """He et al. 2016, table 6 (option A), in millions to two significant digits."""
    n = count_params(_abstract_variables(models.get(name), (32, 32, 3)))
    assert f"{n / 1e6:.2g}" == published


def test_batch_stats_add_two_numbers_per_batchnorm_channel():
    variables = _abstract_variables(models.get("resnet18"), (224, 224, 3))
    scales = [
        leaf.size
        for path, leaf in jax.tree_util.tree_leaves_with_path(variables["params"])
        if path[-1].key == "scale"
    ]
    extra = count_params(variables, include_batch_stats=True) - count_params(variables)
    assert extra == 2 * sum(scales) == 9_600


@pytest.mark.parametrize(
    ("name", "kwargs", "params"),
    [
        ("resnet20", {"shortcut": "B"}, 272_474),  # + 1x1 conv + BN at the two stage changes
        ("resnet56", {"shortcut": "B"}, 855_770),
        ("vgg_small", {"bias_before_bn": True}, 14_033_546),  # the official ALQ count
        ("resnet18", {"small_stem": True}, 11_689_512 - 64 * 3 * (49 - 9)),
        ("resnet50", {"num_classes": 10}, 25_557_032 - 2048 * 990 - 990),
    ],
    ids=["resnet20-B", "resnet56-B", "vgg_small-bias", "resnet18-small_stem", "resnet50-10cls"],
)
def test_option_counts(name, kwargs, params):
    model = models.get(name, **kwargs)
    assert count_params(_abstract_variables(model, models.spec(name).input_shape)) == params


@pytest.mark.parametrize(
    ("width", "stem", "last"),
    [(0.5, 16, 1280), (0.75, 24, 1280), (1.0, 32, 1280), (1.4, 48, 1792)],
    ids=["w0.5", "w0.75", "w1.0", "w1.4"],
)
def test_mobilenet_width_multiplier(width, stem, last):
    model = models.get("mobilenet_v2", width_multiplier=width)
    params = _abstract_variables(model, (224, 224, 3))["params"]
    assert params["conv_init"]["kernel"].shape == (3, 3, 3, stem)
    assert params["conv_last"]["kernel"].shape[-1] == last
    assert params["head"]["kernel"].shape == (last, 1000)
    # Every channel count is a multiple of 8.
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if path[-1].key == "kernel" and path[0].key != "head":
            assert leaf.shape[-1] % 8 == 0, jax.tree_util.keystr(path)


def test_make_divisible_rounding():
    values = (16, 12, 11.2, 44.8, 1792, 3)
    assert [models.make_divisible(v) for v in values] == [16, 16, 16, 48, 1792, 8]
    assert models.make_divisible(92, 8) == 96  # nearest multiple, ties up
    assert models.make_divisible(10, 8) == 16  # 8 would lose more than 10%


def test_count_params_rejects_a_bare_params_tree():
    params = _abstract_variables(models.get("lenet5"), (28, 28, 1))["params"]
    with pytest.raises(ValueError, match="'params' collection"):
        count_params(params)
    assert count_params({"params": params}) == 431_080
