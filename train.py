"""Train a ternary (or full-precision) network.

    python train.py                                   # embedded default: HQ ResNet-20 on digits
    python train.py --config configs/mnist_lenet5.py --workdir runs/lenet5 --config.method=ptq
    python train.py --config.method=hla_tq --config.num_epochs=20

Every field of the config can be overridden with ``--config.FIELD=VALUE``; an unknown field or an
invalid value stops the program before anything starts. Re-running with the same ``--workdir``
resumes from its newest checkpoint.

An error the command line can cause (a bad value, a missing dataset, a checkpoint of another run, a
directory that cannot be written or that another run is using) ends the program with one line saying
what is wrong and a non-zero exit code; ``--verbose`` or ``HQJAX_VERBOSE=1`` shows the Python traceback
as well (for bug reports).

Several processes (hosts of a TPU pod or GPU cluster) run this same program, each as one process of the
run: ``--coordinator=HOST:PORT --num_processes=N --process_id=I`` (or the environment variables
HQJAX_COORDINATOR / HQJAX_NUM_PROCESSES / HQJAX_PROCESS_ID, or jax's JAX_COORDINATOR_ADDRESS /
JAX_NUM_PROCESSES / JAX_PROCESS_ID), or ``--distributed=auto`` where jax detects them (Cloud TPU,
SLURM). ``python -m hqjax.launch`` starts such a run on one machine's CPU for testing.
"""

from __future__ import annotations

import logging as pylogging
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_HERE = os.path.dirname(os.path.abspath(__file__))

VERBOSE_ENV = "HQJAX_VERBOSE"
_HINT = f"(--verbose or {VERBOSE_ENV}=1 shows the traceback)"


def _verbose(argv: list[str]) -> bool:
    """Whether tracebacks are wanted: ``--verbose`` on the command line or ``HQJAX_VERBOSE`` set."""
    if os.environ.get(VERBOSE_ENV, "").lower() not in ("", "0", "false"):
        return True
    return any(a in ("--verbose", "--verbose=true", "--verbose=True", "--verbose=1") for a in argv)


class _OneLineLogs(pylogging.Filter):
    """Drop the tracebacks that libraries attach to their log records (orbax logs one per failed
    background save); the record's own line stays, and the error itself ends the program in one line."""

    def filter(self, record: pylogging.LogRecord) -> bool:
        record.exc_info = record.exc_text = record.stack_info = None
        return True


def _quiet_closed_loop(hook):
    """An excepthook that drops ``RuntimeError('Event loop is closed')``: after a failed asynchronous save
    tensorstore's writer threads still call back into orbax's finished event loop, once per pending write,
    and each call would print a traceback. Every other error goes to `hook`."""

    def quiet(kind, value, tb):
        if kind is RuntimeError and str(value) == "Event loop is closed":
            return
        hook(kind, value, tb)

    return quiet


def _config_field_error(e: BaseException) -> str:
    """One line for ml_collections' error on an unknown ``--config.FIELD`` (a KeyError wrapped in an
    AttributeError, with its "Did you mean" suggestion)."""
    inner = e.args[0] if e.args else e
    text = inner.args[0] if isinstance(inner, BaseException) and inner.args else str(inner)
    name, _, rest = str(text).partition("\n")
    return f"Unknown config field {name}. {rest}".strip() + " Every field is listed by --helpfull."


try:  # ml_collections reads the --config.FIELD overrides here, at definition
    config_flags.DEFINE_config_file(
        "config", os.path.join(_HERE, "configs", "default.py"), "Run configuration (a get_config() file).",
        lock_config=True,
    )
except (AttributeError, KeyError) as e:  # --config.FIELD that the config does not have
    if _verbose(sys.argv):
        raise
    sys.exit(f"Invalid command line: {_config_field_error(e)}")
flags.DEFINE_string("workdir", "runs/default", "Directory for checkpoints, metrics and the summary.")
flags.DEFINE_integer(
    "cpu_devices", 0,
    "Virtual CPU devices to split each batch over on a CPU-only machine (0: one per core). Ignored "
    "when XLA_FLAGS already sets a host device count.",
)
flags.DEFINE_enum(
    "distributed", "env", ["env", "auto", "off"],
    "Multi-process runs. env: join one when a coordinator is set (flag or environment), else run alone; "
    "auto: always call jax.distributed.initialize(), which detects unset values (Cloud TPU, SLURM, ...); "
    "off: single process.",
)
flags.DEFINE_string("coordinator", None, "HOST:PORT of process 0 (default: HQJAX_COORDINATOR).")
flags.DEFINE_integer("num_processes", None, "Processes in the run (default: HQJAX_NUM_PROCESSES).")
flags.DEFINE_integer(
    "process_id", None, "This process's index in [0, num_processes) (default: HQJAX_PROCESS_ID)."
)
flags.DEFINE_float("distributed_timeout", 300.0, "Seconds the processes may take to all join the run.")
flags.DEFINE_bool("verbose", False, "Show the Python traceback of errors (also HQJAX_VERBOSE=1).")

def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # keep orbax's per-save INFO lines out of the console
    # The host device count must be set before jax initialises its backend.
    from hqjax.train.parallel import cpu_device_flags

    os.environ["XLA_FLAGS"] = cpu_device_flags(flags.FLAGS.cpu_devices or None)

    from hqjax.train import distributed
    from hqjax.train.config import validate
    from hqjax.train.lock import WorkdirLockedError
    from hqjax.train.loop import train_and_evaluate

    f = flags.FLAGS
    if not (f.verbose or _verbose(sys.argv)):
        logging.get_absl_handler().addFilter(_OneLineLogs())
        sys.excepthook = _quiet_closed_loop(sys.excepthook)
    try:  # before anything uses jax (validating the config evaluates schedules)
        distributed.initialize(f.coordinator, f.num_processes, f.process_id, mode=f.distributed,
                               timeout_s=f.distributed_timeout)
    except (distributed.DistributedConfigError, TimeoutError) as e:
        sys.exit(f"Cannot join the multi-process run: {e}")
    config = f.config
    try:
        validate(config)
    except ValueError as e:
        sys.exit(f"Invalid configuration: {e}")
    try:
        train_and_evaluate(config, f.workdir)
    # bad values or data, unwritable dirs, NaN, another run on the same workdir
    except (ValueError, OSError, FloatingPointError, WorkdirLockedError) as e:
        if f.verbose or _verbose(sys.argv):
            raise
        message = " ".join(str(e).split())
        sys.exit(f"Error: {message} {_HINT}")


if __name__ == "__main__":
    app.run(main)
