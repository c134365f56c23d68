"""The CIFAR-10 and ImageNet run configs (``configs/*.py``) for every method, on `tfds.testing.mock_data`.

Every case takes a config file's ``get_config(method)`` and changes only how long and how big the run is
(steps, batch sizes, one device, BatchNorm re-calibration batches, logging, and for ALQ the length of its
pipeline and of its pre-training); model, dataset, augmentation, compute dtype, method hyper-parameters
and optimizer stay as the file has them.

Default suite: every (file, method) pair is validated as shipped and as resized, and its model,
optimizer state (the method's layer selection or ALQ groups applied to the model's parameters) and
quantized forward pass are traced at the dataset's input shape without compiling (~1 s a pair).
Slow (``pytest -m slow tests/train/test_config_files.py``): every pair trained end to end on mock
data, and one run stopped and resumed; each compiles full-size networks, a minute or more on CPU.

mock_data gives every split (ImageNet's ``validation`` included) the same ``num_examples`` random
records; ImageNet's are small images of random sizes that the pipeline resizes and crops to 224x224
as it would real ones.
"""

import importlib
import math
import os

import jax
import jax.numpy as jnp
import pytest
import tensorflow_datasets as tfds

import hqjax
from configs.common import METHODS
from hqjax import data, models
from hqjax.train.config import validate
from hqjax.train.logs import read_metrics
from hqjax.train.loop import train_and_evaluate
from hqjax.train.methods import make_optimizer
from hqjax.train.optim import alq_num_epochs

CONFIG_FILES = (
    "cifar10_resnet20",
    "cifar10_resnet56",
    "cifar10_vgg_small",
    "imagenet_resnet18",
    "imagenet_resnet50",
)
PAIRS = [(f, m) for f in CONFIG_FILES for m in METHODS]
TERNARY = ("twn", "ttq", "ptq", "hq", "hla_tq")
BATCH = 2  # one device (num_devices=1): CPU compile time, not the batch, dominates these runs
ALQ_EPOCHS = dict.fromkeys("rounds epoch_basis epoch_coord epoch_prune epoch_ste epoch_post".split(), 1)


def get_config(module: str, method: str):
    c = importlib.import_module(f"configs.{module}").get_config(method)
    assert c.method == method
    return c


def small_config(module: str, method: str, *, max_steps: int = 2):
    """`module`'s config for `method`, resized for mock data of one batch per epoch.

    Non-ALQ runs keep their epochs (and so their learning-rate schedule) and stop after `max_steps`
    steps; ALQ runs its whole pipeline at one epoch per phase (``num_epochs`` its length), after
    ``pretrain.warmup_epochs + 1`` epochs of pre-training where the file asks for pre-training.

    Returns ``(config, planned_steps)``.
    """
    c = get_config(module, method)
    c.num_devices = 1
    c.batch_size = BATCH
    c.eval_batch_size = BATCH
    c.bn_recalibration_batches = 1
    c.log_every_steps = 1
    c.progress_bar = False
    c.tensorboard = False
    c.async_checkpoints = False
    if method == "alq":
        for k, v in ALQ_EPOCHS.items():
            c.method_kwargs[k] = v
        c.num_epochs = alq_num_epochs(c)
        if c.pretrain.epochs:
            c.pretrain.epochs = c.pretrain.warmup_epochs + 1
        return c, c.num_epochs
    c.max_steps = max_steps
    return c, max_steps


# What `small_config` may change; ALQ's method_kwargs and pretrain only in their epoch counts.
SIZE_KNOBS = {
    *"num_devices batch_size eval_batch_size bn_recalibration_batches log_every_steps".split(),
    *"progress_bar tensorboard async_checkpoints max_steps num_epochs pretrain.epochs".split(),
    *(f"method_kwargs.{k}" for k in ALQ_EPOCHS),
}


def changed_fields(a, b) -> set[str]:
    """The dotted names of the fields that differ between configs `a` and `b`."""

    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    fa, fb = flat(a.to_dict()), flat(b.to_dict())
    return {k for k in fa.keys() | fb.keys() if fa.get(k, None) != fb.get(k, None)}


