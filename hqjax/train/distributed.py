"""Joining a multi-process run (a TPU pod, a GPU cluster, or several CPU processes on one machine).

Every process of the run calls `initialize` once, before anything else touches jax. The settings come
from arguments (``train.py --coordinator=... --num_processes=... --process_id=...``) or from the
environment, first match wins:

=====================  ==========================  ======================
setting                hqjax variable              jax variable
=====================  ==========================  ======================
coordinator address    ``HQJAX_COORDINATOR``       ``JAX_COORDINATOR_ADDRESS``
number of processes    ``HQJAX_NUM_PROCESSES``     ``JAX_NUM_PROCESSES``
this process's id      ``HQJAX_PROCESS_ID``        ``JAX_PROCESS_ID``
=====================  ==========================  ======================

Modes: ``'env'`` (default) joins a run when a coordinator is given and runs as a single process
otherwise; ``'auto'`` always calls ``jax.distributed.initialize`` and lets jax detect what is not given
(Cloud TPU, SLURM, Open MPI, ...); ``'off'`` ignores all settings. On CPU the processes exchange data
with gloo collectives over TCP (``jax_cpu_collectives_implementation``).

jax aborts the process (SIGABRT, no Python exception) when the coordinator cannot be reached in time,
so `initialize` checks the coordinator's port itself first and stops with a readable message, exit
status 1, when the processes do not all join within `timeout_s`.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import threading
import time
from collections.abc import Mapping

MODES = ("env", "auto", "off")

COORDINATOR_VARS = ("HQJAX_COORDINATOR", "JAX_COORDINATOR_ADDRESS")
NUM_PROCESSES_VARS = ("HQJAX_NUM_PROCESSES", "JAX_NUM_PROCESSES")
PROCESS_ID_VARS = ("HQJAX_PROCESS_ID", "JAX_PROCESS_ID")

JOIN_FAILED_EXIT_CODE = 1


class DistributedConfigError(ValueError):
    """The multi-process settings are incomplete or inconsistent."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Where this process stands in a multi-process run.

    Attributes:
      coordinator: ``host:port`` of process 0's coordination service (None: let jax detect it).
      num_processes: processes in the run (None: let jax detect it).
      process_id: this process's index in ``[0, num_processes)`` (None: let jax detect it).
    """

    coordinator: str | None
    num_processes: int | None
    process_id: int | None

    @property
    def multi_process(self) -> bool:
        """True unless the run is known to be a single process."""
        return self.num_processes != 1


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(value, variable name) of the first non-empty variable in `names`."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value, name
    return None, None


def _as_int(value: int | str | None, what: str) -> int | None:
    if value is None or isinstance(value, int):
        return value
    try:
        return int(value)
    except ValueError:
        raise DistributedConfigError(f"{what} must be an integer, got {value!r}.") from None


def _check_address(address: str) -> str:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DistributedConfigError(
            f"The coordinator address must be host:port (e.g. 10.0.0.2:1234), got {address!r}."
        )
    return address


def resolve(
    coordinator: str | None = None,
    num_processes: int | str | None = None,
    process_id: int | str | None = None,
    *,
    mode: str = "env",
    env: Mapping[str, str] | None = None,
) -> Settings | None:
    """The settings of this process from arguments and environment, or None for a single-process run.

    Args:
      coordinator: ``host:port`` of process 0 (default: from the environment).
      num_processes: processes in the run (default: from the environment).
      process_id: this process's index (default: from the environment).
      mode: ``'env'``, ``'auto'`` or ``'off'`` (see the module docstring).
      env: the environment (default ``os.environ``).

    Returns:
      `Settings` to join a run with, or None when this process runs alone.

    Raises:
      DistributedConfigError: a setting is missing, malformed or out of range; the message names the
        flag and the environment variables that set it.
    """
    if mode not in MODES:
        raise DistributedConfigError(f"Unknown distributed mode {mode!r}; choose one of {', '.join(MODES)}.")
    if mode == "off":
        return None
    env = os.environ if env is None else env
    coordinator, num, pid = _gathered(coordinator, num_processes, process_id, env)
    if mode == "auto":
        return Settings(coordinator or None, num, pid)
    return _env_settings(coordinator, num, pid)


def _gathered(
    coordinator: str | None, num_processes: int | str | None, process_id: int | str | None,
    env: Mapping[str, str],
) -> tuple[str | None, int | None, int | None]:
    """Arguments, else environment; parsed and range-checked, errors naming where a value came from."""
    sources = {}
    if not coordinator:
        coordinator, sources["coordinator"] = _first(env, COORDINATOR_VARS)
    if num_processes is None:
        num_processes, sources["num_processes"] = _first(env, NUM_PROCESSES_VARS)
    if process_id is None:
        process_id, sources["process_id"] = _first(env, PROCESS_ID_VARS)
    num = _as_int(num_processes, sources.get("num_processes") or "--num_processes")
    pid_origin = sources.get("process_id") or "--process_id"
    pid = _as_int(process_id, pid_origin)
    if coordinator:
        _check_address(coordinator)
    if num is not None and num < 1:
        raise DistributedConfigError(f"The number of processes must be >= 1, got {num}.")
    if pid is not None and num is not None and not 0 <= pid < num:
        raise DistributedConfigError(
            f"The process id must be in [0, {num}) for a run of {num} processes, got {pid} "
            f"(from {pid_origin})."
        )
    return coordinator, num, pid


def _env_settings(coordinator: str | None, num: int | None, pid: int | None) -> Settings | None:
    """Mode ``'env'``: join only with a coordinator, and then with every setting given."""
    if not coordinator:
        if (num is not None and num > 1) or pid is not None:
            raise DistributedConfigError(
                "A multi-process run needs the coordinator address (process 0's host:port): pass "
                f"--coordinator or set {' or '.join(COORDINATOR_VARS)}; or use --distributed=auto on a "
                "cluster that jax detects (Cloud TPU, SLURM, ...)."
            )
        return None
    missing = [
        f"{flag} (or {' / '.join(names)})"
        for value, flag, names in ((num, "--num_processes", NUM_PROCESSES_VARS),
                                   (pid, "--process_id", PROCESS_ID_VARS))
        if value is None
    ]
    if missing:
        raise DistributedConfigError(
            f"A coordinator ({coordinator}) is set, so this process joins a multi-process run; it also "
            f"needs {' and '.join(missing)}."
        )
    if num == 1:
        return None
    return Settings(coordinator, num, pid)


def _wait_for_port(address: str, deadline: float) -> None:
    """Block until ``host:port`` accepts TCP connections; TimeoutError at `deadline`."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise TimeoutError(str(e)) from None
            time.sleep(0.2)


