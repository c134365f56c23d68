"""Size accounting: ResNet-18 figures of spec B7 on a real packed file, and the run summary's sizes."""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hqjax
from hqjax import models
from hqjax.export import export_variables, pack_variables
from hqjax.export.size import MB, MiB
from hqjax.train.report import model_sizes

R18_PARAMS = 11_689_512
R18_KERNELS = 11_678_912  # conv + fc kernels: the quantized weights
R18_UNITS = 4_800 + 1_000  # output channels of the convs + classes (one fp32 scale each)
R18_BN_CHANNELS = 4_800


def _h(p0):
    return -(p0 * math.log2(p0) + (1 - p0) * math.log2(1 - p0)) + (1 - p0)


@pytest.fixture(scope="module")
def resnet18_abstract():
    module = models.get("resnet18")
    return jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3)), train=False))


def _synthetic(abstract, p0, seed=0):
    """ResNet-18 variables with i.i.d. symmetric ternary codes of zero fraction `p0` on every kernel."""
    rng = np.random.default_rng(seed)
    ternary = {}

    def fill(path, s):
        name = "/".join(k.key for k in path)
        if name.startswith("params/") and len(s.shape) > 1:
            ternary[name[len("params/"):]] = -1
            p = [p0, (1 - p0) / 2, (1 - p0) / 2]
            codes = rng.choice(np.array([0, 1, -1], np.int8), size=s.shape, p=p)
            scale = rng.uniform(0.01, 0.1, s.shape[-1]).astype(np.float32)
            return codes * scale
        if name.endswith("var"):
            return rng.uniform(0.5, 2.0, s.shape).astype(np.float32)
        return rng.normal(size=s.shape).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, abstract), ternary


@pytest.fixture(scope="module")
def r18_at_90(resnet18_abstract, tmp_path_factory):
    variables, ternary = _synthetic(resnet18_abstract, 0.90)
    path = os.path.join(tmp_path_factory.mktemp("r18"), "resnet18.hqx")
    report = export_variables(path, variables, ternary=ternary, model="resnet18", num_classes=1000)
    return variables, ternary, path, report


def test_resnet18_fp32_and_dense_2bit(r18_at_90):
    _, _, _, r = r18_at_90
    assert r.params == R18_PARAMS and r.quantized == R18_KERNELS
    assert r.fp32_bytes == 4 * R18_PARAMS == 46_758_048
    assert round(r.fp32_bytes / MB, 1) == 46.8 and round(r.fp32_bytes / MiB, 1) == 44.6
    assert r.dense2_code_bytes == R18_KERNELS // 4 == 2_919_728
    assert round(r.dense2_code_bytes / MB, 2) == 2.92
    # side data: a scale per unit, BatchNorm affine and running statistics, the classifier bias (fp32)
    assert r.scale_bytes == 4 * R18_UNITS
    assert r.fp_param_bytes == 4 * (2 * R18_BN_CHANNELS + 1000)
    assert r.other_bytes == 4 * 2 * R18_BN_CHANNELS
    assert r.dense2_bytes == 2_919_728 + 4 * (R18_UNITS + 4 * R18_BN_CHANNELS + 1000) == 3_023_728
    assert round(r.fp32_bytes / r.dense2_code_bytes) == 16  # "only 16x" (B7)


def test_resnet18_at_90_percent_zeros_is_under_094_mb(r18_at_90):
    _, _, path, r = r18_at_90
    assert abs(r.sparsity - 0.90) < 1e-3
    # entropy bound of the codes: H(0.9) = 0.569 bit/weight (B7), up to the sampling of the codes
    assert r.entropy_code_bytes == pytest.approx(R18_KERNELS * _h(0.90) / 8, rel=2e-3)
    assert r.coded_code_bytes <= 1.02 * r.entropy_code_bytes
    assert r.coded_bytes <= 1.02 * r.entropy_bytes
    assert os.path.getsize(path) == r.file_bytes <= 940_000  # the whole file: "939 KB (49x)"
    assert r.fp32_bytes / r.file_bytes > 49


def test_resnet18_at_88_percent_zeros_needs_more(resnet18_abstract):
    # The codes' entropy bound alone is 0.948 MB at 88 % zeros: "939 KB" needs about 90 % (B7).
    variables, ternary = _synthetic(resnet18_abstract, 0.88, seed=1)
    _, r = pack_variables(variables, ternary=ternary)
    assert r.entropy_code_bytes == pytest.approx(R18_KERNELS * _h(0.88) / 8, rel=2e-3)
    assert r.coded_code_bytes <= 1.02 * r.entropy_code_bytes
    assert 0.94e6 < r.coded_bytes < 1.06e6


def test_resnet18_packed_file_loads_back(r18_at_90):
    variables, _, path, _ = r18_at_90
    loaded = hqjax.load_packed(path, model="resnet18")
    for (k, a), (_, b) in zip(
        hqjax.selection.leaf_paths(loaded), hqjax.selection.leaf_paths(variables), strict=True
    ):
        np.testing.assert_array_equal(a, b, err_msg=k)


def test_table_reports_mb_and_mib(r18_at_90):
    table = r18_at_90[3].table()
    assert "stage4_block1/conv2/kernel" in table
    words = ("MB", "MiB", "fp32 parameters", "dense 2-bit", "entropy bound", "entropy-coded", "file (ans,")
    for word in words:
        assert word in table
    assert "46,758,048" in table and "46.7580" in table and "44.5919" in table


def test_run_summary_sizes_are_those_of_the_exported_file(tmp_path):
    from configs.mnist_lenet5 import get_config
    from hqjax.train.artifacts import export_kwargs
    from hqjax.train.steps import TrainState

    config = get_config("twn")
    module = models.get("lenet5", num_classes=10)
    abstract = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), train=False))
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape), jnp.float32), abstract["params"])
    opt_state = hqjax.twn(optax.sgd(0.1)).init(params)
    state = TrainState(jnp.int32(7), params, {}, opt_state, jnp.zeros(2, jnp.uint32))
    sizes = model_sizes(state, config)
    path = hqjax.export_packed(params, opt_state, tmp_path / "m.hqx", **export_kwargs(config, 7))
    assert sizes["coded_bytes"] == os.path.getsize(path)
    r = hqjax.size_report(params, opt_state)
    assert sizes["fp32_bytes"] == 4 * 431_080 == r.fp32_bytes
    assert sizes["dense2_bytes"] == 430_500 // 4 + 4 * (20 + 50 + 500 + 10) * 2 == r.dense2_bytes
    assert sizes["entropy_bytes"] == pytest.approx(r.entropy_bytes)
    assert sizes["entropy_bytes"] < sizes["dense2_bytes"] < sizes["fp32_bytes"]
    config.method = "fp"
    fp = model_sizes(state, config)
    assert fp["quantized"] == 0 and fp["dense2_bytes"] == fp["fp32_bytes"]
