"""Errors a user can cause from the command line: one line on stderr saying what is wrong and how to
fix it, a non-zero exit code and no traceback; ``--verbose`` / ``HQJAX_VERBOSE=1`` add the traceback.

Each case runs the real ``train.py`` in a subprocess; every one fails before the first training step.
"""

import gzip
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.data.test_idx import write_split

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAST = ["--config.progress_bar=False", "--config.tensorboard=False", "--config.num_epochs=2"]


def _train(*args, env=None):
    e = dict(os.environ)
    e.pop("XLA_FLAGS", None)
    e.pop("HQJAX_VERBOSE", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, env=e, capture_output=True,
                          text=True, timeout=300)


def _mnist_dir(tmp_path, damage=None):
    tmp_path.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 300), ("test", 50)):
        write_split(tmp_path, split, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                    rng.integers(0, 10, n, dtype=np.uint8))
    if damage == "gzip":
        path = tmp_path / "train-images-idx3-ubyte.gz"
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif damage == "header":
        path = tmp_path / "train-labels-idx1-ubyte.gz"
        path.write_bytes(gzip.compress(b"\x00\x00\x0c\x01" + gzip.decompress(path.read_bytes())[4:]))
    return tmp_path


def _cases(tmp_path):
    lenet = ["--config", "configs/mnist_lenet5.py:twn"]
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    return {
        "unknown config field": ([f"--workdir={tmp_path / 'w1'}", "--config.learning_rat=0.1"],
                                 "learning_rate"),
        "batch not a multiple of the devices": (
            [f"--workdir={tmp_path / 'w2'}", "--config.batch_size=127", "--cpu_devices=2", *FAST],
            "--config.batch_size=126"),
        "missing data_dir": (
            [*lenet, f"--workdir={tmp_path / 'w3'}", f"--config.data_dir={tmp_path / 'nowhere'}", *FAST],
            "does not exist"),
        "truncated gzip": (
            [*lenet, f"--workdir={tmp_path / 'w4'}",
             f"--config.data_dir={_mnist_dir(tmp_path / 'gz', 'gzip')}",
             *FAST],
            "train-images-idx3-ubyte"),
        "bad IDX header": (
            [*lenet, f"--workdir={tmp_path / 'w5'}",
             f"--config.data_dir={_mnist_dir(tmp_path / 'hd', 'header')}",
             *FAST],
            "train-labels-idx1-ubyte"),
        "workdir that cannot be written": ([f"--workdir={blocker / 'run'}", *FAST], "a_file"),
        "bad config value": ([f"--workdir={tmp_path / 'w6'}", "--config.validation_split=-1", *FAST],
                             "validation_split"),
    }


CASES = ["unknown config field", "batch not a multiple of the devices", "missing data_dir",
         "truncated gzip", "bad IDX header", "workdir that cannot be written", "bad config value"]


@pytest.mark.parametrize("case", CASES)
def test_user_error_is_one_line_without_traceback(tmp_path, case):
    args, needle = _cases(tmp_path)[case]
    r = _train(*args)
    assert r.returncode != 0, r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "WARNING" not in ln[:40]]
    assert "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1, r.stderr
    assert needle in lines[0], lines[0]
    assert not (tmp_path / "w2" / "checkpoints").exists()  # nothing trained


def test_verbose_shows_the_traceback(tmp_path):
    args, _ = _cases(tmp_path)["batch not a multiple of the devices"]
    for extra, env in ((["--verbose"], None), ([], {"HQJAX_VERBOSE": "1"})):
        r = _train(*args, *extra, env=env)
        assert r.returncode != 0 and "Traceback" in r.stderr and "ValueError" in r.stderr


def test_non_finite_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path):
    """A learning rate of 1e30 overflows within a few steps: the run ends with one line naming the
    first step whose loss is not finite; every checkpoint on disk is complete, older than that step,
    and finite."""
    import re

    import orbax.checkpoint as ocp

    from hqjax.train.checkpoint import Checkpointer

    wd = tmp_path / "nan"
    r = _train("--config", "configs/default.py:fp", f"--workdir={wd}", "--config.learning_rate=1e30",
               "--config.checkpoint_every_steps=1", "--config.model_kwargs={'width': 4}", *FAST)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    m = re.search(r"(?:The training loss became \S+ at|The weights became non-finite in) step (\d+)",
                  r.stderr)
    assert m, r.stderr
    bad = int(m.group(1))
    ck = Checkpointer(str(wd), async_save=False)
    steps = sorted(ck._manager.all_steps())
    assert steps and max(steps) == bad - 1, (steps, bad)  # every step before it saved, none after
    assert not [d for d in os.listdir(ck.directory) if "tmp" in d]  # no half-written save left behind
    state = ck._manager.restore(max(steps), args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    ck.close()
    leaves = [np.asarray(x) for x in __import__("jax").tree.leaves(state["state"])]
    assert all(np.isfinite(x).all() for x in leaves if x.dtype.kind == "f")
