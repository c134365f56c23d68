"""A full disk during a checkpoint save: one clear line, the previous checkpoint intact, and a rerun
after space is freed resumes and ends where an uninterrupted run ends.

The disk is "full" through ``RLIMIT_FSIZE`` in the child (no file may grow past 60 kB: the checkpoint's
array files of the width-4 ResNet-20 are ~80-95 kB, the run's logs stay far below), so a write fails
with ``EFBIG`` exactly as it would with ``ENOSPC``.
"""

import hashlib
import os
import resource
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests.faults.test_cli_errors import ROOT

ARGS = ["--config", "configs/default.py:twn", "--config.progress_bar=False", "--config.tensorboard=False",
        "--config.num_epochs=2", "--config.checkpoint_every_steps=5", "--config.model_kwargs={'width': 4}",
        "--config.keep_checkpoints=3"]


def _run(workdir, *extra, fsize=None):
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env.pop("HQJAX_VERBOSE", None)

    def limit():
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([sys.executable, "train.py", *ARGS, f"--workdir={workdir}", *extra], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900, preexec_fn=limit)


def _digest(path):
    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            h.update(os.path.relpath(os.path.join(root, name), path).encode())
            with open(os.path.join(root, name), "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def _final_state(workdir):
    import orbax.checkpoint as ocp

    from hqjax.train.checkpoint import Checkpointer

    ck = Checkpointer(str(workdir), async_save=False)
    step = ck.latest_step()
    out = ck._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    ck.close()
    return step, [np.asarray(x) for x in jax.tree.leaves(out["state"])]


@pytest.mark.slow
def test_disk_full_during_a_save_keeps_the_last_checkpoint_and_the_rerun_resumes(tmp_path):
    wd = tmp_path / "run"
    first = _run(wd, "--config.max_steps=10")  # checkpoints of steps 5 and 10
    assert first.returncode == 0, first.stderr[-2000:]
    before = _digest(wd / "checkpoints" / "10")

    full = _run(wd, fsize=60_000)  # resumes at 10; the save of step 15 cannot be written
    assert full.returncode != 0
    assert "Traceback" not in full.stderr, full.stderr[-3000:]
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "checkpoint of step 15" in last, last
    assert "step 10 is intact" in last and "Free disk space" in last, last
    names = os.listdir(wd / "checkpoints")
    assert "15" not in names and "10" in names, names  # no half-written step looks complete
    assert _digest(wd / "checkpoints" / "10") == before  # the previous checkpoint is untouched

    again = _run(wd)  # space freed: the same command resumes from step 10 and finishes
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Resuming from the checkpoint of step 10" in again.stdout + again.stderr

    straight = _run(tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-2000:]
    (s1, a), (s2, b) = _final_state(wd), _final_state(tmp_path / "straight")
    assert s1 == s2 == 22
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
