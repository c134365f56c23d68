"""Benchmark suite: train-step time, compile time, memory and export size of every method, per model.

Run::

    .venv/bin/python bench/suite.py                                  # lenet5 and resnet20, all methods
    .venv/bin/python bench/suite.py --models lenet5 --reps 5         # quick
    .venv/bin/python bench/suite.py --models resnet18 --batch 128    # ImageNet shapes (accelerators)
    .venv/bin/python bench/suite.py --methods fp,hq,alq --dtype bfloat16 --json suite.json

For each model (``hqjax.models.get(name)`` on random inputs of the model's shape, random labels) every
method is one jitted training step, `hqjax.train.steps.make_train_step` (forward on
``hqjax.forward_params``, backward, optimizer update, BatchNorm statistics updated, state donated), the step
the training program runs:

* fp, twn, ttq, ptq, hq, hla_tq: the configurations of ``bench/overhead.py`` (its `configs`: SGD momentum
  0.9 nesterov inside the recipe, the classifier ``scaled``). PTQ and HQ quantize from step 1 with AGP
  pruning ending at step 1 (``quantize_step=1, prune_end=1``), so the pruning target (the recipes'
  default sparsity 0.5) is reached and the masks are frozen before the timed steps start: the timed steps
  are phase B, the ternary phase that is two thirds of a run, and the exported model has the target
  sparsity. HLA-TQ likewise is timed in phase Q (``quantize_step=1``; its zero set is the TWN
  threshold). ``bench/overhead.py`` also times phase A / R.
* alq: ALQ's optimizer (`hqjax.transforms.alq_optimizer`, learning rate 1e-3, the group rules of
  ``bench/alq.py`` or of the model's preset in ``configs/common.py``) with a constant mode, one row per
  mode of ``--alq-modes`` (default the coordinate and basis steps that make up most of ALQ's pipeline;
  BatchNorm in train mode, as the training program compiles them). ALQ is its own (AMSGrad) optimizer,
  so its ratio is against the SGD step of the fp row.

How the timings are taken: all steps of a model are compiled (``jax.jit(step).lower(...).compile()``,
timed) and warmed up (``--warmup`` steps each, untimed), then ``--reps`` repetitions run one step of
every method in turn, interleaved in this one process, each step timed to ``jax.block_until_ready`` of
its whole output, so machine load affects all methods alike. Times are medians over the repetitions.
Compare the ratios, not the absolute milliseconds: on a shared machine the absolute times move with the
load, the ratios of side-by-side steps much less.

Columns (one table per model):

* ``method``, ``phase``: the recipe and the phase (or ALQ mode) its timed steps are in.
* ``ms/step``: median wall time of one training step; ``min ms``: the fastest one.
* ``ratio``: ``ms/step`` / that of the fp row (the quantization overhead; 1.0 for fp).
* ``compile s``: lowering + XLA compilation of the step (seconds; no persistent cache involved unless
  one is configured).
* ``img/s``: batch / ``ms/step``.
* ``mem MiB``: memory of the compiled step from ``compiled.memory_analysis()``: arguments + outputs -
  donated (aliased) bytes + XLA temporaries, i.e. state, batch, new state and scratch at once (per device).
* ``dev MiB`` (GPU / TPU only, when ``device.memory_stats()`` exists): ``peak_bytes_in_use`` after the
  method's compilation and warm-up minus ``bytes_in_use`` before its state was created. The peak counter
  never resets, so where an earlier method set a higher peak only an upper bound is known, shown ``<=``.
* ``file B``: exact size of the file ``hqjax.export`` writes for the state after the timed steps
  (ANS-coded ternary codes + scales, or ALQ bitplanes + alphas, plus every other parameter and the
  BatchNorm statistics in float32; fp: the float32 model); ``fp32 B``: 4 bytes per parameter;
  ``fp32/file``: how many times smaller the file is than float32.
* ``zeros``: the fraction of zero weights among the quantized weights of that export, the sparsity the
  file size corresponds to; ``bits/w``: bits per quantized weight of the codes in the file (ternary:
  entropy-coded; ALQ: the average bitwidth, live bitplanes per weight, 6 or 8 here because the suite
  runs no pruning steps).

``--json PATH`` writes ``{"device": ..., "args": ..., "rows": [...]}`` with every figure in seconds and
bytes (the ``mem`` parts separately).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import hqjax  # noqa: E402
from bench.models import _fmt  # noqa: E402
from bench.overhead import configs as overhead_configs  # noqa: E402
from configs.common import ALQ_PRESETS, alq_preset_name  # noqa: E402
from hqjax import models  # noqa: E402
from hqjax.train.steps import TrainState, make_train_step  # noqa: E402
from hqjax.transforms import ALQ_MODES, alq_optimizer  # noqa: E402

METHODS = ("fp", "twn", "ttq", "ptq", "hq", "hla_tq", "alq")
# method -> (configuration of bench/overhead.py `configs`, phase of the timed steps)
OVERHEAD_CONFIG = {
    "fp": ("fp", "-"),
    "twn": ("twn", "-"),
    "ttq": ("ttq", "-"),
    "ptq": ("ptq phase B", "B"),
    "hq": ("hq phase B", "B"),
    "hla_tq": ("hla_tq phase Q", "Q"),
}
MIN_WARMUP = 2  # steps 0 and 1 prune and enter phase B / Q; the timed steps come after them
ALQ_LEARNING_RATE = 1e-3
ALQ_TOP_K = 0.05  # as bench/alq.py (matters only for prune steps, which the suite does not time)


def device_info() -> dict[str, Any]:
    """The first device's kind and platform, the device count, the jax version and the load."""
    dev = jax.devices()[0]
    return {
        "device_kind": dev.device_kind,
        "platform": dev.platform,
        "device_count": jax.device_count(),
        "jax": jax.__version__,
        "cpus": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def alq_settings(model_name: str) -> tuple[tuple, int]:
    """ALQ group rules and basis count of the model's preset (`configs.common.with_alq`)."""
    kw = ALQ_PRESETS[alq_preset_name(model_name)]["kwargs"]
    return tuple(tuple(r) for r in kw["groups"]), int(kw["num_bases"])


def build_variants(model_name: str, params: Any, methods: list[str], alq_modes: list[str]) -> dict:
    """``{label: (method, phase, tx, forward)}`` for the requested methods (ALQ: one per mode)."""
    first = "conv_init" if "conv_init" in params else None  # ResNets: `head` sorts before `stage*`
    selection = hqjax.Selection(first=first, last="head")
    table = overhead_configs(selection)
    out = {}
    for method in methods:
        if method == "alq":
            groups, num_bases = alq_settings(model_name)
            for mode in alq_modes:
                m = ALQ_MODES.index(mode)
                tx = alq_optimizer(
                    ALQ_LEARNING_RATE, lambda t, m=m: m, groups=groups, num_bases=num_bases, top_k=ALQ_TOP_K
                )
                out[f"alq {mode}"] = ("alq", mode, tx, hqjax.forward_params)
            continue
        key, phase = OVERHEAD_CONFIG[method]
        tx, quantized = table[key]
        out[method] = (method, phase, tx, hqjax.forward_params if quantized else (lambda p, s: p))
    return out


def _memory(compiled: Any) -> dict[str, int | None]:
    mem = compiled.memory_analysis()
    if mem is None:
        return {"mem_bytes": None}
    parts = {
        k: int(getattr(mem, f"{k}_size_in_bytes", 0) or 0) for k in ("argument", "output", "alias", "temp")
    }
    total = parts["argument"] + parts["output"] - parts["alias"] + parts["temp"]
    return {"mem_bytes": total, **{f"{k}_bytes": v for k, v in parts.items()}}


def _device_memory(device: Any) -> dict[str, int] | None:
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return stats


def _fresh(tree: Any) -> Any:
    """Own buffers for every leaf (states are donated, so no two may share one)."""
    return jax.tree.map(lambda a: jnp.array(a, copy=True), tree)


def _export(model_name: str, spec: Any, state: TrainState, method: str, folder: str) -> dict[str, Any]:
    """Write the packed file of `state` with ``hqjax.export``; its exact size and what it holds."""
    opt_state = None if method == "fp" else state.opt_state
    kwargs = {
        "batch_stats": state.batch_stats or None,
        "model": model_name,
        "num_classes": spec.num_classes,
        "input_shape": tuple(spec.input_shape),
    }
    path = os.path.join(folder, f"{model_name}-{method}.hqx")
    hqjax.export_packed(state.params, opt_state, path, **kwargs)
    file_bytes = os.path.getsize(path)
    report = hqjax.size_report(state.params, opt_state, **kwargs)
    if report.file_bytes != file_bytes:  # the accounting describes exactly this file
        raise AssertionError(f"size_report says {report.file_bytes} B, the file has {file_bytes} B")
    os.remove(path)
    if report.multibit:
        bits = report.average_bits
    elif report.quantized:
        bits = 8.0 * report.coded_code_bytes / report.quantized
    else:
        bits = None
    return {
        "export_bytes": file_bytes,
        "fp32_bytes": report.fp32_bytes,
        "export_ratio": report.fp32_bytes / file_bytes,
        "sparsity": report.sparsity if report.quantized else None,
        "bits_per_weight": bits,
    }


def bench_model(model_name: str, args: argparse.Namespace, folder: str) -> list[dict[str, Any]]:
    """Compile, warm up, time (interleaved) and export every method on one model; one row each."""
    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[args.dtype]
    spec = models.spec(model_name)
    model = models.get(model_name, dtype=dtype)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((args.batch, *spec.input_shape)), jnp.float32)
    y = jnp.asarray(rng.integers(0, spec.num_classes, args.batch), jnp.int32)
    batch = {"image": x, "label": y}
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(x[:1])
    params = variables["params"]
    stats = variables.get("batch_stats", {})
    device = jax.devices()[0]

    variants = build_variants(model_name, params, args.methods, args.alq_modes)
    runs: dict[str, dict[str, Any]] = {}
    for label, (method, phase, tx, forward) in variants.items():
        before = _device_memory(device)
        opt_state = jax.jit(tx.init)(params)
        state = _fresh(TrainState(jnp.zeros((), jnp.int32), params, stats, opt_state, jax.random.PRNGKey(1)))
        step = jax.jit(make_train_step(model, tx, forward), donate_argnums=0)
        t0 = time.perf_counter()
        compiled = step.lower(state, batch).compile()
        compile_s = time.perf_counter() - t0
        for _ in range(args.warmup):
            state, metrics = compiled(state, batch)
        jax.block_until_ready((state, metrics))
        row: dict[str, Any] = {
            "model": model_name,
            "method": method,
            "phase": phase,
            "batch": args.batch,
            "dtype": args.dtype,
            "compile_s": compile_s,
            **_memory(compiled),
        }
        after = _device_memory(device)
        if before and after:
            exact = after["peak_bytes_in_use"] > before["peak_bytes_in_use"]
            peak = after["peak_bytes_in_use"] if exact else before["peak_bytes_in_use"]
            row["dev_peak_bytes"] = peak - before["bytes_in_use"]
            row["dev_peak_exact"] = exact
        print(
            f"  {model_name} {label}: compiled in {compile_s:.1f} s, warmed up", file=sys.stderr, flush=True
        )
        runs[label] = {"compiled": compiled, "state": state, "times": [], "row": row}

    for _ in range(args.reps):
        for run in runs.values():
            t0 = time.perf_counter()
            out = run["compiled"](run["state"], batch)
            jax.block_until_ready(out)
            run["times"].append(time.perf_counter() - t0)
            run["state"], run["metrics"] = out

    fp = runs.get("fp")
    fp_median = statistics.median(fp["times"]) if fp else None
    rows = []
    for run in runs.values():
        row, times, state = run["row"], run["times"], run["state"]
        med = statistics.median(times)
        row.update(
            step_s=med,
            step_min_s=min(times),
            ratio=med / fp_median if fp_median else None,
            images_per_s=args.batch / med,
            steps=int(state.step),
            loss=float(run["metrics"]["loss"]),
            reps=args.reps,
        )
        row.update(_export(model_name, spec, state, row["method"], folder))
        rows.append(row)
    return rows


