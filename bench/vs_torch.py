"""One full float32 training step in hqjax and in PyTorch, side by side, on the same networks.

Run::

    pip install -e ".[bench]"                 # PyTorch (CPU build: see the README)
    .venv/bin/python bench/vs_torch.py                      # lenet5, resnet20 at batch 128, resnet18 at 8
    .venv/bin/python bench/vs_torch.py --models lenet5 --reps 30 --json vs_torch.json

The step is what a training program runs each iteration: forward in train mode (BatchNorm on batch
statistics, running averages updated), softmax cross-entropy, backward, SGD with momentum 0.9. In hqjax
it is `hqjax.train.steps.make_train_step` over ``hqjax.models.get(name)`` with ``optax.sgd``, jitted,
state donated; in PyTorch it is the same architecture written here with ``torch.nn`` (same layers,
same parameter count, checked before timing), eager, ``torch.optim.SGD``, in NCHW and, for the conv
nets, also in ``channels_last`` memory format. Inputs are random images of the model's shape and random
labels, the same arrays for both.

How the timings are taken: every variant is warmed up (``--warmup`` steps; hqjax's compile happens
there and is reported on its own), then ``--reps`` repetitions run one step of every variant in turn,
interleaved in this one process, each timed to completion (``jax.block_until_ready``; PyTorch's CPU
ops are synchronous), so machine load falls on all variants alike. Both libraries use all the
process's cores: PyTorch with ``torch.set_num_threads(os.cpu_count())``, XLA with its own thread pool
(it has no thread-count option; pin the process with ``taskset`` to compare on fewer cores). The
table gives medians, the fastest step, and ``ratio`` = hqjax / PyTorch NCHW (above 1: hqjax is
slower); the load average is printed before and after the timed part.

When PyTorch is not installed the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from hqjax import models  # noqa: E402
from hqjax.train.steps import TrainState, make_train_step  # noqa: E402

MODELS = ("lenet5", "resnet20", "resnet18")
DEFAULT_BATCH = {"lenet5": 128, "resnet20": 128, "resnet18": 8}
LEARNING_RATE = 0.01
MOMENTUM = 0.9


def torch_model(name: str, torch: Any) -> Any:
    """The PyTorch version of ``hqjax.models.get(name)`` (NCHW, default PyTorch initialisation)."""
    nn = torch.nn

    class Basic(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, shortcut: str) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.stride, self.pad = stride, cout - cin
            self.project = None
            if (stride != 1 or cin != cout) and shortcut == "B":
                conv = nn.Conv2d(cin, cout, 1, stride, bias=False)
                self.project = nn.Sequential(conv, nn.BatchNorm2d(cout))

        def forward(self, x: Any) -> Any:
            y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            if self.project is not None:
                r = self.project(x)
            elif self.stride != 1 or self.pad:  # option A: subsample, zero-pad the channels
                r = x[:, :, :: self.stride, :: self.stride]
                r = nn.functional.pad(r, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
            else:
                r = x
            return torch.relu(y + r)

    def stages(width: int, sizes: tuple[int, ...], shortcut: str) -> tuple[list[Any], int]:
        layers, cin = [], width
        for s, n in enumerate(sizes):
            cout = width * 2**s
            for b in range(n):
                layers.append(Basic(cin, cout, 2 if s > 0 and b == 0 else 1, shortcut))
                cin = cout
        return layers, cin

    if name == "lenet5":
        return nn.Sequential(
            nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(20, 50, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10),
        )  # fmt: skip
    if name == "resnet20":
        blocks, c = stages(16, (3, 3, 3), "A")
        stem = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
        return nn.Sequential(*stem, *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))
    if name == "resnet18":
        blocks, c = stages(64, (2, 2, 2, 2), "B")
        stem = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
        return nn.Sequential(*stem, *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 1000))
    raise ValueError(f"no PyTorch version of {name!r}; choose from {', '.join(MODELS)}")


def hqjax_step(name: str, x: np.ndarray, y: np.ndarray) -> tuple[Callable[[], Any], int, float]:
    """``(run one step, parameter count, compile seconds)`` of hqjax's training step."""
    model = models.get(name)
    batch = {"image": jnp.asarray(x.transpose(0, 2, 3, 1)), "label": jnp.asarray(y)}
    variables = jax.jit(lambda v: model.init(jax.random.key(0), v, train=False))(batch["image"][:1])
    params, stats = variables["params"], variables.get("batch_stats", {})
    tx = optax.sgd(LEARNING_RATE, momentum=MOMENTUM)
    state = TrainState(jnp.zeros((), jnp.int32), params, stats, tx.init(params), jax.random.PRNGKey(1))
    t0 = time.perf_counter()
    step = jax.jit(make_train_step(model, tx, lambda p, s: p), donate_argnums=0).lower(state, batch).compile()
    compile_s = time.perf_counter() - t0
    box = {"state": state}

    def run() -> Any:
        box["state"], metrics = step(box["state"], batch)
        return jax.block_until_ready(metrics["loss"])

    return run, models.count_params({"params": params}), compile_s


