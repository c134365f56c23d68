"""A run killed with SIGKILL and resumed ends bit-identical to an uninterrupted run (jit and pmap).

Slow (four full `train.py` processes per mode, each compiling its steps): run with ``-m slow``.
"""

import os
import signal
import subprocess
import sys
import time

import orbax.checkpoint as ocp
import pytest

from hqjax.train.checkpoint import Checkpointer
from tests.helpers import assert_trees_all_close

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARGS = [
    "--config.num_epochs=2", "--config.batch_size=128",
    "--config.checkpoint_every_steps=4", "--config.progress_bar=False", "--config.tensorboard=False",
    "--config.bn_recalibration_batches=2",
]


def _start(workdir, mode):
    cmd = [sys.executable, "train.py", f"--workdir={workdir}", f"--config.parallel={mode}", *ARGS]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _final(workdir):
    ck = Checkpointer(str(workdir), async_save=False)
    step = ck.latest_step()
    out = ck._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    ck.close()
    return step, out


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["jit", "pmap"])
def test_sigkill_then_resume_is_bit_identical(tmp_path, mode):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    proc = _start(straight, mode)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()

    proc = _start(killed, mode)
    target = killed / "checkpoints" / "8"  # appears atomically once complete
    deadline = time.time() + 600
    while not target.exists():
        assert proc.poll() is None, f"run ended before step 8: {proc.stderr.read()}"
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    proc = _start(killed, mode)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    (step_a, a), (step_b, b) = _final(straight), _final(killed)
    assert step_a == step_b == 2 * (1437 // 128)
    assert_trees_all_close(a["params"], b["params"], rtol=0, atol=0)
    assert_trees_all_close(a["opt_state"], b["opt_state"], rtol=0, atol=0)
    assert_trees_all_close(a["batch_stats"], b["batch_stats"], rtol=0, atol=0)
