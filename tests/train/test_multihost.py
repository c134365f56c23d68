"""Multi-process training, for real: several jax processes joined over loopback, as on a TPU pod.

The main scenario trains a short HQ run (`tests/train/multihost_config.py`) with ``train.py`` launched
by `hqjax.launch`: first as 1 process x 8 CPU devices (the reference), then as 2 processes x 4 CPU
devices, SIGKILLing process 1 once the first checkpoint is complete. It checks that the launcher stops
process 0 within a bounded time and names the process that died and how, that a restart resumes from
the last complete checkpoint and finishes, and that the final params, optimizer state and BatchNorm
statistics equal the reference's. The default suite runs it with LeNet-5 (compiles in seconds); the
slow one (``-m slow``) with a ResNet-20, whose BatchNorm statistics are those of the global batch, plus
a Ctrl-C of the launcher (all processes stop at one agreed step with a checkpoint, and the resumed run
ends where the uninterrupted one does) and the pmap mode across processes. Everything else here is
cheap: settings and errors of `hqjax.train.distributed`, the launcher on plain programs, per-process
iterator states in checkpoints, the host-count-independent data order.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from hqjax.data import get_dataset, make_loader
from hqjax.launch import TIMEOUT_EXIT_CODE, describe_exit, free_port, launch, process_env
from hqjax.launch import main as launch_main
from hqjax.train import distributed
from hqjax.train.checkpoint import Checkpointer, CheckpointMismatchError, data_filename
from hqjax.train.logs import read_metrics
from tests.helpers import assert_trees_all_close
from tests.train.multihost_config import get_config, write_digits_idx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = "tests/train/multihost_config.py"
TOTAL_STEPS = 5  # 1437 digits // 256
KILL_GRACE_S = 1.0
# 2 x 4 and 1 x 8 devices reduce in different orders (gloo across processes vs in-process).
RTOL, ATOL = 1e-5, 1e-6


def _launch_cmd(workdir, model_args, *extra, processes=2, devices=4, grace=KILL_GRACE_S):
    """``python -m hqjax.launch ... -- train.py`` for the run ``model_args = (model, *train.py flags)``."""
    model, *model_flags = model_args
    return [
        sys.executable, "-m", "hqjax.launch", "--processes", str(processes), "--devices-per-process",
        str(devices), "--grace", str(grace), "--timeout", "500", "--log-dir", str(workdir / "logs"), "--",
        "train.py", f"--config={CONFIG}:{model}", f"--workdir={workdir}", "--distributed_timeout=120",
        *model_flags, *extra,
    ]


def _start(cmd, env, out_dir, name):
    out = open(out_dir / f"{name}.out", "w")  # noqa: SIM115 - closed by _finish
    err = open(out_dir / f"{name}.err", "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err)
    proc.files = (out, err)
    return proc


def _stop(proc):
    """Stop a launcher and its processes if still running (a second SIGTERM makes it SIGKILL them)."""
    for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    for f in proc.files:
        f.close()


def _finish(proc, timeout):
    """The launcher's exit status; stopped if still running after `timeout` s."""
    try:
        proc.wait(timeout=timeout)
    finally:
        _stop(proc)
    return proc.returncode


def _read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def _pids(err_path, deadline):
    while time.time() < deadline:
        m = re.search(r"pids ((?:\d+=\d+ ?)+)", _read(err_path))
        if m:
            return {int(k): int(v) for k, v in (p.split("=") for p in m.group(1).split())}
        time.sleep(0.05)
    raise AssertionError(f"the launcher never printed its pids: {_read(err_path)}")


def _complete_steps(workdir):
    path = workdir / "checkpoints"
    return sorted(int(d) for d in os.listdir(path) if d.isdigit()) if path.exists() else []


def _saved_state(workdir, step, like=None):
    """The train state of a checkpoint, restored onto this process's devices (laid out as `like`)."""
    target = None if like is None else jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    ck = Checkpointer(str(workdir), async_save=False)
    args = ocp.args.Composite(state=ocp.args.StandardRestore(target))
    out = ck._manager.restore(step, args=args)["state"]
    ck.close()
    return out


