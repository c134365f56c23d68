"""ALQ through the training program: full-precision pre-training in WORKDIR/pretrain, then the ALQ
pipeline (basis, coordinate, pruning with BatchNorm frozen, STE, coordinate) on the embedded digits."""

import os

import pytest
import tensorflow_datasets as tfds

from configs.common import with_alq
from configs.default import get_config
from hqjax.train.logs import read_metrics
from hqjax.train.loop import train_and_evaluate
from hqjax.train.optim import alq_num_epochs

STEPS_PER_EPOCH = 1437 // 128


def tiny_alq(**overrides):
    c = with_alq(get_config("hq"))
    c.model_kwargs = {"width": 4}
    kw = dict(rounds=1, epoch_basis=1, epoch_coord=1, epoch_prune=1, epoch_ste=1, epoch_post=1,
              prune_ratio=1.5, top_k=0.2, num_bases=3)
    for k, v in kw.items():
        c.method_kwargs[k] = v
    c.num_epochs = alq_num_epochs(c)
    c.pretrain.epochs = 1
    c.progress_bar = False
    c.tensorboard = False
    c.async_checkpoints = False
    c.checkpoint_every_epochs = 5
    c.layer_stats_every_epochs = 1
    c.bn_recalibration_batches = 0
    for k, v in overrides.items():
        c[k] = v
    return c


def test_alq_run_pretrains_then_reduces_the_bitwidth(tmp_path):
    workdir = str(tmp_path)
    summary = train_and_evaluate(tiny_alq(), workdir)
    assert os.path.isdir(os.path.join(workdir, "pretrain", "checkpoints"))
    pre = [r for r in read_metrics(os.path.join(workdir, "pretrain")) if r["split"] == "eval"]
    assert len(pre) == 1
    assert summary["method"] == "alq" and summary["step"] == 5 * STEPS_PER_EPOCH
    layers = [r for r in read_metrics(workdir) if r["split"] == "layers"]
    bits = [r["quantizer/average_bits"] for r in layers]
    assert len(bits) == 5
    assert bits[0] == pytest.approx(3.0, abs=0.05)  # sketched with 3 bases; basis epoch keeps them
    # the pruning epoch: 11 steps each removing ~1.5/11 of the live coordinates (1.4 d; exact counts
    # are tested in tests/transforms/test_alq.py), ~80 % of them; the bitwidth is weighted by weights
    assert 0.05 * bits[1] < bits[2] < 0.4 * bits[1]
    assert bits[4] == pytest.approx(bits[2])  # ... and nothing after it
    assert summary["average_bits"] == pytest.approx(bits[-1], rel=1e-5)
    assert summary["ternary_accuracy"] > 0.2  # above chance (0.1) at ~0.6 bit after 1 + 5 tiny epochs
    # the storage of spec 1.6 (codes + 32-bit coordinates + fp32 BatchNorm/bias parameters)
    assert summary["dense2_bytes"] < summary["fp32_bytes"] / 4


@pytest.mark.slow
def test_alq_vgg_small_cifar10_config_runs_on_mock_data(tmp_path):
    import importlib

    c = importlib.import_module("configs.cifar10_vgg_small").get_config("alq")
    c.batch_size = 16
    c.eval_batch_size = 16
    c.max_steps = 4
    c.pretrain.epochs = 1
    c.progress_bar = False
    c.tensorboard = False
    c.async_checkpoints = False
    c.bn_recalibration_batches = 1
    with tfds.testing.mock_data(num_examples=32):
        summary = train_and_evaluate(c, str(tmp_path))
    assert summary["step"] == 4 and summary["stopped_early"]
