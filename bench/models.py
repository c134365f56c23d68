"""Training-step time, compile time and peak memory of the model zoo on CPU.

Run by hand::

    .venv/bin/python bench/models.py                       # every model, 6 configurations
    .venv/bin/python bench/models.py --models resnet20 --configs 1:float32,2:bfloat16,8:float32

A configuration is ``DEVICES:DTYPE``: the number of (virtual) CPU devices the batch is split over
and the computation dtype (``float32`` or ``bfloat16``; parameters stay float32). Each
(model, configuration) runs in a fresh subprocess, because ``XLA_FLAGS``
(``--xla_force_host_platform_device_count``) is read once, when jax initialises its backend; the
subprocess also gives a per-model peak RSS. ``--rounds N`` repeats every run round-robin and keeps
each one's fastest, which evens out other load on the machine.

The step is a full training step: forward and backward in train mode (BatchNorm on batch
statistics, running statistics updated), SGD with momentum, params donated. With more than one
device it is plain ``jax.jit`` on `NamedSharding` inputs: params replicated, batch split on the
``'data'`` axis, so BatchNorm statistics are those of the global batch.

Columns: compile = lower + compile of the step (s); step = median wall time of the timed steps
(ms); min = the fastest timed step (ms; less sensitive to other load on the machine); img/s;
RSS = peak resident memory of the subprocess (MiB, includes the jax runtime and the init
program); temp = XLA's temporary buffers for the step (MiB, per device); x floor = step / 0.19 s,
the compute floor of a CIFAR ResNet-20 step at batch 128 on a 2-core CPU (only for that model and
batch).

What a profile of the ResNet-20 step shows on XLA:CPU (jax 0.10): convolutions and BatchNorm
reductions run as YNNPACK fusions, in float32 also when the model computes in bfloat16 (XLA
converts around them); one device keeps about one core busy, so splitting the batch over 2 or more
virtual devices gains up to 2x on a 2-core machine. In float32, about half of the step goes to the
transposes that feed the weight-gradient convolutions (to a channels-major layout), because XLA
fuses into each of them the BatchNorm / ReLU / residual-add chain of up to four blocks and
recomputes it in transposed order; with ``dtype=bfloat16`` the activations are materialised in
bfloat16 and those transposes become plain, cheap copies. Hence bfloat16 computation is the faster
configuration on CPU even though the arithmetic stays float32. The XLA options tried
(``xla_cpu_use_xnnpack``, ``xla_cpu_use_onednn``, ``xla_cpu_enable_fast_math``,
``xla_cpu_opt_preset``, ``xla_cpu_use_fusion_emitters``, ynn fusion types) changed nothing beyond
noise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

FLOOR_S = 0.19  # ResNet-20 @ batch 128 fwd+bwd compute floor on the reference 2-core machine.
DEFAULT_CONFIGS = "1:float32,2:float32,8:float32,1:bfloat16,2:bfloat16,8:bfloat16"
IMAGENET = ("resnet18", "resnet34", "resnet50", "mobilenet_v2")


def child(args: argparse.Namespace) -> dict:
    """Measure one (model, devices, dtype) in this process; jax must not be initialised yet."""
    import resource

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from hqjax import models

    devices = jax.devices()
    if len(devices) != args.devices:
        raise SystemExit(f"expected {args.devices} devices, got {len(devices)}")
    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[args.dtype]
    model = models.get(args.models, dtype=dtype)
    spec = models.spec(args.models)
    shape = (args.batch, *spec.input_shape)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, spec.num_classes, args.batch).astype(np.int32)
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(x[:1])
    params = variables["params"]
    state = {k: v for k, v in variables.items() if k != "params"}
    tx = optax.sgd(0.1, momentum=0.9)
    opt_state = tx.init(params)

    def loss_fn(params, state, x, y):
        logits, new_state = model.apply(
            {"params": params, **state}, x, train=True, mutable=["batch_stats"]
        )
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new_state

    def step(params, state, opt_state, x, y):
        (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_state, opt_state, loss

    carry = (params, state, opt_state)
    if args.devices > 1:
        if args.batch % args.devices:
            raise SystemExit(f"batch {args.batch} is not divisible by {args.devices} devices")
        mesh = jax.make_mesh((args.devices,), ("data",))
        carry = jax.device_put(carry, NamedSharding(mesh, P()))
        x, y = jax.device_put((x, y), NamedSharding(mesh, P("data")))
    else:
        x, y = jax.device_put((x, y))
    options = json.loads(args.compiler_options) if args.compiler_options else None
    jitted = jax.jit(step, donate_argnums=(0, 1, 2), compiler_options=options)

    t0 = time.perf_counter()
    compiled = jitted.lower(*carry, x, y).compile()
    compile_s = time.perf_counter() - t0
    temp_mib = float("nan")
    analysis = compiled.memory_analysis()
    if analysis is not None:
        temp_mib = analysis.temp_size_in_bytes / 2**20

    for _ in range(args.warmup):
        *carry, loss = compiled(*carry, x, y)
    jax.block_until_ready(carry)
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        *carry, loss = compiled(*carry, x, y)
        jax.block_until_ready(loss)
        times.append(time.perf_counter() - t0)
    if not np.isfinite(float(loss)):
        raise SystemExit(f"non-finite loss {float(loss)}")
    return {
        "model": args.models,
        "input": "x".join(map(str, spec.input_shape)),
        "batch": args.batch,
        "devices": args.devices,
        "dtype": args.dtype,
        "compile_s": compile_s,
        "step_s": statistics.median(times),
        "step_min_s": min(times),
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "temp_mib": temp_mib,
    }


def run_config(model: str, devices: int, dtype: str, batch: int, args: argparse.Namespace) -> dict:
    """Run `child` in a fresh interpreter with the device count set in XLA_FLAGS."""
    env = dict(os.environ)
    flags = f"--xla_force_host_platform_device_count={devices} {args.xla_flags}".strip()
    env["XLA_FLAGS"] = flags
    env["JAX_PLATFORMS"] = "cpu"
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        "--models",
        model,
        "--devices",
        str(devices),
        "--dtype",
        dtype,
        "--batch",
        str(batch),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--compiler-options",
        args.compiler_options,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {
            "model": model,
            "devices": devices,
            "dtype": dtype,
            "batch": batch,
            "error": " | ".join(tail) or f"exit code {proc.returncode}",
        }
    return json.loads(lines[-1])


def _fmt(value: float, spec: str) -> str:
    return "-" if value != value else format(value, spec)  # NaN -> "-"


def print_table(rows: list[dict]) -> None:
    """One line per (model, configuration), then step times side by side."""
    head = (
        f"{'model':<13}{'input':>10}{'batch':>6}{'dev':>4}{'dtype':>9}{'compile s':>10}"
        f"{'step ms':>9}{'min ms':>8}{'img/s':>8}{'RSS MiB':>9}{'temp MiB':>9}{'x floor':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        if "error" in r:
            print(
                f"{r['model']:<13}{'':>10}{r['batch']:>6}{r['devices']:>4}{r['dtype']:>9}  "
                f"error: {r['error'][:120]}"
            )
            continue
        floor = r["step_s"] / FLOOR_S if r["model"] == "resnet20" and r["batch"] == 128 else None
        print(
            f"{r['model']:<13}{r['input']:>10}{r['batch']:>6}{r['devices']:>4}{r['dtype']:>9}"
            f"{r['compile_s']:>10.1f}{r['step_s'] * 1e3:>9.0f}{r['step_min_s'] * 1e3:>8.0f}"
            f"{r['batch'] / r['step_s']:>8.0f}"
            f"{r['rss_mib']:>9.0f}{_fmt(r['temp_mib'], '.0f'):>9}"
            f"{(f'{floor:.2f}' if floor else '-'):>8}"
        )
    configs = list(dict.fromkeys((r["devices"], r["dtype"]) for r in rows))
    if len(configs) > 1:
        print("\nstep ms by configuration (devices:dtype)")
        names = list(dict.fromkeys(r["model"] for r in rows))
        cols = [f"{d}:{t}" for d, t in configs]
        print(f"{'model':<13}" + "".join(f"{c:>12}" for c in cols))
        for name in names:
            cells = []
            for d, t in configs:
                hit = [r for r in rows if (r["model"], r["devices"], r["dtype"]) == (name, d, t)]
                ok = hit and "error" not in hit[0]
                cells.append(f"{hit[0]['step_s'] * 1e3:>12.0f}" if ok else f"{'-':>12}")
            print(f"{name:<13}" + "".join(cells))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default="all", help="comma-separated registry names, or 'all'")
    p.add_argument("--configs", default=DEFAULT_CONFIGS, help="comma-separated DEVICES:DTYPE")
    p.add_argument("--batch", type=int, default=128, help="batch for 28x28 and 32x32 models")
    p.add_argument("--imagenet-batch", type=int, default=16, help="batch for 224x224 models")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps after compiling")
    p.add_argument(
        "--rounds", type=int, default=1, help="repeat all runs round-robin, keep the fastest"
    )
    p.add_argument("--xla-flags", default="", help="extra XLA_FLAGS (unknown flags abort XLA)")
    p.add_argument("--compiler-options", default="", help="jax.jit compiler_options as JSON")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run every (model, configuration) in a subprocess and print the table."""
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args)), flush=True)
        return
    # Imported here so that the parent never initialises jax.
    from hqjax.models import names

    selected = list(names()) if args.models == "all" else args.models.split(",")
    unknown = [m for m in selected if m not in names()]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; valid: {', '.join(names())}")
    configs = []
    for item in args.configs.split(","):
        devices, _, dtype = item.partition(":")
        if dtype not in ("float32", "bfloat16") or not devices.isdigit():
            raise SystemExit(f"bad configuration {item!r}: expected DEVICES:float32|bfloat16")
        configs.append((int(devices), dtype))
    print(
        f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}, "
        f"{os.cpu_count()} CPUs; steps={args.steps} warmup={args.warmup}"
        + (f"; XLA_FLAGS+={args.xla_flags!r}" if args.xla_flags else "")
        + (f"; compiler_options={args.compiler_options}" if args.compiler_options else ""),
        flush=True,
    )
    best: dict[tuple[str, int, str], dict] = {}
    for rnd in range(args.rounds):
        for model in selected:
            batch = args.imagenet_batch if model in IMAGENET else args.batch
            for devices, dtype in configs:
                row = run_config(model, devices, dtype, batch, args)
                status = row.get("error") or f"{row['step_s'] * 1e3:.0f} ms/step"
                print(
                    f"  round {rnd + 1}: {model} {devices}:{dtype} batch {batch}: {status}",
                    file=sys.stderr,
                    flush=True,
                )
                key = (model, devices, dtype)
                old = best.get(key)
                if old is None or "error" in old or row.get("step_s", 1e9) < old["step_s"]:
                    best[key] = row
    rows = list(best.values())
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