def _assert_same_model(workdir, reference):
    one = _saved_state(reference, TOTAL_STEPS)
    two = _saved_state(workdir, TOTAL_STEPS, like=one)
    assert int(two["step"]) == int(one["step"]) == TOTAL_STEPS
    for part in ("params", "opt_state", "batch_stats"):
        assert_trees_all_close(two[part], one[part], rtol=RTOL, atol=ATOL)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def subprocess_env(tmp_path_factory):
    """Environment of the launched runs (1 x 8 and 2 x 4 alike): a compilation cache they share (a
    restart loads what the first run compiled), and XLA:CPU flags that halve compile times (no LLVM
    optimisation; these runs are compile-bound)."""
    env = dict(os.environ)
    env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("xla-cache"))
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    fast_compile = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {fast_compile}".strip()
    return env


def _reference(tmp_path_factory, env, model_args):
    """Train the run as 1 process x 8 devices; its run directory."""
    reference = tmp_path_factory.mktemp("one_by_eight")
    one = _start(_launch_cmd(reference, model_args, processes=1, devices=8), env, reference, "run")
    assert _finish(one, timeout=500) == 0, _read(reference / "run.err")[-3000:]
    assert "Resuming" not in _read(reference / "run.out")  # trained straight through
    return reference


def _killed_and_restarted(tmp_path_factory, env, model_args):
    """Train the run as 2 processes x 4 devices: SIGKILL process 1 once checkpoint 2 is complete, time
    the launcher's stop, then restart the run to the end."""
    workdir = tmp_path_factory.mktemp("two_by_four")
    result = {"workdir": workdir}
    first = _start(_launch_cmd(workdir, model_args), env, workdir, "first")
    try:
        deadline = time.time() + 400
        result["pids"] = pids = _pids(workdir / "first.err", deadline)
        while not (workdir / "checkpoints" / "2").exists():  # step directories appear once complete
            assert first.poll() is None, f"the run ended before checkpoint 2: {_read(workdir / 'first.err')}"
            assert time.time() < deadline, "no checkpoint after 400 s"
            time.sleep(0.02)
        os.kill(pids[1], signal.SIGKILL)
        killed_at = time.time()
        result["first_rc"] = _finish(first, timeout=120)
        result["stop_seconds"] = time.time() - killed_at
    finally:
        _stop(first)
    result["complete_after_kill"] = _complete_steps(workdir)
    second = _start(_launch_cmd(workdir, model_args), env, workdir, "second")
    result["second_rc"] = _finish(second, timeout=500)
    for name in ("first.err", "second.out", "second.err"):
        result[name] = _read(workdir / name)
    return result


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    """The LeNet-5 run: its model and data flags (the digits as 28x28 IDX files)."""
    data_dir = tmp_path_factory.mktemp("digits_idx")
    write_digits_idx(data_dir)
    return ("lenet5", f"--config.data_dir={data_dir}")


@pytest.fixture(scope="module")
def lenet_reference(tmp_path_factory, subprocess_env, lenet):
    return _reference(tmp_path_factory, subprocess_env, lenet)


@pytest.fixture(scope="module")
def lenet_runs(tmp_path_factory, subprocess_env, lenet, lenet_reference):
    return _killed_and_restarted(tmp_path_factory, subprocess_env, lenet)


RESNET = ("resnet20",)


@pytest.fixture(scope="module")
def resnet_reference(tmp_path_factory, subprocess_env):
    return _reference(tmp_path_factory, subprocess_env, RESNET)


@pytest.fixture(scope="module")
def resnet_runs(tmp_path_factory, subprocess_env, resnet_reference):
    return _killed_and_restarted(tmp_path_factory, subprocess_env, RESNET)


def _check_kill(r):
    assert r["first_rc"] == 128 + signal.SIGKILL, r["first.err"]
    assert f"process 1 (pid {r['pids'][1]}) was killed by signal SIGKILL" in r["first.err"]
    assert "run failed: process 1 was killed by signal SIGKILL" in r["first.err"]
    assert r["stop_seconds"] < KILL_GRACE_S + 15, r["first.err"]  # SIGTERM, SIGKILL after the grace
    assert not any(_alive(pid) for pid in r["pids"].values())
    assert r["complete_after_kill"] and max(r["complete_after_kill"]) < TOTAL_STEPS  # killed mid-run