def mock_run(config, workdir: str) -> dict:
    validate(config)
    with tfds.testing.mock_data(num_examples=BATCH):  # one batch per epoch, train and eval
        return train_and_evaluate(config, workdir)


def check_run(summary: dict, config, workdir: str, planned: int, *, first_step: int = 0) -> None:
    """What a mock run of one batch per epoch, from `first_step` to `planned`, must have recorded."""
    assert summary["step"] == planned
    assert summary["stopped_early"] == (planned < config.num_epochs)
    assert (summary["method"], summary["model"], summary["dataset"]) == (
        config.method,
        config.model,
        config.dataset,
    )
    rows = read_metrics(workdir)
    train = [r for r in rows if r["split"] == "train"]
    evals = [r for r in rows if r["split"] == "eval"]
    assert [r["step"] for r in train] == list(range(first_step + 1, planned + 1))
    assert all(math.isfinite(r["loss"]) and 0.0 <= r["accuracy"] <= 1.0 for r in train)
    assert [r["epoch"] for r in evals] == list(range(first_step + 1, planned + 1))
    assert all(math.isfinite(r["ternary_loss"]) for r in evals)
    for key in ("latent_accuracy", "ternary_accuracy"):
        assert 0.0 <= summary[key] <= 1.0, (key, summary[key])
    assert summary["params"] > 0 and math.isfinite(summary["coded_bytes"])
    if config.method == "fp":
        assert summary["quantized"] == 0
    else:
        assert 0 < summary["quantized"] <= summary["params"]
        assert summary["coded_bytes"] < summary["fp32_bytes"]
    if config.method in TERNARY:  # 2-bit codes at most, plus full-precision BatchNorm and side data
        assert summary["coded_bytes"] < summary["fp32_bytes"] / 4
    ckpt = os.path.join(workdir, "checkpoints")
    assert str(planned) in os.listdir(ckpt)


def abstract_logits(config) -> jax.ShapeDtypeStruct:
    """The eval logits of a freshly initialised run, traced, not compiled: the model at the dataset's
    input shape and compute dtype, the optimizer state of the method (which applies its layer selection
    or ALQ groups to the model's parameters) and its quantized forward pass."""
    meta = data.info(config.dataset)
    dtype = jnp.bfloat16 if config.compute_dtype == "bfloat16" else jnp.float32
    model = models.get(config.model, num_classes=config.num_classes, dtype=dtype, **dict(config.model_kwargs))
    tx = make_optimizer(config, steps_per_epoch=10)
    x = jnp.zeros((2, *meta.image_shape), jnp.float32)

    def init():
        variables = model.init(jax.random.key(0), x, train=False)
        params = variables["params"]
        if config.method != "fp":
            params = hqjax.ternary_params(params, tx.init(params))
        return model.apply({**variables, "params": params}, x, train=False)

    return jax.eval_shape(init)


@pytest.mark.parametrize("module, method", PAIRS)
def test_config_file_builds(module, method):
    """The config validates as shipped and resized; its model, method and optimizer fit together."""
    shipped = get_config(module, method)
    validate(shipped)
    config, _ = small_config(module, method)
    validate(config)
    assert changed_fields(shipped, config) <= SIZE_KNOBS
    logits = abstract_logits(config)
    assert logits.shape == (2, config.num_classes) and logits.dtype == jnp.float32


@pytest.mark.slow
def test_cifar10_resnet20_runs_stops_and_resumes(tmp_path):
    """The file's own method on the full-size ResNet-20: one step, stop with a checkpoint, resume."""
    workdir = str(tmp_path)
    config, planned = small_config("cifar10_resnet20", "hq", max_steps=1)
    check_run(mock_run(config, workdir), config, workdir, planned)
    config, planned = small_config("cifar10_resnet20", "hq", max_steps=2)
    check_run(mock_run(config, workdir), config, workdir, planned)
    assert sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints"))) == [1, 2]


