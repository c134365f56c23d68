"""ALQ benchmark: training-step time per mode against the full-precision step, and the memory of the
nearest-code search at I = 8 on ResNet-18-sized layers.

    python bench/alq.py                       # LeNet-5, batch 128, one device
    python bench/alq.py --model vgg_small --batch 64

Each step variant (full-precision Adam; ALQ in each of its four modes) is compiled once and timed
interleaved, round after round, in this one process: the table reports medians and the ratio to the
full-precision step measured side by side (machines are noisy; compare ratios, not milliseconds).
For LeNet-5 it also prints seconds per 391-step epoch (50,000 training images of the official
50k/10k split, batch 128) beside the official PyTorch code's epochs on a 2-core CPU, and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import hqjax  # noqa: E402
from configs.common import ALQ_PRESETS, alq_preset_name  # noqa: E402
from hqjax import models  # noqa: E402
from hqjax.ops import alq as alq_ops  # noqa: E402
from hqjax.train.steps import TrainState, make_train_step  # noqa: E402
from hqjax.transforms import ALQ_MODES, alq_optimizer  # noqa: E402

# the group rules of each model's ALQ preset (`configs.common.with_alq`)
GROUPS = {m: ALQ_PRESETS[alq_preset_name(m)]["kwargs"]["groups"] for m in ("lenet5", "vgg_small", "resnet20")}
SHAPES = {"lenet5": (28, 28, 1), "vgg_small": (32, 32, 3), "resnet20": (32, 32, 3)}
# The official ALQ code's LeNet-5 epochs (391 steps of 128) on a 2-core CPU, in seconds.
OFFICIAL_EPOCH_S = {"full precision (Adam)": 8.0, "alq coordinate": 10.0, "alq basis": 62.0,
                    "alq ste": 58.0, "alq prune": 10.4}
EPOCH_STEPS = 391


def time_steps(model_name: str, batch: int, rounds: int, warmup: int) -> list[tuple[str, float, float]]:
    model = models.get(model_name, num_classes=10)
    shape = SHAPES[model_name]
    x = jax.random.normal(jax.random.key(0), (batch, *shape))
    y = jnp.arange(batch) % 10
    variables = model.init(jax.random.key(1), x[:1], train=False)
    params, stats = variables["params"], variables.get("batch_stats", {})
    data = {"image": x, "label": y}

    def state_for(tx):
        return TrainState(jnp.zeros((), jnp.int32), params, stats, tx.init(params), jax.random.key(2))

    variants = {}
    fp = optax.adam(1e-3)
    variants["full precision (Adam)"] = (jax.jit(make_train_step(model, fp, lambda p, s: p)), state_for(fp))
    for m, name in enumerate(ALQ_MODES):
        tx = alq_optimizer(1e-3, lambda t, m=m: m, lambda t: 0.01, groups=GROUPS[model_name],
                           num_bases=6, top_k=0.05)
        step = jax.jit(make_train_step(model, tx, hqjax.forward_params,
                                       bn_frozen=hqjax.transforms.alq_bn_frozen))
        variants[f"alq {name}"] = (step, state_for(tx))

    times: dict[str, list[float]] = {k: [] for k in variants}
    states = {k: s for k, (_, s) in variants.items()}
    for r in range(warmup + rounds):
        for k, (step, _) in variants.items():
            t0 = time.perf_counter()
            states[k], metrics = step(states[k], data)
            jax.block_until_ready(metrics)
            if r >= warmup:
                times[k].append(time.perf_counter() - t0)
    base = statistics.median(times["full precision (Adam)"])
    return [(k, statistics.median(v), statistics.median(v) / base) for k, v in times.items()]


def nearest_code_memory(num_bases: int = 8) -> list[tuple[str, float, float]]:
    """Peak temporary memory of the compiled nearest-code search for ResNet-18's largest layers."""
    rows = []
    for name, shape in (("stage4 conv 3x3x512x512", (3, 3, 512, 512)), ("stage3 conv 3x3x256x256",
                                                                        (3, 3, 256, 256))):
        g, n = alq_ops.group_shape(shape, "pixelwise")
        t = jax.ShapeDtypeStruct((g, n), jnp.float32)
        a = jax.ShapeDtypeStruct((g, num_bases), jnp.float32)
        mk = jax.ShapeDtypeStruct((g, num_bases), jnp.bool_)
        compiled = jax.jit(alq_ops.nearest_codes).lower(t, a, mk).compile()
        mem = compiled.memory_analysis()
        temp = float(getattr(mem, "temp_size_in_bytes", float("nan")))
        naive = float(g) * n * 2**num_bases * 4
        rows.append((name, temp / 1e6, naive / 1e6))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="lenet5", choices=sorted(GROUPS))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    print(f"devices: {jax.devices()}")
    print(f"\nALQ training step vs full-precision step: {args.model}, batch {args.batch}, "
          f"median of {args.rounds} interleaved rounds")
    per_epoch = args.model == "lenet5" and args.batch == 128
    head = f"{'step':<26}{'ms':>10}{'vs fp':>8}"
    if per_epoch:
        head += f"{'s/epoch':>10}{'official s':>12}{'vs official':>13}"
    print(head)
    for name, t, ratio in time_steps(args.model, args.batch, args.rounds, args.warmup):
        line = f"{name:<26}{1e3 * t:>10.1f}{ratio:>7.2f}x"
        if per_epoch:
            epoch, official = EPOCH_STEPS * t, OFFICIAL_EPOCH_S[name]
            line += f"{epoch:>10.1f}{official:>12.1f}{epoch / official:>12.2f}x"
        print(line)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("\nNearest-code search at I = 8 (pixelwise groups): compiled temporary memory")
    print(f"{'layer':<28}{'temp MB':>10}{'full table MB':>15}")
    for name, temp, naive in nearest_code_memory():
        print(f"{name:<28}{temp:>10.1f}{naive:>15.1f}")


if __name__ == "__main__":
    main()