def _check_restart(r):
    assert r["second_rc"] == 0, r["second.err"][-3000:]
    last = max(r["complete_after_kill"])
    assert f"Resuming from the checkpoint of step {last} in" in r["second.out"]
    assert f"{TOTAL_STEPS} steps" in r["second.out"]  # the summary, printed by process 0 only
    other = _read(r["workdir"] / "logs" / "process_1.log")
    assert "Resuming from" not in other and "test accuracy" not in other
    rows = read_metrics(str(r["workdir"]))  # written by process 0 alone: one summary, one eval
    assert [row["split"] for row in rows].count("summary") == 1
    assert [row["step"] for row in rows if row["split"] == "eval"] == [TOTAL_STEPS]
    with open(r["workdir"] / "checkpoints" / str(TOTAL_STEPS) / "data" / data_filename(1, 2)) as f:
        assert "iterator" in json.load(f)  # each process stored its own data position


def test_killing_one_process_stops_the_run_with_a_clear_message(lenet_runs):
    _check_kill(lenet_runs)


def test_restart_resumes_from_the_last_complete_checkpoint(lenet_runs):
    _check_restart(lenet_runs)


def test_two_processes_train_the_same_model_as_one(lenet_runs, lenet_reference):
    assert lenet_runs["second_rc"] == 0
    _assert_same_model(lenet_runs["workdir"], lenet_reference)


@pytest.mark.slow
def test_batchnorm_model_killed_restarted_and_equal_to_one_process(resnet_runs, resnet_reference):
    _check_kill(resnet_runs)
    _check_restart(resnet_runs)
    _assert_same_model(resnet_runs["workdir"], resnet_reference)


# --- the launcher on plain programs ------------------------------------------------------------


def _launch(command, **kwargs):
    """`hqjax.launch.launch` in this process: (exit status, process 0's output, launcher messages)."""
    out, err = io.BytesIO(), io.StringIO()
    status = launch(command, out=out, err=err, **kwargs)
    return status, out.getvalue().decode(), err.getvalue()


def test_launcher_stops_the_others_when_one_fails(tmp_path):
    prog = (
        "import os, sys, time\n"
        "i = int(os.environ['HQJAX_PROCESS_ID'])\n"
        "print('process', i, 'of', os.environ['HQJAX_NUM_PROCESSES'], os.environ['HQJAX_COORDINATOR'],"
        " os.environ['XLA_FLAGS'], flush=True)\n"
        "if i == 2:\n    time.sleep(0.5); print('giving up', flush=True); sys.exit(3)\n"
        "time.sleep(60)\n"
    )
    t0 = time.time()
    status, out, err = _launch(["-c", prog], processes=3, devices_per_process=2, grace=2,
                               log_dir=str(tmp_path))
    assert time.time() - t0 < 30
    assert status == 3
    assert re.search(r"process 2 \(pid \d+\) exited with code 3; stopping the other processes", err)
    assert "giving up" in err  # the end of the failed process's log
    assert "process 0 (pid" in err and "was killed by signal SIGTERM" in err
    assert "process 0 of 3 127.0.0.1:" in out  # process 0's output is streamed
    assert "--xla_force_host_platform_device_count=2" in out
    assert "process 1 of 3" not in out and "process 1 of 3" in _read(tmp_path / "process_1.log")


def test_launcher_success_timeout_and_usage(capsys):
    status, out, _ = _launch(["-c", "print('hello')"], processes=2)
    assert status == 0 and out.count("hello") == 1
    status, _, err = _launch(["-c", "import time; time.sleep(60)"], processes=2, timeout=0.5, grace=1)
    assert status == TIMEOUT_EXIT_CODE and "timed out after 0.5 s" in err
    assert launch_main(["--processes", "2", "-c", "pass"]) == 2  # no '--'
    assert "give the command after '--'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        launch_main(["--processes", "0", "--", "-c", "pass"])
    assert "--processes must be >= 1" in capsys.readouterr().err