def _ms(seconds: float) -> str:
    ms = 1e3 * seconds
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 1000 else f"{ms:.0f}"


def _cell(value: float | None, spec: str) -> str:
    return _fmt(float("nan") if value is None else value, spec)  # None, NaN -> "-"


def print_table(rows: list[dict[str, Any]], info: dict[str, Any], args: argparse.Namespace) -> None:
    """One table for one model's rows."""
    r0 = rows[0]
    print(
        f"\n{r0['model']}: batch {r0['batch']}, {r0['dtype']}, {args.reps} interleaved reps after "
        f"{args.warmup} warm-up steps (medians); {info['device_count']} x {info['device_kind']} "
        f"({info['platform']})"
    )
    dev = any("dev_peak_bytes" in r for r in rows)
    head = (
        f"{'method':<8}{'phase':>11}{'ms/step':>9}{'min ms':>9}{'ratio':>7}{'compile s':>10}{'img/s':>9}"
        f"{'mem MiB':>9}"
        + (f"{'dev MiB':>10}" if dev else "")
        + f"{'file B':>12}{'fp32 B':>12}{'fp32/file':>10}{'zeros':>7}{'bits/w':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        mem = r.get("mem_bytes")
        cells = (
            f"{r['method']:<8}{r['phase']:>11}{_ms(r['step_s']):>9}{_ms(r['step_min_s']):>9}"
            f"{_cell(r['ratio'], '.3f'):>7}{r['compile_s']:>10.1f}{r['images_per_s']:>9.0f}"
            f"{_cell(None if mem is None else mem / 2**20, '.1f'):>9}"
        )
        if dev:
            d = r.get("dev_peak_bytes")
            d = "-" if d is None else ("" if r["dev_peak_exact"] else "<=") + f"{d / 2**20:.0f}"
            cells += f"{d:>10}"
        cells += (
            f"{r['export_bytes']:>12,}{r['fp32_bytes']:>12,}{r['export_ratio']:>10.2f}"
            f"{_cell(r['sparsity'], '.3f'):>7}{_cell(r['bits_per_weight'], '.2f'):>7}"
        )
        print(cells)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(
        prog="bench/suite.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--models",
        default="lenet5,resnet20",
        help="comma-separated hqjax.models names (resnet18: 224x224 ImageNet shapes, for accelerators)",
    )
    p.add_argument(
        "--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}"
    )
    p.add_argument(
        "--alq-modes", default="coordinate,basis", help=f"ALQ modes to time, of {','.join(ALQ_MODES)}"
    )
    p.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    p.add_argument("--reps", type=int, default=10, help="timed interleaved repetitions (default 10)")
    p.add_argument(
        "--warmup", type=int, default=3, help=f"untimed steps per method after compiling (>= {MIN_WARMUP})"
    )
    p.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "bfloat16"),
        help="computation dtype of the model (parameters stay float32)",
    )
    p.add_argument("--json", metavar="PATH", help="also write the device, the options and the rows as JSON")
    args = p.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.methods = [m for m in args.methods.split(",") if m]
    args.alq_modes = [m for m in args.alq_modes.split(",") if m]
    unknown = [m for m in args.models if m not in models.names()]
    if unknown:
        p.error(f"unknown model(s) {unknown}; valid: {', '.join(models.names())}")
    bad = [m for m in args.methods if m not in METHODS]
    if bad or not args.methods:
        p.error(f"unknown method(s) {bad}; valid: {', '.join(METHODS)}")
    if [m for m in args.alq_modes if m not in ALQ_MODES] or not args.alq_modes:
        p.error(f"--alq-modes: choose from {', '.join(ALQ_MODES)}")
    if args.reps < 1 or args.batch < 1:
        p.error("--reps and --batch must be >= 1")
    if args.warmup < MIN_WARMUP:
        p.error(f"--warmup must be >= {MIN_WARMUP}: PTQ / HQ / HLA-TQ enter their ternary phase at step 1")
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the suite, print one table per model, and return the rows (also written with ``--json``)."""
    args = parse_args(argv)
    info = device_info()
    print(
        f"hqjax bench suite: {info['device_count']} x {info['device_kind']} ({info['platform']}), "
        f"jax {info['jax']}, {info['cpus']} CPUs, load average {' '.join(map(str, info['load_average']))}",
        flush=True,
    )
    warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hqjax-bench-suite-") as folder:
        for name in args.models:
            t0 = time.perf_counter()
            model_rows = bench_model(name, args, folder)
            print_table(model_rows, info, args)
            print(f"({name}: {time.perf_counter() - t0:.0f} s in all)", flush=True)
            rows += model_rows
            jax.clear_caches()
    for r in rows:
        if not all(math.isfinite(r[k]) for k in ("step_s", "loss")):
            print(
                f"warning: non-finite time or loss in {r['model']} {r['method']} {r['phase']}",
                file=sys.stderr,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"device": info, "args": {k: v for k, v in vars(args).items() if k != "json"}, "rows": rows},
                f,
                indent=1,
            )
    return rows


if __name__ == "__main__":
    main()