def _watchdog(message: str, timeout_s: float) -> threading.Event:
    """Print `message` and exit the process unless the returned event is set within `timeout_s`."""
    done = threading.Event()

    def watch() -> None:
        if not done.wait(timeout_s):
            print(message, file=sys.stderr, flush=True)
            os._exit(JOIN_FAILED_EXIT_CODE)

    threading.Thread(target=watch, name="hqjax-distributed-join", daemon=True).start()
    return done


def initialize(
    coordinator: str | None = None,
    num_processes: int | str | None = None,
    process_id: int | str | None = None,
    *,
    mode: str = "env",
    timeout_s: float = 300.0,
    env: Mapping[str, str] | None = None,
) -> Settings | None:
    """Join the multi-process run this process belongs to (call before any other use of jax).

    Args:
      coordinator: ``host:port`` of process 0 (default: from the environment, see the module docstring).
      num_processes: processes in the run (default: from the environment).
      process_id: this process's index (default: from the environment).
      mode: ``'env'`` (join when a coordinator is set), ``'auto'`` (always join; jax detects the
        settings not given) or ``'off'``.
      timeout_s: how long the processes may take to all join.
      env: the environment (default ``os.environ``).

    Returns:
      The settings joined with (fields jax detected in ``'auto'`` mode stay None; ask
      ``jax.process_index()`` and ``jax.process_count()``), or None when the process runs alone.

    Raises:
      DistributedConfigError: incomplete or inconsistent settings, or settings jax could not detect.
      TimeoutError: process ``k > 0`` cannot reach the coordinator within `timeout_s`.
      RuntimeError: jax.distributed was already initialised in this process.

    A process that does not complete the join within `timeout_s` (e.g. process 0 waiting for the
    others) prints what it waited for and exits with status 1.
    """
    settings = resolve(coordinator, num_processes, process_id, mode=mode, env=env)
    if settings is None:
        return None
    import jax

    if jax.distributed.is_initialized():
        raise RuntimeError("jax.distributed is already initialised in this process.")
    # CPU processes reduce across processes with gloo (must be set before the CPU backend starts).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    deadline = time.monotonic() + timeout_s
    _reach_coordinator(settings, deadline, timeout_s)
    _join(settings, deadline, timeout_s)
    return settings


def _who(settings: Settings) -> str:
    if settings.process_id is not None and settings.num_processes is not None:
        return f"process {settings.process_id} of {settings.num_processes}"
    return "this process"


def _reach_coordinator(settings: Settings, deadline: float, timeout_s: float) -> None:
    """Processes ``k > 0`` wait for the coordinator's port (jax would abort the process instead)."""
    if not settings.coordinator or settings.process_id in (0, None):
        return
    try:
        _wait_for_port(settings.coordinator, deadline)
    except TimeoutError as e:
        raise TimeoutError(
            f"{_who(settings).capitalize()} could not reach the coordinator at {settings.coordinator} "
            f"within {timeout_s:.0f} s ({e}). Start process 0 with the same coordinator address, check "
            "that this host can reach it, or raise the timeout."
        ) from None


def _join(settings: Settings, deadline: float, timeout_s: float) -> None:
    """``jax.distributed.initialize`` under a watchdog that exits readably when not all processes join."""
    import jax

    remaining = max(deadline - time.monotonic(), 1.0)
    done = _watchdog(
        f"hqjax: {_who(settings)} did not complete joining the run at "
        f"{settings.coordinator or '(auto-detected)'} within {timeout_s:.0f} s: not all processes "
        f"connected. Start all {settings.num_processes or 'N'} processes with the same coordinator "
        "address and number of processes, each with its own process id, or raise the timeout.",
        remaining,
    )
    try:
        jax.distributed.initialize(
            coordinator_address=settings.coordinator,
            num_processes=settings.num_processes,
            process_id=settings.process_id,
            # jax's own limit comes after the watchdog's, which exits with a readable message.
            initialization_timeout=int(remaining) + 30,
        )
    except (ValueError, TypeError) as e:  # settings jax could not detect (--distributed=auto)
        raise DistributedConfigError(
            f"jax.distributed could not start: {str(e).rstrip('.')}. Outside a cluster jax detects "
            "(Cloud TPU, SLURM, Open MPI, ...), give --coordinator, --num_processes and --process_id (or "
            "HQJAX_COORDINATOR, HQJAX_NUM_PROCESSES, HQJAX_PROCESS_ID)."
        ) from e
    finally:
        done.set()
