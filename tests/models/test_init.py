"""Initialisers: He fan-out for convs, the classifier init, zero-init of the last block BN."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hqjax.models import CifarResNet, LeNet5, ResNet

COMPILER_OPTIONS = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}


def _params(model, shape):
    init = jax.jit(functools.partial(model.init, train=False), compiler_options=COMPILER_OPTIONS)
    return init(jax.random.key(0), jnp.zeros(shape, jnp.float32))["params"]


@pytest.fixture(scope="module")
def resnet20_params():
    return _params(CifarResNet(depth=20), (1, 32, 32, 3))


def test_conv_kernels_are_he_normal_fan_out(resnet20_params):
    kernel = np.asarray(resnet20_params["stage3_block2"]["conv2"]["kernel"])  # (3, 3, 64, 64)
    expected = np.sqrt(2.0 / (3 * 3 * 64))
    assert abs(kernel.std() / expected - 1) < 0.03
    assert abs(kernel.mean()) < 0.05 * expected
    # Untruncated normal: some draws beyond 2 standard deviations (4.6% expected).
    assert 0.03 < np.mean(np.abs(kernel) > 2 * expected) < 0.06


def test_classifier_and_batchnorm_init(resnet20_params):
    head = resnet20_params["head"]
    bound = 1 / np.sqrt(64)  # PyTorch's nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(head["kernel"]).max() <= bound
    assert np.abs(head["kernel"]).max() > 0.9 * bound
    np.testing.assert_array_equal(head["bias"], 0)
    bn = resnet20_params["stage1_block0"]["bn2"]
    np.testing.assert_array_equal(bn["scale"], 1)  # zero_init_residual is off by default
    np.testing.assert_array_equal(bn["bias"], 0)


@pytest.mark.parametrize(
    ("model", "last_bn"),
    [
        (CifarResNet(depth=8, zero_init_residual=True), "bn2"),
        (ResNet(stage_sizes=(1, 1), width=8, zero_init_residual=True), "bn2"),
        (ResNet(stage_sizes=(1, 1), block="bottleneck", width=8, zero_init_residual=True), "bn3"),
    ],
    ids=["cifar-basic", "imagenet-basic", "imagenet-bottleneck"],
)
def test_zero_init_residual(model, last_bn):
    params = _params(model, (1, 32, 32, 3))
    blocks = [k for k in params if k.startswith("stage")]
    assert blocks
    for block in blocks:
        np.testing.assert_array_equal(params[block][last_bn]["scale"], 0)
        np.testing.assert_array_equal(params[block]["bn1"]["scale"], 1)
        if "shortcut_bn" in params[block]:
            np.testing.assert_array_equal(params[block]["shortcut_bn"]["scale"], 1)


def test_lenet5_layers_have_biases_and_torch_default_init():
    params = _params(LeNet5(), (1, 28, 28, 1))
    assert params["conv1"]["kernel"].shape == (5, 5, 1, 20)
    assert params["conv2"]["kernel"].shape == (5, 5, 20, 50)
    bound = 1 / np.sqrt(5 * 5 * 20)
    assert bound * 0.9 < np.abs(params["conv2"]["kernel"]).max() <= bound
