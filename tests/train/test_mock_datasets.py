"""The real loop on the CIFAR-10 config over `tfds.testing.mock_data`: pipeline, augmentation,
checkpoint save, restore and resume (tiny model, a few steps)."""

import importlib

import pytest
import tensorflow_datasets as tfds

from hqjax.train.logs import read_metrics
from hqjax.train.loop import train_and_evaluate


def _tiny(config_module, method, **overrides):
    c = importlib.import_module(f"configs.{config_module}").get_config(method)
    c.model_kwargs = {"width": 4}
    c.num_epochs = 2
    c.batch_size = 16
    c.eval_batch_size = 16
    c.progress_bar = False
    c.tensorboard = False
    c.async_checkpoints = False
    c.checkpoint_every_epochs = 1
    c.bn_recalibration_batches = 2
    for k, v in overrides.items():
        c[k] = v
    return c


@pytest.mark.parametrize("method", ["twn"])
def test_cifar10_config_runs_through_checkpoint_and_resume(tmp_path, method):
    with tfds.testing.mock_data(num_examples=48):
        first = train_and_evaluate(_tiny("cifar10_resnet20", method, max_steps=3), str(tmp_path))
        assert first["step"] == 3 and first["stopped_early"]
        final = train_and_evaluate(_tiny("cifar10_resnet20", method), str(tmp_path))
    assert final["step"] == 6 and not final["stopped_early"]
    evals = [r for r in read_metrics(str(tmp_path)) if r["split"] == "eval"]
    assert [r["epoch"] for r in evals] == [1, 2]  # epoch 1 before the stop, epoch 2 after the resume
    assert final["dataset"] == "cifar10" and final["quantized"] > 0
