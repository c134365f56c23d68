"""Run a program as N cooperating jax processes on this machine's CPU (a pod in miniature, for testing).

    python -m hqjax.launch --processes 2 --devices-per-process 4 -- train.py --workdir runs/mh

starts ``train.py`` twice, as processes 0 and 1 of one run joined over loopback: each gets
``HQJAX_COORDINATOR=127.0.0.1:PORT`` (a free port unless ``--port`` is given), ``HQJAX_NUM_PROCESSES``,
its own ``HQJAX_PROCESS_ID``, ``JAX_PLATFORMS=cpu`` and ``--xla_force_host_platform_device_count`` in
``XLA_FLAGS``, so jax sees ``processes x devices-per-process`` devices in all. A command that starts
with a ``.py`` file, ``-m`` or ``-c`` runs under this Python interpreter.

Process 0's output is streamed here; every process's output is also written to
``LOG_DIR/process_{i}.log`` (a new temporary directory unless ``--log-dir`` is given). When a process
exits with an error or is killed, the launcher stops the others (SIGTERM, then SIGKILL after
``--grace`` seconds), prints which process failed and how, with the end of its log, and exits with a
non-zero status: the process's exit code, or 128 + the signal number. Ctrl-C (or SIGTERM) asks all
processes to stop (the training program saves a checkpoint first); a second Ctrl-C kills them.
``--timeout`` bounds the whole run (exit status 124).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO

TIMEOUT_EXIT_CODE = 124
_PREFIX = "[hqjax.launch]"
_POLL_S = 0.05
_TAIL_LINES = 30


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def describe_exit(returncode: int) -> str:
    """'exited with code 3' or 'was killed by signal SIGKILL' for a `subprocess` return code."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"was killed by signal {name}"
    return f"exited with code {returncode}"


def _exit_status(returncode: int) -> int:
    """The shell's convention: a process killed by signal S gives 128 + S."""
    return 128 - returncode if returncode < 0 else returncode


