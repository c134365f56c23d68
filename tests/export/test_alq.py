"""ALQ (multi-bit) models in the packed export: exact round trip, honest sizes, the command line.

An ALQ optimizer state is exported as the bitplanes of its live basis slots, the live-slot masks and the
float32 alphas (spec 1.6). `load_packed` rebuilds the weights with the summation order of
`hqjax.ops.alq.reconstruct`, so the packed model's logits equal those of the model applied to
`hqjax.ternary_params` (ALQ's reconstruction) exactly, and the file is exactly the size reported.
"""

import json
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

import hqjax
from hqjax import models
from hqjax.export import MultiBitLayer, pack_variables, read_packed
from hqjax.export.format import read_container
from hqjax.ops.alq import from_groups, reconstruct
from hqjax.transforms import alq_layers, alq_optimizer, find_alq_state
from hqjax.transforms.alq_schedule import BASIS, COORDINATE, PRUNE
from tests.export.test_roundtrip import _random_variables

LENET_GROUPS = (("conv1|conv2", "kernelwise"), ("fc1", "subchannelwise", 2), ("head", "subchannelwise", 1))
RESNET_GROUPS = (("conv_init", "channelwise"), ("head", "subchannelwise", 1), ("", "pixelwise"))
# LeNet-5: a few real updates, with a pruning step in the middle
MODES = (BASIS, COORDINATE, PRUNE, BASIS, COORDINATE)
# 4 basis slots (ALQ's default is 6) keep compilation short; `tests/export/test_pack.py` checks the
# summation order for up to 16 slots
NUM_BASES = 4


def _mode(step):
    return jnp.asarray(MODES, jnp.int32)[jnp.minimum(step, len(MODES) - 1)]


def _live(state):
    return sum(int(np.asarray(layer.mask).sum()) for layer in alq_layers(find_alq_state(state)).values())


def _lenet():
    """LeNet-5 after five ALQ updates with small random gradients (basis, coordinate, prune, ...)."""
    module = models.get("lenet5", num_classes=10)
    params, batch_stats = _random_variables(module, (28, 28, 1), seed=0)
    tx = alq_optimizer(lambda t: 1e-3, _mode, lambda t: 0.05, top_k=0.05, groups=LENET_GROUPS,
                       num_bases=NUM_BASES)
    state = tx.init(params)
    update = jax.jit(tx.update)
    rng = np.random.default_rng(1)
    live = [_live(state)]
    for _ in MODES:
        g = jax.tree.map(lambda p: jnp.asarray(rng.normal(0.0, 0.01, p.shape), p.dtype), params)
        u, state = update(g, state, params)
        params = optax.apply_updates(params, u)
        live.append(_live(state))
    pruned = MODES.index(PRUNE) + 1
    assert live[pruned] < live[pruned - 1] and live[-1] == live[pruned], live  # only the prune step prunes
    return module, {}, params, state, batch_stats, (28, 28, 1)


