"""Train a ternary (or full-precision) network.

    python train.py                                   # embedded default: HQ ResNet-20 on digits
    python train.py --config configs/mnist_lenet5.py --workdir runs/lenet5 --config.method=ptq
    python train.py --config.method=hla_tq --config.num_epochs=20

Every field of the config can be overridden with ``--config.FIELD=VALUE``; an unknown field or an
invalid value stops the program before anything starts. Re-running with the same ``--workdir``
resumes from its newest checkpoint.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_HERE = os.path.dirname(os.path.abspath(__file__))

config_flags.DEFINE_config_file(
    "config", os.path.join(_HERE, "configs", "default.py"), "Run configuration (a get_config() file).",
    lock_config=True,
)
flags.DEFINE_string("workdir", "runs/default", "Directory for checkpoints, metrics and the summary.")
flags.DEFINE_integer(
    "cpu_devices", 0,
    "Virtual CPU devices to split each batch over on a CPU-only machine (0: one per core). Ignored "
    "when XLA_FLAGS already sets a host device count.",
)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # keep orbax's per-save INFO lines out of the console
    # The host device count must be set before jax initialises its backend.
    from hqjax.train.parallel import cpu_device_flags

    os.environ["XLA_FLAGS"] = cpu_device_flags(flags.FLAGS.cpu_devices or None)

    from hqjax.train.config import validate
    from hqjax.train.loop import train_and_evaluate

    config = flags.FLAGS.config
    try:
        validate(config)
    except ValueError as e:
        sys.exit(f"Invalid configuration: {e}")
    train_and_evaluate(config, flags.FLAGS.workdir)


if __name__ == "__main__":
    app.run(main)
