"""`python -m hqjax.export --workdir RUN --out FILE`: a trained run to a packed file and its size table."""

import json
import os

import numpy as np
import pytest

import hqjax
from hqjax.train.artifacts import main


def test_missing_run_directory_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "m.hqx"
    assert main(["--workdir", str(tmp_path / "nowhere"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "does not exist: --workdir must be the directory of a training run" in err
    assert not out.exists()


def _tiny_run(workdir, method):
    from configs.default import get_config
    from hqjax.train.loop import train_and_evaluate

    c = get_config(method)
    c.model_kwargs = {"width": 4}
    c.num_epochs = 2
    c.max_steps = 4
    c.batch_size = 64
    c.eval_batch_size = 128
    c.progress_bar = False
    c.tensorboard = False
    c.async_checkpoints = False
    c.bn_recalibration_batches = 1
    c.layer_stats_every_epochs = 0
    return train_and_evaluate(c, str(workdir))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["hq", "ttq"])
def test_export_a_trained_run(tmp_path, capsys, method):
    summary = _tiny_run(tmp_path / "run", method)
    out, js = tmp_path / "m.hqx", tmp_path / "sizes.json"
    capsys.readouterr()
    assert main(["--workdir", str(tmp_path / "run"), "--out", str(out), "--json", str(js)]) == 0
    text = capsys.readouterr().out
    assert "round trip: logits identical to the run's ternary evaluation" in text
    assert "stage3_block2/conv2/kernel" in text and "MiB" in text
    sizes = json.loads(js.read_text())
    assert sizes["file_bytes"] == os.path.getsize(out) == summary["coded_bytes"]
    assert sizes["fp32_bytes"] == summary["fp32_bytes"] and sizes["step"] == 4
    packed = hqjax.export.read_packed(out, model="resnet20")
    assert packed.meta == {"method": method, "dataset": "digits", "step": 4, "compute_dtype": "float32"}
    module, variables = hqjax.export.load_model(out)
    x = np.zeros((1, 8, 8, 1), np.float32)
    assert module.apply(variables, x, train=False).shape == (1, 10)
