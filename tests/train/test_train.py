"""The training program end to end on the embedded digits data (tiny model, few steps)."""

import os
import subprocess
import sys

import jax
import orbax.checkpoint as ocp
import pytest

from configs.default import get_config
from hqjax.train.checkpoint import Checkpointer, CheckpointMismatchError
from hqjax.train.config import validate
from hqjax.train.logs import read_metrics
from hqjax.train.loop import pretrain_config, train_and_evaluate
from tests.helpers import assert_trees_all_close

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny(method="hq", **overrides):
    c = get_config(method)
    c.model_kwargs = {"width": 8}
    c.num_epochs = 3
    c.batch_size = 128
    c.eval_batch_size = 128
    c.progress_bar = False
    c.tensorboard = False
    c.async_checkpoints = False
    c.checkpoint_every_epochs = 2
    c.layer_stats_every_epochs = 2
    c.log_every_steps = 5
    for k, v in overrides.items():
        c[k] = v
    return c


@pytest.fixture(scope="module")
def hq_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("hq"))
    summary = train_and_evaluate(tiny(), workdir)
    return workdir, summary


def test_run_logs_evaluates_each_epoch_and_summarises(hq_run):
    workdir, summary = hq_run
    rows = read_metrics(workdir)
    evals = [r for r in rows if r["split"] == "eval"]
    assert [r["epoch"] for r in evals] == [1, 2, 3]
    assert all(0.0 <= r["ternary_accuracy"] <= 1.0 for r in evals)
    train = [r for r in rows if r["split"] == "train"]
    assert train[-1]["loss"] < train[0]["loss"]
    layers = [r for r in rows if r["split"] == "layers"]
    assert layers and any(k.endswith("/cosine") for k in layers[-1])
    assert summary["step"] == 3 * (1437 // 128)
    assert summary["ternary_accuracy"] > 0.4  # 3 tiny epochs: far above chance (0.1)
    assert 0.0 <= summary["latent_accuracy"] <= 1.0
    assert abs(summary["sparsity"] - 0.5) < 0.01
    assert summary["coded_bytes"] < summary["dense2_bytes"] < summary["fp32_bytes"]


def test_rerun_resumes_from_the_final_checkpoint_and_does_nothing(hq_run):
    workdir, summary = hq_run
    again = train_and_evaluate(tiny(), workdir)
    assert again["step"] == summary["step"]
    # nothing was evaluated in the rerun's process: the restored network is, once, for the summary
    assert again["ternary_accuracy"] == pytest.approx(summary["ternary_accuracy"], abs=1e-6)
    assert "test_accuracy" not in again


def test_final_test_reads_the_test_split_once_after_a_validation_run(tmp_path):
    c = tiny("twn", num_epochs=2, validation_split=300, final_test=True)
    summary = train_and_evaluate(c, str(tmp_path))
    assert summary["eval_split"] == "validation" and summary["step"] == 2 * ((1437 - 300) // 128)
    assert 0.2 < summary["test_accuracy"] <= 1.0 and summary["test_loss"] > 0.0
    assert summary["test_accuracy"] != summary["ternary_accuracy"]  # 300 validation vs 360 test images
    logged = [r for r in read_metrics(str(tmp_path)) if r["split"] == "summary"]
    assert logged[-1]["test_accuracy"] == summary["test_accuracy"]
    again = train_and_evaluate(c, str(tmp_path))  # finished: restored, nothing trained, same figures
    for k in ("step", "test_accuracy", "ternary_accuracy"):
        assert again[k] == pytest.approx(summary[k], abs=1e-6), k


def test_pretraining_of_an_alq_run_never_reads_the_test_split():
    c = tiny("alq", validation_split=300, final_test=True)
    pre = pretrain_config(c)
    assert pre.method == "fp" and pre.validation_split == 300
    assert not pre.final_test and c.final_test  # the quantized run's own setting is kept


def test_final_test_needs_a_validation_split():
    with pytest.raises(ValueError, match="final_test=True needs config.validation_split"):
        validate(tiny("twn", final_test=True))


def test_checkpoint_of_another_method_is_refused(hq_run):
    workdir, _ = hq_run
    with pytest.raises(CheckpointMismatchError, match="method: checkpoint has 'hq', this run has 'ptq'"):
        train_and_evaluate(tiny("ptq"), workdir)


def _saved_state(workdir):
    ck = Checkpointer(str(workdir), async_save=False)
    step = ck.latest_step()
    out = ck._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    ck.close()
    return step, out


def test_interrupted_run_resumes_bit_identically(hq_run, tmp_path):
    straight, summary = hq_run
    half = train_and_evaluate(tiny(max_steps=15), str(tmp_path))
    assert half["step"] == 15 and half["stopped_early"]
    resumed = train_and_evaluate(tiny(), str(tmp_path))
    assert resumed["step"] == summary["step"]
    (step_a, a), (step_b, b) = _saved_state(straight), _saved_state(tmp_path)
    assert step_a == step_b == summary["step"]
    assert_trees_all_close(a, b, rtol=0, atol=0)


def test_resume_past_a_damaged_newest_checkpoint(hq_run, tmp_path, caplog):
    """The newest checkpoint damaged: the rerun moves it aside, resumes from the one before, trains
    through the damaged step again (saving it anew) and ends with the uninterrupted run's state."""
    import shutil

    straight, summary = hq_run
    workdir = tmp_path / "run"
    shutil.copytree(straight, workdir)
    last = workdir / "checkpoints" / str(summary["step"])
    for path in (last / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with caplog.at_level("WARNING"):
        again = train_and_evaluate(tiny(), str(workdir))
    assert f"The checkpoint of step {summary['step']} cannot be read" in caplog.text
    assert "resumed from step 22" in caplog.text
    assert again["step"] == summary["step"]
    assert [p.name.split(".")[0] for p in (workdir / "checkpoints").glob("*.unreadable-*")] == [last.name]
    (step_a, a), (step_b, b) = _saved_state(straight), _saved_state(workdir)
    assert step_a == step_b
    assert_trees_all_close(a, b, rtol=0, atol=0)


@pytest.mark.slow
def test_pmap_mode_trains_the_same_model_as_jit(tmp_path):
    # The loop's pmap path (step-level equality is in test_steps.py, which runs by default).
    for mode in ("jit", "pmap"):
        train_and_evaluate(tiny("twn", num_epochs=2, max_steps=5, parallel=mode), str(tmp_path / mode))
    (step_j, j), (step_p, p) = _saved_state(tmp_path / "jit"), _saved_state(tmp_path / "pmap")
    assert step_j == step_p == 5
    assert_trees_all_close(j["params"], p["params"], rtol=1e-4, atol=1e-5)
    assert_trees_all_close(j["batch_stats"], p["batch_stats"], rtol=1e-4, atol=1e-5)


def _cli(*args, timeout=300):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_rejects_unknown_fields_and_bad_values(tmp_path):
    out = _cli("--config.no_such_field=1", f"--workdir={tmp_path}")
    assert out.returncode != 0 and "no_such_field" in out.stderr
    out = _cli("--config.method=ternary_magic", f"--workdir={tmp_path}")
    assert out.returncode != 0 and "config.method='ternary_magic' is not valid" in out.stderr
    out = _cli("--config.method_kwargs.sparsity=1.5", f"--workdir={tmp_path}")
    assert out.returncode != 0 and "sparsity" in out.stderr
    assert not os.path.exists(tmp_path / "checkpoints")  # nothing started


def test_devices_seen_by_the_tests():
    assert jax.device_count() == 8