def _resnet():
    """A BatchNorm model: ResNet-20 (width 4) with three quantized layers, sketched from its weights, then
    pruned as ALQ's pruning step does (some slots, and every slot of a few groups)."""
    kwargs = {"width": 4}
    module = models.get("resnet20", num_classes=10, **kwargs)
    params, batch_stats = _random_variables(module, (32, 32, 3), seed=0)
    quantized = r"^(conv_init|stage3_block2/conv2|head)/kernel"
    selection = hqjax.Selection(include=(quantized,))
    tx = alq_optimizer(lambda t: 1e-3, _mode, groups=RESNET_GROUPS, selection=selection, num_bases=NUM_BASES)
    state = tx.init(params)
    rng = np.random.default_rng(3)

    def prune(layer):
        mask = np.asarray(layer.mask) & (rng.random(layer.mask.shape) > 0.2)
        mask[:: max(mask.shape[0] // 5, 1)] = False  # whole groups without a live slot: zero weights
        return layer._replace(
            mask=jnp.asarray(mask),
            alpha=jnp.where(mask, layer.alpha, 0.0),
            bases=jnp.where(mask[..., None], layer.bases, 0).astype(layer.bases.dtype),
        )

    is_layer = lambda x: isinstance(x, hqjax.transforms.ALQLayer)  # noqa: E731
    state = state._replace(layers=jax.tree.map(lambda x: prune(x) if is_layer(x) else x, state.layers,
                                               is_leaf=is_layer))
    return module, kwargs, params, state, batch_stats, (32, 32, 3)


BUILDERS = {"lenet5": _lenet, "resnet20": _resnet}


_CASES: dict = {}


def _case(name, tmp_path_factory):
    """The built, exported and referenced case `name` (built once per test session)."""
    if name not in _CASES:
        _CASES[name] = _build_case(name, tmp_path_factory)
    return _CASES[name]


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def case(request, tmp_path_factory):
    return _case(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def resnet_case(tmp_path_factory):
    return _case("resnet20", tmp_path_factory)


def _build_case(name, tmp_path_factory):
    module, kwargs, params, state, batch_stats, shape = BUILDERS[name]()
    x = jax.random.normal(jax.random.key(2), (3, *shape))

    def reference(params, state, batch_stats, x):  # as the training loop's evaluation computes
        variables = {"params": hqjax.ternary_params(params, state), "batch_stats": batch_stats}
        return module.apply(variables, x, train=False)

    ref = np.asarray(jax.jit(reference)(params, state, batch_stats, x))
    spec = dict(batch_stats=batch_stats, model=name, num_classes=10, model_kwargs=kwargs, input_shape=shape)
    path = hqjax.export_packed(params, state, tmp_path_factory.mktemp(name) / "m.hqx", **spec)
    report = hqjax.size_report(params, state, **spec)
    apply = jax.jit(lambda v, x: module.apply(v, x, train=False))
    return dict(name=name, module=module, params=params, state=state, batch_stats=batch_stats, x=x, ref=ref,
                path=path, report=report, apply=apply, spec=spec)


def test_logits_equal_the_alq_forward_exactly(case):
    variables = hqjax.load_packed(case["path"], model=case["name"])
    assert set(variables) == ({"params", "batch_stats"} if case["batch_stats"] else {"params"})
    got = np.asarray(case["apply"](variables, case["x"]))
    assert np.isfinite(case["ref"]).all()
    np.testing.assert_array_equal(got, case["ref"])


def test_loaded_weights_are_the_reconstruction_bit_for_bit_jitted_and_eager(case):
    loaded = dict(hqjax.selection.leaf_paths(hqjax.load_packed(case["path"])["params"]))
    refs = [jax.jit(hqjax.ternary_params)(case["params"], case["state"])]
    if case["name"] == "lenet5":  # eager dispatch is slow; one model shows it
        refs.append(hqjax.ternary_params(case["params"], case["state"]))
    for ref in refs:
        ref = dict(hqjax.selection.leaf_paths(jax.device_get(ref)))
        assert loaded.keys() == ref.keys()
        for k in ref:
            assert loaded[k].dtype == np.float32, k
            np.testing.assert_array_equal(loaded[k].view(np.uint32), ref[k].view(np.uint32), err_msg=k)


def test_file_on_disk_is_the_reported_size(case):
    r = case["report"]
    assert os.path.getsize(case["path"]) == r.file_bytes == r.payload_bytes + r.container_bytes
    assert r.payload_bytes == r.coded_code_bytes + r.side_bytes
    assert r.coder == "ans" and read_packed(case["path"]).header["coder"] == "ans"


def test_sizes_are_alq_storage_of_spec_1_6(case):
    r, state = case["report"], case["state"]
    alq = find_alq_state(state)
    layers = alq_layers(alq)
    stats = jax.device_get(hqjax.summarize(case["params"], state))
    by_path = {t.path: t for t in r.tensors}
    total = 0
    for path, shape, *_ in alq.config.layouts:
        t = by_path["params/" + path]
        mask, bases = np.asarray(layers[path].mask), np.asarray(layers[path].bases)
        g, slots, n = bases.shape
        live = int(mask.sum())
        total += math.prod(shape)
        assert t.kind == "multibit" and t.numel == g * n == math.prod(shape)
        assert t.units == live and t.side_bytes == 4 * live  # 32-bit live alphas
        assert t.code_bits == live * n and t.dense2_bytes == -(-live * n // 8)  # live bitplanes only
        assert t.coded_bytes == t.dense2_bytes + -(-g * slots // 8)  # + the live-slot mask
        assert t.stored_bytes == t.coded_bytes + t.side_bytes == t.storage_bytes + -(-g * slots // 8)
        assert t.bits_per_weight == pytest.approx(float(stats[f"{path}/bits"]), rel=1e-6)
        assert t.sparsity == pytest.approx(float(stats[f"{path}/sparsity"]), abs=1e-6)
        assert t.entropy_bytes <= t.coded_bytes
    assert r.quantized == r.multibit == total
    assert r.average_bits == pytest.approx(float(stats["quantizer/average_bits"]), rel=1e-6)
    assert r.zeros == sum(t.zeros for t in r.tensors if t.quantized)
    # dense = spec 1.6 storage (codes at their live bits, 32-bit alphas and FP parameters) + running
    # statistics, up to rounding each layer's bitplanes to whole bytes
    spec_storage = float(stats["quantizer/storage_bytes"]) + r.other_bytes
    assert 0 <= r.dense2_bytes - spec_storage < len(alq.config.layouts) + 1e-3 * spec_storage
    assert r.dense2_bytes < r.coded_bytes < r.file_bytes < r.fp32_bytes
    table = r.table()
    assert "multi-bit (ALQ) layer" in table and "ALQ storage + side" in table
    assert f"{r.average_bits:.3f} bit/weight" in table
    if case["name"] == "resnet20":
        assert r.zeros > 0 and r.other_bytes > 0  # zero groups; BatchNorm running statistics


def test_forward_variables_give_multibit_layers_and_the_explicit_hook_matches(case, tmp_path):
    variables, ternary, multibit = hqjax.export.forward_variables(case["params"], case["state"])
    alq = find_alq_state(case["state"])
    assert ternary == {} and tuple(multibit) == alq.config.selected
    for path, shape, structure, subc, _ in alq.config.layouts:
        layer = multibit[path]
        assert (layer.shape, layer.structure, layer.subc) == (shape, structure, subc)
        assert layer.bases.dtype == np.int8 and layer.mask.dtype == bool and layer.alpha.dtype == np.float32
    # the exporter author's recipe: opt_state=None plus explicit layers writes the same file
    layers = alq_layers(alq)
    explicit = {
        p: MultiBitLayer(np.asarray(layers[p].bases), np.asarray(layers[p].alpha), np.asarray(layers[p].mask),
                         shape, structure, subc)
        for p, shape, structure, subc, _ in alq.config.layouts
    }
    path = hqjax.export_packed(case["params"], None, tmp_path / "explicit.hqx", multibit=explicit,
                               **case["spec"])
    assert open(path, "rb").read() == open(case["path"], "rb").read()


def test_export_command_on_an_alq_run(resnet_case, tmp_path, monkeypatch, capsys):
    """`python -m hqjax.export` and the run summary on an ALQ run (restored in memory here; the slow test
    below trains and checkpoints a real one)."""
    from hqjax.train import artifacts as run_mod
    from hqjax.train.artifacts import main
    from hqjax.train.report import model_sizes
    from hqjax.train.steps import TrainState

    case = resnet_case
    config = ml_collections.ConfigDict(dict(
        method="alq", model="resnet20", num_classes=10, model_kwargs={"width": 4}, dataset="cifar10",
        compute_dtype="float32"))
    state = TrainState(jnp.int32(7), case["params"], case["batch_stats"], case["state"],
                       jnp.zeros(2, jnp.uint32))
    restored = run_mod.RestoredRun(config, case["module"], state, 7, (32, 32, 3))
    monkeypatch.setattr(run_mod, "restore_run", lambda workdir, step=None: restored)
    out, js = tmp_path / "m.hqx", tmp_path / "sizes.json"
    assert main(["--workdir", str(tmp_path), "--out", str(out), "--json", str(js)]) == 0
    text = capsys.readouterr().out
    assert "round trip: logits identical to the run's multi-bit evaluation" in text
    assert "stage3_block2/conv2/kernel" in text and "multi-bit (ALQ) layer" in text and "MiB" in text
    sizes = json.loads(js.read_text())
    summary = model_sizes(state, config)
    assert sizes["file_bytes"] == os.path.getsize(out) == summary["coded_bytes"]
    assert summary["quantized"] == sizes["quantized"] == case["report"].quantized > 0
    assert summary["dense2_bytes"] == sizes["dense2_bytes"] == case["report"].dense2_bytes
    assert read_packed(out).meta == {"method": "alq", "dataset": "cifar10", "step": 7,
                                     "compute_dtype": "float32"}


def test_multibit_sizes_by_hand():
    """A (5, 4) dense kernel, channelwise: 4 groups of 5 weights, 3 slots, 6 live (3, 1, 0, 2)."""
    mask = np.array([[1, 1, 1], [1, 0, 0], [0, 0, 0], [1, 1, 0]], bool)
    alpha = np.where(mask, np.array([[0.25, 0.5, 1.0], [2.0, 0, 0], [0, 0, 0], [0.125, 4.0, 0]]), 0.0)
    alpha = alpha.astype(np.float32)
    signs = np.array([[1, -1, 1, 1, -1], [-1, -1, 1, 1, 1], [1, 1, 1, 1, 1]], np.int8)
    bases = np.zeros((4, 3, 5), np.int8)
    bases[mask] = np.concatenate([signs, signs[:1], signs[1:], signs[:2]])[: mask.sum()]
    layer = MultiBitLayer(bases, alpha, mask, shape=(5, 4), structure="channelwise")
    variables = {"params": {"d": {"kernel": np.zeros((5, 4), np.float32), "bias": np.zeros(4, np.float32)}}}
    data, r = pack_variables(variables, multibit={"d/kernel": layer})
    (t,) = [t for t in r.tensors if t.kind == "multibit"]
    # spec 1.6: 6 live slots x 5 weights = 30 code bits (average bitwidth 6 / 4 = 1.5), 6 x 32 alpha bits
    assert t.code_bits == 30 and t.bits_per_weight == 1.5 and r.average_bits == 1.5
    assert t.dense2_bytes == 4 and t.side_bytes == 24 and t.storage_bytes == 28  # ceil(30 / 8) + 6 x 4
    assert t.coded_bytes == 4 + 2  # + 12 mask bits
    assert t.stored_bytes == 30 and t.zeros == 5 and t.sparsity == 0.25  # group 2 is empty
    plus = int((bases[mask] > 0).sum())  # +1 code bits; 6 of the 12 slots are live
    bound = (30 * _h2(plus / 30) + 12 * _h2(0.5)) / 8
    assert t.entropy_bytes == pytest.approx(bound)
    # the payload, byte for byte: mask bits (LSB first), live alphas (little-endian float32), bitplanes
    header, payload = read_container(data)
    rec = [rec for rec in header["tensors"] if rec["path"] == ["params", "d", "kernel"]][0]
    assert rec["blocks"] == [2, 24, 4] and rec["groups"] == [4, 3, 5]
    offset = sum(sum(x["blocks"]) for x in header["tensors"][: header["tensors"].index(rec)])
    block = bytes(payload[offset: offset + 30])
    assert block[:2] == bytes([0b00001111, 0b00000110])
    assert block[2:26] == np.array([0.25, 0.5, 1.0, 2.0, 0.125, 4.0], "<f4").tobytes()
    bits = (bases[mask] > 0).reshape(-1)
    planes = bytes(sum(int(b) << k for k, b in enumerate(bits[i : i + 8])) for i in range(0, 30, 8))
    assert block[26:] == planes
    w = read_packed(data).variables["params"]["d"]["kernel"]
    expected = from_groups(reconstruct(bases, alpha, mask), (5, 4), "channelwise")
    np.testing.assert_array_equal(w, np.asarray(expected))
    assert np.all(w[:, 2] == 0) and r.table().count("d/kernel") == 1


def _h2(p):
    return 0.0 if p in (0.0, 1.0) else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


@pytest.mark.slow
def test_export_a_trained_alq_run(tmp_path, capsys):
    """An ALQ run end to end on the digits data: ResNet-20 (width 4), one round with a pruning epoch."""
    from configs.common import with_alq
    from configs.default import get_config
    from hqjax.train.artifacts import main
    from hqjax.train.loop import train_and_evaluate
    from hqjax.train.optim import alq_num_epochs

    c = with_alq(get_config("hq"))
    c.model_kwargs = {"width": 4}
    c.method_kwargs = ml_collections.ConfigDict(dict(
        groups=RESNET_GROUPS, num_bases=3, rounds=1, epoch_basis=1, epoch_coord=1, epoch_prune=1,
        prune_ratio=0.5, top_k=0.05, epoch_ste=0, epoch_post=1))
    c.num_epochs = alq_num_epochs(c)
    c.batch_size = 128
    c.max_steps = 3 * (1437 // 128)  # stop after the pruning epoch
    c.eval_batch_size = 256
    c.progress_bar = False
    c.tensorboard = False
    c.async_checkpoints = False
    c.bn_recalibration_batches = 1
    c.layer_stats_every_epochs = 0
    summary = train_and_evaluate(c, str(tmp_path / "run"))
    assert summary["quantized"] > 0 and summary["average_bits"] < 3
    out, js = tmp_path / "m.hqx", tmp_path / "sizes.json"
    capsys.readouterr()
    assert main(["--workdir", str(tmp_path / "run"), "--out", str(out), "--json", str(js)]) == 0
    text = capsys.readouterr().out
    assert "round trip: logits identical to the run's multi-bit evaluation" in text
    assert "stage3_block2/conv2/kernel" in text and "ALQ storage + side" in text
    sizes = json.loads(js.read_text())
    assert sizes["file_bytes"] == os.path.getsize(out) == summary["coded_bytes"]
    assert sizes["dense2_bytes"] == summary["dense2_bytes"] and sizes["quantized"] == summary["quantized"]
    assert sizes["average_bits"] == pytest.approx(summary["average_bits"], rel=1e-5)
    assert sizes["step"] == c.max_steps
    module, variables = hqjax.export.load_model(out)
    assert module.apply(variables, np.zeros((1, 8, 8, 1), np.float32), train=False).shape == (1, 10)
