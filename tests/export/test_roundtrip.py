"""Round trip: the packed model's logits equal the training-time ternary forward pass exactly.

For a CIFAR ResNet, LeNet-5 and MobileNetV2 under recipes with non-zero sparsity (and TTQ's separate
positive/negative scales), `load_packed(export(...))` applied by the unmodified model gives the same logits,
bit for bit, as ``model.apply`` on `hqjax.ternary_params` inside one `jax.jit` (what the training loop's
evaluation computes); the files on disk are exactly the size `size_report` reports.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hqjax
from hqjax import models
from hqjax.export import read_packed

CASES = {
    # name: (model, model kwargs, input shape, recipe, recipe kwargs, update steps, minimum sparsity)
    "resnet20_hq": ("resnet20", {"width": 4}, (32, 32, 3), "hq",
                    dict(total_steps=6, quantize_step=2, prune_end=2, sparsity=0.6), 3, 0.55),
    "resnet20_ttq": ("resnet20", {"width": 4}, (32, 32, 3), "ttq", {}, 3, 0.05),
    "lenet5_hla_tq": ("lenet5", {}, (28, 28, 1), "hla_tq",
                      dict(total_steps=6, quantize_step=2, sparsity=0.7, scaled="conv1|conv2|fc1|head"),
                      3, 0.65),
    # TWN's threshold 0.7 mean|w| zeroes ~42 % of Gaussian weights at initialisation (no update to compile)
    "mobilenet_v2_twn": ("mobilenet_v2", {"width_multiplier": 0.25}, (32, 32, 3), "twn", {}, 0, 0.35),
    # slow: PTQ's update (AGP masks on ~50 leaves) takes ~9 s to compile for MobileNetV2
    "mobilenet_v2_ptq": ("mobilenet_v2", {"width_multiplier": 0.25}, (32, 32, 3), "ptq",
                         dict(total_steps=6, quantize_step=2, prune_end=2, sparsity=0.8), 3, 0.75),
}
SLOW = {"mobilenet_v2_ptq"}
SELECTION = {"resnet20": hqjax.Selection(last="head"), "mobilenet_v2": hqjax.Selection(last="head")}


def _random_variables(module, shape, seed):
    """Random params (kernels ~ N(0, 0.1)) and positive BatchNorm variances, without compiling an init."""
    abstract = jax.eval_shape(
        lambda: module.init(jax.random.key(0), jnp.zeros((1, *shape), jnp.float32), train=False)
    )
    rng = np.random.default_rng(seed)

    def fill(path, s):
        name = jax.tree_util.keystr(path)
        if "var" in name:
            return jnp.asarray(rng.uniform(0.5, 2.0, s.shape), s.dtype)
        return jnp.asarray(rng.normal(0.0, 0.1, s.shape), s.dtype)

    v = jax.tree_util.tree_map_with_path(fill, abstract)
    return v["params"], v.get("batch_stats", {})


def _advance(tx, params, steps, seed):
    """`steps` updates with small random gradients: masks prune, TTQ scales move, weights change."""
    state = tx.init(params)
    if not steps:
        return params, state
    update = jax.jit(tx.update)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        g = jax.tree.map(lambda p: jnp.asarray(rng.normal(0.0, 0.01, p.shape), p.dtype), params)
        u, state = update(g, state, params)
        params = optax.apply_updates(params, u)
    return params, state


@pytest.fixture(
    scope="module",
    params=[pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c for c in sorted(CASES)],
)
def case(request, tmp_path_factory):
    name, kwargs, shape, method, mkw, steps, min_sparsity = CASES[request.param]
    module = models.get(name, num_classes=10, **kwargs)
    params, batch_stats = _random_variables(module, shape, seed=0)
    if name in SELECTION:
        mkw = {**mkw, "selection": SELECTION[name]}
    tx = hqjax.get_method(method, optax.sgd(0.1), **mkw)
    params, state = _advance(tx, params, steps, seed=1)
    x = jax.random.normal(jax.random.key(2), (3, *shape))

    def reference(params, state, batch_stats, x):
        variables = {"params": hqjax.ternary_params(params, state), "batch_stats": batch_stats}
        return module.apply(variables, x, train=False)

    ref = np.asarray(jax.jit(reference)(params, state, batch_stats, x))
    folder = tmp_path_factory.mktemp(request.param)
    spec = dict(batch_stats=batch_stats, model=name, num_classes=10, model_kwargs=kwargs, input_shape=shape)
    files, reports = {}, {}
    for coder in ("ans", "dense2"):
        path = os.path.join(folder, f"{coder}.hqx")
        files[coder] = hqjax.export_packed(params, state, path, coder=coder, **spec)
        reports[coder] = hqjax.size_report(params, state, coder=coder, **spec)
    apply = jax.jit(lambda v, x: module.apply(v, x, train=False))
    return dict(name=name, module=module, params=params, state=state, batch_stats=batch_stats, x=x,
                ref=ref, files=files, reports=reports, apply=apply, min_sparsity=min_sparsity)


@pytest.mark.parametrize("coder", ["ans", "dense2"])
def test_logits_equal_the_ternary_forward_exactly(case, coder):
    variables = hqjax.load_packed(case["files"][coder], model=case["name"])
    got = np.asarray(case["apply"](variables, case["x"]))
    assert np.isfinite(case["ref"]).all()
    np.testing.assert_array_equal(got, case["ref"])


def test_loaded_weights_equal_ternary_params_and_hold_nothing_else(case):
    variables = hqjax.load_packed(case["files"]["ans"])
    expected = jax.device_get(jax.jit(hqjax.ternary_params)(case["params"], case["state"]))
    flat_e = dict(hqjax.selection.leaf_paths(expected))
    flat_g = dict(hqjax.selection.leaf_paths(variables["params"]))
    assert flat_g.keys() == flat_e.keys()
    for k in flat_e:
        assert flat_g[k].dtype == np.float32
        np.testing.assert_array_equal(flat_g[k], flat_e[k])
    if case["batch_stats"]:
        assert set(variables) == {"params", "batch_stats"}
        for k, v in hqjax.selection.leaf_paths(case["batch_stats"]):
            np.testing.assert_array_equal(dict(hqjax.selection.leaf_paths(variables["batch_stats"]))[k], v)
    else:
        assert set(variables) == {"params"}


def test_quantized_layers_are_sparse_ternary(case):
    report = case["reports"]["ans"]
    cfg = hqjax.find_quantizer_states(case["state"]).config
    assert report.quantized == sum(t.numel for t in report.tensors if t.path[len("params/"):] in cfg.selected)
    assert report.sparsity > case["min_sparsity"]
    signed = cfg.forward == "ttq"  # TTQ: separate positive and negative magnitudes, two scales per unit
    header = read_packed(case["files"]["ans"]).header
    shapes = {"/".join(rec["path"]): rec["shape"] for rec in header["tensors"]}
    for t in report.tensors:
        if t.kind == "ternary":
            assert t.units == (2 if signed else 1) * shapes[t.path][-1]
            assert t.side_bytes == 4 * t.units


@pytest.mark.parametrize("coder", ["ans", "dense2"])
def test_file_on_disk_is_the_reported_size(case, coder):
    report = case["reports"][coder]
    path = case["files"][coder]
    assert os.path.getsize(path) == report.file_bytes
    assert report.file_bytes == report.payload_bytes + report.container_bytes
    codes = report.coded_code_bytes if coder == "ans" else report.dense2_code_bytes
    assert report.payload_bytes == codes + report.side_bytes


def test_size_columns_against_closed_forms(case):
    r = case["reports"]["ans"]
    params = dict(hqjax.selection.leaf_paths(case["params"]))
    assert r.params == sum(int(np.size(v)) for v in params.values())
    assert r.fp32_bytes == 4 * r.params
    for t in r.tensors:
        if t.kind == "ternary":
            assert t.dense2_bytes == -(-t.numel // 4)
            assert t.entropy_bytes <= t.numel * np.log2(3) / 8 + 1e-9
            # ANS: within 1 % of the bound plus two 32-bit words (word granularity and the final state)
            assert t.entropy_bytes <= t.coded_bytes <= 1.01 * t.entropy_bytes + 8
        else:
            assert t.side_bytes == 4 * t.numel
    layers = sum(t.kind == "ternary" for t in r.tensors)
    assert r.coded_code_bytes <= 1.01 * r.entropy_code_bytes + 8 * layers
    assert r.coded_bytes < r.dense2_bytes < r.fp32_bytes
