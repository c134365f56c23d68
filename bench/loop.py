"""The training program's own cost: an epoch of the real loop against its steps timed bare, and compile
times of the quantized steps against the full-precision step.

Run by hand:  ``.venv/bin/python bench/loop.py --mnist-dir PATH/TO/mnist [--configs ...] [--reps 30]
[--set KEY=VALUE ...]``

For each config (default: LeNet-5 and ResNet-20 width 8 on MNIST, TWN and HQ; any ``file.py:method``):

- **epoch**: `hqjax.train.loop.train_and_evaluate` runs the config's schedule, stopped after one and
  after two epochs (``max_steps``; every periodic task as the config sets it: logging, one evaluation
  per epoch, per-layer statistics; no checkpoints); the difference of the two wall times is the cost
  of one epoch in the loop, free of compilation and of the one-off work at the end (latent accuracy,
  the report). Both epochs lie in the first phase of a two-phase method.
- **bare**: the same jitted train step (the run's model, optimizer, forward and initial state, built by
  `hqjax.train.build`) on one device-resident batch, median of `--reps` steps, times the steps per epoch.
- **overhead** = epoch / bare (target <= 1.15).
- **compile**: seconds to lower and compile the train step, and its ratio to the full-precision step of
  the same model (target <= 1.5).

Everything runs in one process, one config after another, on the devices jax sees (``--cpu-devices``
sets the CPU count, default 1); the load average is printed, since a busy machine stretches all alike
only roughly.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import statistics
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIGS = (
    "configs/mnist_lenet5.py:fp", "configs/mnist_lenet5.py:twn", "configs/mnist_lenet5.py:hq",
    "configs/mnist_resnet20.py:fp", "configs/mnist_resnet20.py:twn", "configs/mnist_resnet20.py:hq",
)


def load_config(spec: str, mnist_dir: str, overrides: tuple[tuple[str, Any], ...] = ()) -> Any:
    """``configs/FILE.py:METHOD`` as train.py reads it, pointed at `mnist_dir`, checkpoints off, then
    `overrides` (``(key, value)`` pairs, as ``--config.KEY=VALUE`` would set them)."""
    path, _, method = spec.partition(":")
    rel = os.path.relpath(path if os.path.isabs(path) else os.path.join(ROOT, path), ROOT)
    if not (rel.endswith(".py") and os.path.exists(os.path.join(ROOT, rel))) or rel.startswith(".."):
        raise SystemExit(f"--configs: {path!r} is not a config file of this repository (configs/NAME.py)")
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    module = importlib.import_module(rel[:-3].replace(os.sep, "."))
    config = module.get_config(method) if method else module.get_config()
    config.data_dir = mnist_dir
    config.progress_bar = False
    config.tensorboard = False
    config.checkpoint_every_epochs = 0
    config.checkpoint_every_steps = 0
    for key, value in overrides:
        if key not in config:
            raise SystemExit(f"--set: the config has no field {key!r}")
        config[key] = value
    return config


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE a Python literal (a bare word is taken as a string)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def loop_epoch_seconds(config: Any) -> tuple[float, int]:
    """Wall seconds of the second epoch of the real loop (two-epoch run minus one-epoch run) and the
    steps per epoch."""
    from hqjax.train import build
    from hqjax.train.loop import train_and_evaluate

    steps = build.steps_per_epoch(config)
    walls = []
    for epochs in (1, 2):
        c = config.copy_and_resolve_references()
        c.max_steps = epochs * steps
        with tempfile.TemporaryDirectory() as workdir:
            t0 = time.perf_counter()
            train_and_evaluate(c, workdir)
            walls.append(time.perf_counter() - t0)
    return walls[1] - walls[0], steps


def bare_step(config: Any, reps: int) -> tuple[float, float]:
    """(median seconds of the jitted train step on a resident batch, seconds to lower and compile it)."""
    import jax
    import numpy as np

    from hqjax import data
    from hqjax.train import build, parallel
    from hqjax.train.methods import get_spec
    from hqjax.train.strategy import make_strategy

    num_devices = config.num_devices or jax.device_count()
    mesh = parallel.make_mesh(num_devices)
    strategy = make_strategy(config, mesh, num_devices)  # the loop's own jit/pmap and batch placement
    model = build.build_model(config)
    tx = build.build_optimizer(config, build.steps_per_epoch(config))
    shape = data.info(config.dataset).image_shape
    state = strategy.place(build.init_state(config, model, tx, shape, mesh))
    rng = np.random.default_rng(0)
    batch = strategy.batch({
        "image": rng.random((config.batch_size, *shape), np.float32),
        "label": rng.integers(0, 10, config.batch_size).astype(np.int32),
    })
    step = strategy.train_step(model, tx, get_spec(config.method).forwards()[0])
    t0 = time.perf_counter()
    compiled = step.lower(state, batch).compile()
    compile_s = time.perf_counter() - t0
    for _ in range(3):
        state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), compile_s


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(prog="bench/loop.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist-dir", default=os.environ.get("HQJAX_MNIST_DIR"),
                   help="directory of the MNIST IDX files (default $HQJAX_MNIST_DIR)")
    p.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), help="FILE.py:METHOD specs")
    p.add_argument("--reps", type=int, default=30, help="timed bare steps per config (default 30)")
    p.add_argument("--set", nargs="+", type=parse_override, default=[], metavar="KEY=VALUE",
                   help="config overrides for every config, e.g. model_kwargs=\"{'width': 8}\"")
    p.add_argument("--cpu-devices", type=int, default=1, help="CPU devices jax creates (default 1)")
    args = p.parse_args(argv)
    if not args.mnist_dir or not os.path.isdir(args.mnist_dir):
        p.error(f"--mnist-dir must name a directory of MNIST IDX files, got {args.mnist_dir!r}")
    if args.reps < 1:
        p.error(f"--reps must be >= 1, got {args.reps}")
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_force_host_platform_device_count={args.cpu_devices}")
    rows, fp_compile = [], {}
    for spec in args.configs:
        config = load_config(spec, args.mnist_dir, tuple(args.set))
        step_s, compile_s = bare_step(config, args.reps)
        epoch_s, steps = loop_epoch_seconds(config)
        if config.method == "fp":
            fp_compile[config.model] = compile_s
        rows.append({"config": spec, "model": config.model, "method": config.method, "steps": steps,
                     "step_ms": 1e3 * step_s, "bare_s": steps * step_s, "epoch_s": epoch_s,
                     "overhead": epoch_s / (steps * step_s), "compile_s": compile_s})
        print(f"  {spec}: epoch {epoch_s:.1f} s, bare {steps * step_s:.1f} s, compile {compile_s:.1f} s",
              flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n# the loop's own cost; {args.cpu_devices} CPU device(s), {args.reps} bare steps, "
          f"load {load:.2f}")
    print("| config | steps/epoch | bare step (ms) | steps x step (s) | loop epoch (s) | epoch / bare "
          "| compile (s) | compile / fp |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        fp = fp_compile.get(r["model"])
        ratio = f"{r['compile_s'] / fp:.2f}" if fp else "-"
        print(f"| {r['config']} | {r['steps']} | {r['step_ms']:.1f} | {r['bare_s']:.1f} | {r['epoch_s']:.1f} "
              f"| {r['overhead']:.3f} | {r['compile_s']:.1f} | {ratio} |")
    return rows


if __name__ == "__main__":
    main()