def test_process_env_and_exit_descriptions():
    env = process_env(1, 4, "127.0.0.1:1234", 2, base={
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8 --foo", "JAX_PROCESS_ID": "3",
    })
    assert env["HQJAX_PROCESS_ID"] == "1" and env["HQJAX_NUM_PROCESSES"] == "4"
    assert env["XLA_FLAGS"] == "--foo --xla_force_host_platform_device_count=2"
    assert "JAX_PROCESS_ID" not in env and env["JAX_PLATFORMS"] == "cpu"
    assert describe_exit(-9) == "was killed by signal SIGKILL" and describe_exit(2) == "exited with code 2"
    assert 0 < free_port() < 65536


# --- settings and errors of hqjax.train.distributed ---------------------------------------------


def test_settings_come_from_flags_then_hqjax_then_jax_variables():
    env = {"HQJAX_COORDINATOR": "10.0.0.1:99", "JAX_COORDINATOR_ADDRESS": "10.0.0.9:1",
           "JAX_NUM_PROCESSES": "4", "HQJAX_PROCESS_ID": "2"}
    assert distributed.resolve(env=env) == distributed.Settings("10.0.0.1:99", 4, 2)
    assert distributed.resolve("h:7", 2, 1, env=env) == distributed.Settings("h:7", 2, 1)
    assert distributed.resolve(env={}) is None  # no coordinator: a single process
    assert distributed.resolve(env=env, mode="off") is None
    assert distributed.resolve("h:7", 1, 0, env={}) is None  # a run of one process
    assert distributed.resolve(env={}, mode="auto") == distributed.Settings(None, None, None)


@pytest.mark.parametrize("kwargs, env, message", [
    ({"coordinator": "h:1", "num_processes": 2}, {}, r"needs --process_id \(or HQJAX_PROCESS_ID"),
    ({"coordinator": "h:1", "process_id": 0}, {}, "needs --num_processes"),
    ({"coordinator": "h:1", "num_processes": 2, "process_id": 2}, {}, r"must be in \[0, 2\)"),
    ({}, {"HQJAX_NUM_PROCESSES": "2", "HQJAX_PROCESS_ID": "1"}, "needs the coordinator address"),
    ({"coordinator": "nohost"}, {}, "must be host:port"),
    ({"coordinator": "h:1"}, {"HQJAX_NUM_PROCESSES": "two"}, "HQJAX_NUM_PROCESSES must be an integer"),
    ({"coordinator": "h:1", "num_processes": 0, "process_id": 0}, {}, "must be >= 1"),
])
def test_incomplete_or_bad_settings_are_clear_errors(kwargs, env, message):
    with pytest.raises(distributed.DistributedConfigError, match=message):
        distributed.resolve(env=env, **kwargs)


def _join(process_id, port, timeout_s):
    code = (
        "from hqjax.train import distributed\n"
        f"distributed.initialize('127.0.0.1:{port}', 2, {process_id}, timeout_s={timeout_s})\n"
    )
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_joining_without_a_coordinator_times_out_clearly():
    out = _join(1, free_port(), 1)
    assert out.returncode != 0
    assert "TimeoutError: Process 1 of 2 could not reach the coordinator at 127.0.0.1:" in out.stderr
    out = _join(0, free_port(), 1)  # process 0 waits for process 1, which never comes
    assert out.returncode == distributed.JOIN_FAILED_EXIT_CODE
    assert "process 0 of 2 did not complete joining the run" in out.stderr


