"""Two runs on one run directory: the second refuses with one line; a killed run leaves no stuck lock.

The holder of the lock is either a small process that only takes the lock (fast) or a real ``train.py``
run (``-m slow``); the refused run is always the real ``train.py``.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from hqjax.train.lock import LOCK_FILE, WorkdirLockedError, workdir_lock
from tests.faults.test_cli_errors import FAST, ROOT, _train

_HOLD = "import sys, time; from hqjax.train.lock import workdir_lock\nwith workdir_lock(sys.argv[1]):\n" \
        "    print('locked', flush=True); time.sleep(600)"


def _wait_for_lock(path, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and "pid" in open(path).read():
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError(f"{path} was never written")


def _one_line(r):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "WARNING" not in ln[:40]]
    assert "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_lock_is_exclusive_and_released(tmp_path):
    wd = str(tmp_path / "run")
    with workdir_lock(wd):
        assert f"pid {os.getpid()}" in open(os.path.join(wd, LOCK_FILE)).read()
        with pytest.raises(WorkdirLockedError, match=f"pid {os.getpid()}.*another --workdir"):
            with workdir_lock(wd):
                pass
    with workdir_lock(wd):  # released on exit, also after the refusal
        pass
    with pytest.raises(RuntimeError, match="boom"):  # an error inside the block releases it too
        with workdir_lock(wd):
            raise RuntimeError("boom")
    with workdir_lock(wd):
        pass


def test_second_train_refuses_and_a_killed_holder_leaves_no_stuck_lock(tmp_path):
    wd = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(wd)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_lock(wd / LOCK_FILE, holder)
        r = _train(f"--workdir={wd}", *FAST)
        assert r.returncode != 0
        line = _one_line(r)
        assert "in use by another training run" in line and f"pid {holder.pid}" in line, line
        assert not (wd / "checkpoints").exists()  # refused before anything was written
        assert holder.poll() is None  # the holder is untouched
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with workdir_lock(str(wd)):  # the OS dropped the killed process's lock; the stale file is harmless
        assert "pid" in (wd / LOCK_FILE).read_text()


@pytest.mark.slow
def test_a_run_killed_mid_training_does_not_lock_its_directory(tmp_path):
    """A real run holds the lock while it trains; a second run is refused; after SIGKILL of the first,
    the same command resumes and completes."""
    wd = tmp_path / "run"
    args = ["--config", "configs/default.py:twn", f"--workdir={wd}", "--config.progress_bar=False",
            "--config.tensorboard=False", "--config.model_kwargs={'width': 4}",
            "--config.checkpoint_every_steps=5"]
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    first = subprocess.Popen([sys.executable, "train.py", *args, "--config.num_epochs=200"], cwd=ROOT,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_lock(wd / LOCK_FILE, first)
        deadline = time.time() + 240
        while not (wd / "checkpoints").exists() or not any(
                d.isdigit() for d in os.listdir(wd / "checkpoints")):
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.5)
        r = _train(*args, "--config.num_epochs=200")
        assert r.returncode != 0 and "in use by another training run" in _one_line(r)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    r = _train(*args, "--config.num_epochs=2")
    assert r.returncode == 0, r.stderr[-2000:]
