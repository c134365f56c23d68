"""Faults in a 2-process run through `hqjax.launch` (``-m slow``): SIGKILL of one process at points
spread over a run, and a damaged newest checkpoint in each way of `test_checkpoint.py` plus the damage of
one process's own data-iterator file.

Every rerun of the same command completes, and its final train state equals, bit for bit, that of an
uninterrupted 2-process run: params, optimizer state and BatchNorm statistics. The run is the LeNet-5
of `tests/train/multihost_config.py` (5 steps; checkpoints at steps 2, 4 and 5).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import jax
import orbax.checkpoint as ocp
import pytest

from tests.helpers import assert_trees_all_close
from tests.train.multihost_config import write_digits_idx
from tests.train.test_multihost import (
    TOTAL_STEPS,
    _finish,
    _launch_cmd,
    _pids,
    _read,
    _start,
    _stop,
    subprocess_env,  # noqa: F401 - a fixture used here
)

pytestmark = pytest.mark.slow
LAST_BUT_ONE = 4  # the checkpoint a rerun falls back to when step 5's cannot be read


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("digits_idx")
    write_digits_idx(data_dir)
    return ("lenet5", f"--config.data_dir={data_dir}")


def _run(workdir, env, model_args, name):
    """Launch the 2-process run on `workdir` until it ends; its exit status and process 0's output."""
    proc = _start(_launch_cmd(workdir, model_args), env, workdir, name)
    rc = _finish(proc, timeout=500)
    return rc, _read(workdir / f"{name}.out"), _read(workdir / f"{name}.err")


@pytest.fixture(scope="module")
def straight(tmp_path_factory, subprocess_env, lenet):  # noqa: F811
    """An uninterrupted 2 x 4 run: the state every faulted run must end with."""
    workdir = tmp_path_factory.mktemp("straight")
    rc, out, err = _run(workdir, subprocess_env, lenet, "run")
    assert rc == 0, err[-3000:]
    assert "Resuming" not in out
    return workdir


def _final_state(workdir):
    """The train state of a 2-process run's last checkpoint, restored onto one device of this process."""
    path = str(workdir / "checkpoints" / str(TOTAL_STEPS) / "state")
    metadata = ocp.StandardCheckpointer().metadata(path).item_metadata
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), metadata)
    return ocp.StandardCheckpointer().restore(path, target)


def _assert_same_final_state(workdir, reference):
    a, b = _final_state(reference), _final_state(workdir)
    assert int(a["step"]) == int(b["step"]) == TOTAL_STEPS
    for part in ("params", "opt_state", "batch_stats"):
        assert_trees_all_close(b[part], a[part], rtol=0, atol=0)


def _points():
    """(name, path whose appearance triggers the kill, process to kill), in the order a run reaches them."""
    yield "start-up", "train.lock", 1
    yield "during the save of step 2", "checkpoints/2.orbax-checkpoint-tmp", 0
    yield "after the save of step 2", "checkpoints/2", 1
    yield "during the save of step 4", "checkpoints/4.orbax-checkpoint-tmp", 1
    yield "after the save of step 4", "checkpoints/4", 0
    yield "after the last checkpoint", f"checkpoints/{TOTAL_STEPS}", 1


def test_sigkill_of_either_process_at_six_points_then_rerun_ends_with_the_same_state(
    tmp_path, subprocess_env, lenet, straight  # noqa: F811
):
    workdir = tmp_path / "killed"
    workdir.mkdir()
    outcomes = []
    for i, (name, rel, victim) in enumerate(_points()):
        proc = _start(_launch_cmd(workdir, lenet), subprocess_env, workdir, f"try{i}")
        try:
            pids = _pids(workdir / f"try{i}.err", time.time() + 300)
            deadline = time.time() + 400
            while not (workdir / rel).exists() and proc.poll() is None:
                assert time.time() < deadline, name
                time.sleep(0.002)
            if proc.poll() is not None:  # this rerun got past the point unseen: it must have finished
                assert proc.returncode == 0, _read(workdir / f"try{i}.err")[-3000:]
                outcomes.append((name, "completed"))
                continue
            os.kill(pids[victim], signal.SIGKILL)
            rc = _finish(proc, timeout=120)
        finally:
            _stop(proc)
        err = _read(workdir / f"try{i}.err")
        if rc == 0:  # the kill came as the process was exiting after a complete run
            outcomes.append((name, "completed"))
            continue
        assert rc == 128 + signal.SIGKILL, err[-3000:]
        assert f"process {victim} (pid {pids[victim]}) was killed by signal SIGKILL" in err
        outcomes.append((name, f"process {victim} killed"))
    assert len([o for _, o in outcomes if o.endswith("killed")]) >= 5, outcomes

    rc, out, err = _run(workdir, subprocess_env, lenet, "final")
    assert rc == 0, err[-3000:]
    assert not [d for d in os.listdir(workdir / "checkpoints") if "tmp" in d]
    _assert_same_final_state(workdir, straight)


def _files(directory):
    return [os.path.join(r, f) for r, _, fs in os.walk(directory) for f in fs]


def _damage(step_dir, how):
    if how == "truncate_files":
        for path in _files(step_dir / "state"):
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
    elif how == "flip_bytes":
        for path in _files(step_dir / "state"):
            data = bytearray(open(path, "rb").read())
            for i in range(0, len(data), 7):
                data[i] ^= 0xFF
            open(path, "wb").write(bytes(data))
    elif how == "remove_state":
        shutil.rmtree(step_dir / "state")
    elif how == "empty_dir":
        shutil.rmtree(step_dir)
        step_dir.mkdir()
    elif how == "no_metadata":
        for entry in step_dir.iterdir():
            if entry.is_file():
                entry.unlink()
        shutil.rmtree(step_dir / "config")
    elif how == "one_process_data_file":  # only process 1 cannot read its data position
        (path,) = (p for p in _files(step_dir / "data") if "process_1-of-2" in p)
        with open(path, "w") as f:
            f.write('{"iterator": ')
    else:
        raise ValueError(how)


@pytest.mark.parametrize(
    "how",
    ["truncate_files", "flip_bytes", "remove_state", "empty_dir", "no_metadata", "one_process_data_file"],
)
def test_damaged_newest_checkpoint_is_moved_aside_and_the_rerun_ends_with_the_same_state(
    tmp_path, subprocess_env, lenet, straight, how  # noqa: F811
):
    workdir = tmp_path / "run"
    shutil.copytree(straight, workdir)
    step_dir = workdir / "checkpoints" / str(TOTAL_STEPS)
    _damage(step_dir, how)
    rc, out, err = _run(workdir, subprocess_env, lenet, "rerun")
    assert rc == 0, err[-3000:]
    assert f"The checkpoint of step {TOTAL_STEPS} cannot be read" in out + err
    assert f"resumed from step {LAST_BUT_ONE}" in out + err
    assert f"Resuming from the checkpoint of step {LAST_BUT_ONE} in" in out
    aside = [p.name for p in (workdir / "checkpoints").iterdir() if ".unreadable-" in p.name]
    assert [name.split(".")[0] for name in aside] == [str(TOTAL_STEPS)]
    with open(step_dir / "data" / "process_1-of-2.json") as f:  # saved anew by the rerun
        assert "iterator" in json.load(f)
    _assert_same_final_state(workdir, straight)