def test_train_py_reports_bad_settings_before_starting(tmp_path):
    env = dict(os.environ, HQJAX_COORDINATOR="127.0.0.1:1", HQJAX_NUM_PROCESSES="2", HQJAX_PROCESS_ID="5")
    out = subprocess.run([sys.executable, "train.py", f"--workdir={tmp_path}"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "Cannot join the multi-process run: The process id must be in [0, 2)" in out.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HQJAX_", "JAX_COORDINATOR"))}
    out = subprocess.run([sys.executable, "train.py", f"--workdir={tmp_path}", "--distributed=auto"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "jax.distributed could not start: coordinator_address" in out.stderr
    assert not (tmp_path / "checkpoints").exists()


# --- per-process data states in checkpoints ------------------------------------------------------


def test_checkpoint_of_another_process_count_is_refused(tmp_path):
    state = {"w": np.arange(4.0, dtype=np.float32)}
    config = get_config().to_dict()
    ck = Checkpointer(str(tmp_path), async_save=False)
    ck.save(3, state, {"next_index": 7}, config)
    data_dir = tmp_path / "checkpoints" / "3" / "data"
    assert [n for n in os.listdir(data_dir) if n.endswith(".json")] == [data_filename(0, 1)]
    assert ck.restore(state, config)[2] == {"next_index": 7}
    os.rename(data_dir / data_filename(0, 1), data_dir / data_filename(0, 2))
    with pytest.raises(CheckpointMismatchError, match=r"written by a run of 2 process\(es\); this run has 1"):
        ck.restore(state, config)
    # single-process checkpoints written before per-process files still resume
    os.rename(data_dir / data_filename(0, 2), data_dir / "metadata")
    assert ck.restore(state, config)[2] == {"next_index": 7}
    ck.close()


# --- the data order does not depend on the number of hosts ----------------------------------------


def test_interleaved_shards_rebuild_the_single_host_batches():
    src = get_dataset("digits", "train")
    kw = {"train": True, "seed": 3, "dataset": "digits", "augment": False}

    def batches(index, count, batch, sharding):
        it = iter(make_loader(src, batch_size=batch, shard_index=index, shard_count=count,
                              host_sharding=sharding, **kw))
        return [next(it)["label"] for _ in range(12)]  # crosses the first epoch boundary

    single = batches(0, 1, 120, "contiguous")
    assert all(np.array_equal(a, b) for a, b in zip(single, batches(0, 1, 120, "interleaved"), strict=True))
    for count in (2, 4):
        hosts = [batches(i, count, 120 // count, "interleaved") for i in range(count)]
        for step, batch in enumerate(single):
            assert np.array_equal(np.concatenate([h[step] for h in hosts]), batch)
    with pytest.raises(ValueError, match="host_sharding"):
        make_loader(src, batch_size=8, host_sharding="striped", **kw)


# --- slow: coordinated stop on interrupt; pmap across processes -----------------------------------


@pytest.mark.slow
def test_interrupting_the_launcher_saves_at_one_step_and_resumes(tmp_path, subprocess_env, resnet_reference):
    first = _start(_launch_cmd(tmp_path, RESNET, grace=300), subprocess_env, tmp_path, "first")
    deadline = time.time() + 600
    while not (tmp_path / "checkpoints" / "2").exists():
        assert first.poll() is None and time.time() < deadline, _read(tmp_path / "first.err")
        time.sleep(0.02)
    first.send_signal(signal.SIGINT)  # Ctrl-C
    assert _finish(first, timeout=600) == 128 + signal.SIGINT
    err = _read(tmp_path / "first.err")
    assert "SIGINT received: asking all processes to stop" in err and "SIGKILL" not in err
    assert "process 0 (pid" in err and "exited with code 0" in err
    stopped = max(_complete_steps(tmp_path))
    assert 2 <= stopped < TOTAL_STEPS  # the agreed step, saved by both processes
    written = set(os.listdir(tmp_path / "checkpoints" / str(stopped) / "data"))
    assert {data_filename(0, 2), data_filename(1, 2)} <= written
    second = _start(_launch_cmd(tmp_path, RESNET), subprocess_env, tmp_path, "second")
    assert _finish(second, timeout=600) == 0, _read(tmp_path / "second.err")
    assert f"Resuming from the checkpoint of step {stopped} in" in _read(tmp_path / "second.out")
    _assert_same_model(tmp_path, resnet_reference)


@pytest.mark.slow
def test_pmap_mode_across_processes_trains_the_same_model(tmp_path, subprocess_env, resnet_reference):
    run = _start(_launch_cmd(tmp_path, RESNET, "--config.parallel=pmap"), subprocess_env, tmp_path, "run")
    assert _finish(run, timeout=600) == 0, _read(tmp_path / "run.err")
    _assert_same_model(tmp_path, resnet_reference)