def torch_step(
    name: str, x: np.ndarray, y: np.ndarray, torch: Any, channels_last: bool
) -> tuple[Callable[[], float], int]:
    """``(run one step, parameter count)`` of the same training step in eager PyTorch."""
    torch.manual_seed(0)
    net = torch_model(name, torch).train()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        xt = xt.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)

    def run() -> float:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(xt), yt)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return run, sum(p.numel() for p in net.parameters())


def bench_model(name: str, batch: int, args: argparse.Namespace, torch: Any) -> list[dict[str, Any]]:
    """Warm up and time (interleaved) hqjax and PyTorch on one model; one row per variant."""
    spec = models.spec(name)
    h, w, c = spec.input_shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, c, h, w)).astype(np.float32)
    y = rng.integers(0, spec.num_classes, batch).astype(np.int32)
    run_jax, n_jax, compile_s = hqjax_step(name, x, y)
    variants: dict[str, Callable] = {"hqjax": run_jax}
    layouts = [False] + ([True] if name != "lenet5" else [])
    for cl in layouts:
        run, n_torch = torch_step(name, x, y, torch, channels_last=cl)
        if n_torch != n_jax:
            raise AssertionError(f"{name}: PyTorch network has {n_torch} parameters, hqjax's {n_jax}")
        variants["torch channels_last" if cl else "torch NCHW"] = run
    for run in variants.values():
        for _ in range(args.warmup):
            run()
    load_before = os.getloadavg()[0]
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.reps):
        for label, run in variants.items():
            t0 = time.perf_counter()
            run()
            times[label].append(time.perf_counter() - t0)
    load_after = os.getloadavg()[0]
    ref = statistics.median(times["torch NCHW"])
    return [
        {
            "model": name,
            "variant": label,
            "batch": batch,
            "params": n_jax,
            "step_s": statistics.median(t),
            "step_min_s": min(t),
            "ratio": statistics.median(t) / ref,
            "compile_s": compile_s if label == "hqjax" else None,
            "reps": args.reps,
            "load_before": round(load_before, 2),
            "load_after": round(load_after, 2),
        }
        for label, t in times.items()
    ]


def print_table(rows: list[dict[str, Any]]) -> None:
    """One table for all models."""
    head = f"{'model':<10}{'batch':>6}{'variant':>21}{'ms/step':>10}{'min ms':>10}{'ratio':>7}"
    head += f"{'compile s':>11}"
    print(head)
    print("-" * len(head))
    for r in rows:
        comp = "-" if r["compile_s"] is None else f"{r['compile_s']:.1f}"
        print(
            f"{r['model']:<10}{r['batch']:>6}{r['variant']:>21}{1e3 * r['step_s']:>10.1f}"
            f"{1e3 * r['step_min_s']:>10.1f}{r['ratio']:>7.2f}{comp:>11}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(
        prog="bench/vs_torch.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
    p.add_argument(
        "--batch",
        type=int,
        help="batch size for every model (default: "
        + ", ".join(f"{k} {v}" for k, v in DEFAULT_BATCH.items())
        + ")",
    )
    p.add_argument("--reps", type=int, default=15, help="timed interleaved repetitions (default 15)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per variant (default 3)")
    p.add_argument("--json", metavar="PATH", help="also write the rows and the versions as JSON")
    args = p.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    bad = [m for m in args.models if m not in MODELS]
    if bad or not args.models:
        p.error(f"unknown model(s) {bad}; choose from {', '.join(MODELS)}")
    if args.reps < 1 or args.warmup < 1 or (args.batch is not None and args.batch < 1):
        p.error("--reps, --warmup and --batch must be >= 1")
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the comparison, print the table, return the rows (also written with ``--json``)."""
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        print(
            "bench/vs_torch.py: PyTorch is not installed, nothing to compare; "
            'install it with `pip install -e ".[bench]"` (see the README for the CPU build).'
        )
        return []
    torch.set_num_threads(os.cpu_count() or 1)
    warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
    dev = jax.devices()[0]
    print(
        f"hqjax (jax {jax.__version__}, {jax.device_count()} x {dev.device_kind}) vs PyTorch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), {os.cpu_count()} CPUs; float32 "
        f"training step, {args.reps} interleaved reps after {args.warmup} warm-up steps, medians",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    for name in args.models:
        rows += bench_model(name, args.batch or DEFAULT_BATCH[name], args, torch)
        print(f"  {name} done (load average {rows[-1]['load_after']})", file=sys.stderr, flush=True)
        jax.clear_caches()
    print_table(rows)
    if args.json:
        info = {"jax": jax.__version__, "torch": torch.__version__, "device": dev.device_kind}
        info["cpus"] = os.cpu_count()
        with open(args.json, "w") as f:
            json.dump({"versions": info, "args": vars(args), "rows": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