@pytest.mark.slow
@pytest.mark.parametrize("module, method", PAIRS)
def test_config_file_runs_on_mock_data(module, method, tmp_path):
    workdir = str(tmp_path)
    config, planned = small_config(module, method)
    summary = mock_run(config, workdir)
    check_run(summary, config, workdir, planned)
    if method == "alq" and config.pretrain.epochs:
        pre = [r for r in read_metrics(os.path.join(workdir, "pretrain")) if r["split"] == "eval"]
        assert len(pre) == config.pretrain.epochs
        assert os.path.isdir(os.path.join(workdir, "pretrain", "checkpoints"))


def alq_group_shapes(config) -> dict[str, tuple[int, int, int]]:
    """``{leaf path: (groups, basis slots, group size)}`` of the ALQ state `config` builds, traced."""
    meta = data.info(config.dataset)
    model = models.get(config.model, num_classes=config.num_classes, **dict(config.model_kwargs))
    tx = make_optimizer(config, steps_per_epoch=10)
    x = jnp.zeros((1, *meta.image_shape), jnp.float32)

    def init():
        return tx.init(model.init(jax.random.key(0), x, train=False)["params"])

    state = hqjax.transforms.alq.find_alq_state(jax.eval_shape(init))
    return {p: tuple(layer.bases.shape) for p, layer in hqjax.transforms.alq.alq_layers(state).items()}


def test_alq_presets_follow_the_model():
    """CIFAR ResNets take the "cifar_resnet" preset (ResNet groups, CIFAR-10 schedule, fp pre-training);
    ResNet-50 the ImageNet ResNet-18 one; the digits and MNIST ResNets keep "mnist_channelwise"."""
    from configs.common import ALQ_PRESETS, with_alq

    c20 = get_config("cifar10_resnet20", "alq")
    assert dict(c20.method_kwargs) == dict(ALQ_PRESETS["cifar_resnet"]["kwargs"])
    assert (c20.learning_rate, c20.pretrain.epochs, c20.num_epochs) == (1e-3, 200, 5 * 31 + 50 + 20)
    shapes = alq_group_shapes(c20)
    assert shapes["conv_init/kernel"] == (16, 6, 27)  # channelwise: one group per filter of 3x3x3
    assert shapes["head/kernel"] == (20, 6, 32)  # subchannelwise 2: each of 10 rows in two halves of 32
    assert shapes["stage1_block0/conv1/kernel"] == (144, 6, 16)  # pixelwise: 16 filters x 9 positions
    assert shapes["stage3_block2/conv2/kernel"] == (576, 6, 64)

    c50 = get_config("imagenet_resnet50", "alq")
    assert dict(c50.method_kwargs) == dict(ALQ_PRESETS["resnet18"]["kwargs"])
    assert (c50.learning_rate, c50.batch_size, c50.pretrain.epochs) == (2e-4, 256, 90)

    for module in ("default", "mnist_resnet20"):
        c = get_config(module, "alq")
        assert dict(c.method_kwargs) == dict(ALQ_PRESETS["mnist_channelwise"]["kwargs"])
        assert c.method_kwargs.groups == () and c.pretrain.epochs == 0
    with pytest.raises(ValueError, match="Unknown ALQ preset 'resnet9'.*cifar_resnet"):
        with_alq(c20, "resnet9")


def test_with_pretrain_sets_only_alq_runs():
    from configs.common import base_config, with_method, with_pretrain

    alq = with_pretrain(with_method(base_config(), "alq"), 7, learning_rate=0.2, optimizer="adam")
    assert (alq.pretrain.epochs, alq.pretrain.learning_rate, alq.pretrain.optimizer) == (7, 0.2, "adam")
    hq = with_pretrain(with_method(base_config(), "hq"), 7, learning_rate=0.2)
    assert hq.pretrain.epochs == 0 and hq.pretrain.learning_rate == base_config().pretrain.learning_rate
    with pytest.raises(ValueError, match=r"Unknown pretrain field\(s\) \['lr'\]"):
        with_pretrain(alq, 3, lr=0.1)