def process_env(
    process_id: int,
    num_processes: int,
    coordinator: str,
    devices_per_process: int,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one process of a local CPU run.

    Args:
      process_id: this process's index.
      num_processes: processes in the run.
      coordinator: ``host:port`` of process 0's coordination service.
      devices_per_process: CPU devices each process simulates (``--xla_force_host_platform_device_count``).
      base: the environment to start from (default ``os.environ``).
    """
    env = dict(os.environ if base is None else base)
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        env.pop(name, None)
    xla_flags = re.sub(r"--xla_force_host_platform_device_count=\S*", "", env.get("XLA_FLAGS", ""))
    env.update(
        HQJAX_COORDINATOR=coordinator,
        HQJAX_NUM_PROCESSES=str(num_processes),
        HQJAX_PROCESS_ID=str(process_id),
        JAX_COORDINATOR_BIND_ADDRESS=coordinator,  # listen on loopback only
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"{xla_flags.strip()} --xla_force_host_platform_device_count={devices_per_process}".strip(),
        PYTHONUNBUFFERED="1",
    )
    return env


def _command(command: Sequence[str]) -> list[str]:
    """Run ``.py`` files, ``-m module`` and ``-c code`` under this interpreter."""
    command = list(command)
    if command and (command[0].endswith(".py") or command[0] in ("-m", "-c")):
        return [sys.executable, *command]
    return command


# Runs first in each child: ask Linux for a SIGTERM when the launcher dies (PR_SET_PDEATHSIG, kept
# across exec), so that no process outlives a launcher killed with SIGKILL; then exec the command.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "try:\n"
    "    ctypes.CDLL(None).prctl(1, signal.SIGTERM)\n"
    "except (OSError, AttributeError):\n"
    "    pass\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(1)  # the launcher is already gone\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def _with_parent_watch(argv: list[str]) -> list[str]:
    if not sys.platform.startswith("linux"):
        return argv
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *argv]


def _pump(src: IO[bytes], sinks: Sequence[IO[bytes]]) -> None:
    """Copy `src` to every sink until end of file (keeps carriage returns: progress bars still work)."""
    fd = src.fileno()
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        for sink in sinks:
            try:
                sink.write(chunk)
                sink.flush()
            except (OSError, ValueError):
                pass


def _tail(path: str, lines: int = _TAIL_LINES) -> str:
    with open(path, "rb") as f:
        text = f.read().decode(errors="replace").replace("\r", "\n")
    return "\n".join(text.splitlines()[-lines:])


class _Interrupt:
    """Counts SIGINT/SIGTERM received by the launcher while it runs."""

    def __init__(self) -> None:
        self.count = 0
        self.signum = 0
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _Interrupt:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread: no signal handling
                pass
        return self

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        self.count += 1
        self.signum = self.signum or signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def launch(
    command: Sequence[str],
    *,
    processes: int,
    devices_per_process: int = 1,
    port: int | None = None,
    timeout: float | None = None,
    grace: float = 10.0,
    log_dir: str | None = None,
    out: IO[bytes] | None = None,
    err: IO[str] | None = None,
) -> int:
    """Run `command` as processes ``0..processes-1`` of one run on loopback; returns an exit status.

    Args:
      command: the program and its arguments (a ``.py`` file, ``-m module`` or ``-c code`` runs under
        this Python).
      processes: number of processes.
      devices_per_process: CPU devices each process simulates.
      port: coordinator port on 127.0.0.1 (default: a free one).
      timeout: seconds the whole run may take (None: no limit).
      grace: seconds between SIGTERM and SIGKILL when stopping processes.
      log_dir: directory of the per-process logs (default: a new temporary directory).
      out: where process 0's output goes (default: this process's stdout).
      err: where the launcher's own messages go (default: stderr).

    Returns:
      0 when every process exited with 0; else the failed process's exit code (128 + signal number
      when it was killed), 124 on timeout, 128 + signal number when the launcher was interrupted.
    """
    if processes < 1:
        raise ValueError(f"--processes must be >= 1, got {processes}.")
    if devices_per_process < 1:
        raise ValueError(f"--devices-per-process must be >= 1, got {devices_per_process}.")
    if not command:
        raise ValueError("No command to run: give it after '--', e.g. -- train.py --workdir runs/x")
    out = out if out is not None else sys.stdout.buffer
    err = err if err is not None else sys.stderr

    def say(message: str) -> None:
        print(f"{_PREFIX} {message}", file=err, flush=True)

    coordinator = f"127.0.0.1:{port or free_port()}"
    log_dir = log_dir or tempfile.mkdtemp(prefix="hqjax-launch-")
    os.makedirs(log_dir, exist_ok=True)
    argv = _command(command)
    spawn_argv = _with_parent_watch(argv)
    logs = [open(os.path.join(log_dir, f"process_{i}.log"), "wb") for i in range(processes)]  # noqa: SIM115
    procs: list[subprocess.Popen] = []
    pump: threading.Thread | None = None
    with _Interrupt() as interrupt:
        try:
            for i in range(processes):
                procs.append(subprocess.Popen(
                    spawn_argv,
                    env=process_env(i, processes, coordinator, devices_per_process),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE if i == 0 else logs[i],
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches the launcher only; it stops the processes
                ))
        except BaseException:
            for p in procs:
                p.kill()
                p.wait()
            for f in logs:
                f.close()
            raise
        pump = threading.Thread(target=_pump, args=(procs[0].stdout, (out, logs[0])), daemon=True)
        pump.start()
        say(
            f"{processes} process(es) x {devices_per_process} CPU device(s), coordinator {coordinator}; "
            f"pids {' '.join(f'{i}={p.pid}' for i, p in enumerate(procs))}; logs in {log_dir}; "
            f"command: {shlex.join(argv)}"
        )
        try:
            status = _supervise(procs, interrupt, timeout, grace, log_dir, say)
        except BaseException:
            _stop(procs, 0.0, say)
            raise
    pump.join(timeout=5.0)
    for f in logs:
        f.close()
    return status


def _supervise(procs, interrupt: _Interrupt, timeout, grace, log_dir, say) -> int:
    """Wait for the processes; stop all of them when one fails, on timeout or on interrupt."""
    start = time.monotonic()
    seen_interrupts = 0
    while True:
        codes = [p.poll() for p in procs]
        # Of processes seen failing at once, a killed one is the likelier cause (its peers then fail).
        failed = sorted(((c > 0, i, c) for i, c in enumerate(codes) if c not in (None, 0)))
        if failed:
            _, i, code = failed[0]
            say(f"process {i} (pid {procs[i].pid}) {describe_exit(code)}; stopping the other processes.")
            _stop(procs, grace, say)
            if i != 0:
                path = os.path.join(log_dir, f"process_{i}.log")
                say(f"last lines of {path}:\n{_tail(path)}")
            say(f"run failed: process {i} {describe_exit(code)}.")
            return _exit_status(code)
        if all(c == 0 for c in codes):
            return 0
        if interrupt.count > seen_interrupts:
            seen_interrupts = interrupt.count
            name = signal.Signals(interrupt.signum).name
            say(f"{name} received: asking all processes to stop (SIGTERM; a training run saves a "
                "checkpoint first). Interrupt again to kill them.")
            _stop(procs, grace, say, interrupt=interrupt)
            return 128 + interrupt.signum
        if timeout is not None and time.monotonic() - start > timeout:
            say(f"timed out after {timeout:g} s; stopping all processes.")
            _stop(procs, grace, say)
            return TIMEOUT_EXIT_CODE
        time.sleep(_POLL_S)


def _stop(procs, grace: float, say, interrupt: _Interrupt | None = None) -> None:
    """SIGTERM every running process, then SIGKILL those still running after `grace` seconds (or at
    the next interrupt)."""
    running = [(i, p) for i, p in enumerate(procs) if p.poll() is None]
    for _, p in running:
        _signal(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    first = interrupt.count if interrupt is not None else 0
    while any(p.poll() is None for _, p in running):
        if time.monotonic() > deadline or (interrupt is not None and interrupt.count > first):
            for i, p in running:
                if p.poll() is None:
                    say(f"process {i} (pid {p.pid}) did not stop after SIGTERM; sending SIGKILL.")
                    _signal(p, signal.SIGKILL)
            for _, p in running:
                p.wait()
            break
        time.sleep(_POLL_S)
    for i, p in running:
        say(f"process {i} (pid {p.pid}) {describe_exit(p.returncode)}.")


def _signal(proc: subprocess.Popen, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m hqjax.launch [options] -- COMMAND ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m hqjax.launch",
        description="Run COMMAND as N jax processes of one run on this machine's CPU (joined over "
        "loopback), stream process 0's output, and stop all of them if one fails.",
        usage="%(prog)s --processes N [--devices-per-process D] [--port P] [--timeout S] [--grace G] "
        "[--log-dir DIR] -- COMMAND [ARGS ...]",
    )
    parser.add_argument("--processes", type=int, required=True, help="number of processes")
    parser.add_argument("--devices-per-process", type=int, default=1, help="CPU devices per process")
    parser.add_argument("--port", type=int, default=None, help="coordinator port (default: a free one)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds the whole run may take")
    parser.add_argument("--grace", type=float, default=10.0,
                        help="seconds between SIGTERM and SIGKILL when stopping processes (default 10)")
    parser.add_argument("--log-dir", default=None, help="per-process logs (default: a temporary directory)")
    if "--" not in argv:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: give the command after '--', e.g. -- train.py --workdir runs/x",
              file=sys.stderr)
        return 2
    split = argv.index("--")
    args = parser.parse_args(argv[:split])
    try:
        return launch(
            argv[split + 1 :], processes=args.processes, devices_per_process=args.devices_per_process,
            port=args.port, timeout=args.timeout, grace=args.grace, log_dir=args.log_dir,
        )
    except ValueError as e:
        parser.error(str(e))
        return 2


if __name__ == "__main__":
    sys.exit(main())
