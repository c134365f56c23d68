"""SIGKILL at ten points of one short run, each followed by a rerun of the same command: the run always
completes, and the exported ``.hqx`` file equals an uninterrupted run's byte for byte (``-m slow``).

The points are events seen in the run directory, in order: the lock written (start-up, before the
first step), and for steps 4, 8, 12 and 16 the moment a save is under way (orbax's
``<step>.orbax-checkpoint-tmp`` directory exists: the middle of the asynchronous save) and the moment it
is complete, then the final checkpoint of step 22 present (the run is evaluating and exporting).
Each rerun resumes from whatever the killed run left: a complete checkpoint, a half-written one (which
must be discarded) or nothing.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.faults.test_cli_errors import ROOT

ARGS = ["--config", "configs/default.py:hq", "--config.progress_bar=False", "--config.tensorboard=False",
        "--config.num_epochs=2", "--config.checkpoint_every_steps=4", "--config.model_kwargs={'width': 4}",
        "--config.keep_checkpoints=3", "--config.bn_recalibration_batches=2"]
LAST = 2 * (1437 // 128)


def _env():
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env.pop("HQJAX_VERBOSE", None)
    return env


def _start(workdir):
    return subprocess.Popen([sys.executable, "train.py", *ARGS, f"--workdir={workdir}"], cwd=ROOT,
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _points():
    """(name, the path whose appearance triggers the kill), in the order the run reaches them."""
    yield "start-up", "train.lock"
    for step in (4, 8, 12, 16):
        yield f"during the save of step {step}", f"checkpoints/{step}.orbax-checkpoint-tmp"
        yield f"after the save of step {step}", f"checkpoints/{step}"
    yield "after the last checkpoint", f"checkpoints/{LAST}"


def _export(workdir, out):
    r = subprocess.run([sys.executable, "-m", "hqjax.export", f"--workdir={workdir}", f"--out={out}"],
                       cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return out.read_bytes()


@pytest.mark.slow
def test_sigkill_at_ten_points_then_rerun_gives_the_same_exported_file(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    proc = _start(straight)
    assert proc.wait(timeout=900) == 0, proc.stderr.read()[-2000:]

    outcomes = []
    for name, rel in _points():
        target = killed / rel
        proc = _start(killed)
        deadline = time.time() + 600
        while not target.exists() and proc.poll() is None:
            assert time.time() < deadline, name
            time.sleep(0.002)
        if proc.poll() is not None:  # the rerun passed this point before it could be seen: it finished
            outcomes.append((name, f"completed (rc {proc.returncode})"))
            assert proc.returncode == 0, proc.stderr.read()[-2000:]
            continue
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        outcomes.append((name, "killed"))
    mid_save = [n for n, o in outcomes if n.startswith("during") and o == "killed"]
    assert len([o for _, o in outcomes if o == "killed"]) >= 8, outcomes
    assert mid_save, outcomes

    proc = _start(killed)  # the final rerun completes
    assert proc.wait(timeout=900) == 0, proc.stderr.read()[-2000:]
    assert not [d for d in os.listdir(killed / "checkpoints") if "tmp" in d]
    a = _export(straight, tmp_path / "straight.hqx")
    b = _export(killed, tmp_path / "killed.hqx")
    assert a == b, outcomes
