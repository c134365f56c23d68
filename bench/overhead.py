"""Train-step overhead of each hqjax recipe against the same model in full precision.

Run by hand:  ``.venv/bin/python bench/overhead.py [--model resnet20] [--batch 128] [--reps 15]``

Every configuration is one jitted train step (forward, backward, optimizer update) of the same model on
the same CIFAR-shaped batch. After compiling and warming up all of them, the steps are timed side by side
in one process: each repetition runs one step of every configuration in turn (interleaved, so machine
load affects all alike), and the table reports the median step time and its ratio to the full-precision
step. Two-phase methods are measured in both phases (masks are recomputed every step in PTQ/HQ phase A;
HLA-TQ adds its regularizer in phase R).

The model is ``hqjax.models.get(name)`` (default CIFAR ResNet-20) when the model zoo provides it, else a
small CNN defined here. Target: quantized step <= 1.05x the FP step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import hqjax


class SmallCNN(nn.Module):
    """Fallback CNN (3 conv + BN blocks, global pooling, classifier) for 32x32x3 inputs."""

    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        for i, (feat, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
            x = nn.Conv(feat, (3, 3), strides=stride, use_bias=False, name=f"conv{i}")(x)
            x = nn.relu(nn.BatchNorm(use_running_average=not train, name=f"bn{i}")(x))
        return nn.Dense(self.num_classes, name="head")(jnp.mean(x, axis=(1, 2)))


def build_model(name: str) -> tuple[nn.Module, str, hqjax.Selection]:
    """The benchmark model, a label, and the leaf selection (classifier named as the last layer)."""
    try:
        from hqjax import models

        model = models.get(name)
        return model, name, hqjax.Selection(first="conv_init", last="head")
    except Exception as err:  # the model zoo is optional here
        print(f"hqjax.models.get({name!r}) unavailable ({err.__class__.__name__}: {err}); using SmallCNN")
        return SmallCNN(), "SmallCNN", hqjax.Selection(first="conv0", last="head")


def make_step(model: nn.Module, tx: optax.GradientTransformation, quantized: bool) -> Callable[..., Any]:
    forward = hqjax.forward_params if quantized else (lambda p, s: p)

    def loss_fn(params, batch_stats, opt_state, x, y):
        logits, updates = model.apply(
            {"params": forward(params, opt_state), "batch_stats": batch_stats},
            x,
            train=True,
            mutable=["batch_stats"],
        )
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updates["batch_stats"]

    @jax.jit
    def step(params, batch_stats, opt_state, x, y):
        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, batch_stats, opt_state, x, y
        )
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), batch_stats, opt_state, loss

    return step


def configs(selection: hqjax.Selection) -> dict[str, tuple[optax.GradientTransformation, bool]]:
    inner = lambda: optax.sgd(0.05, momentum=0.9, nesterov=True)
    long = 1_000_000  # phase A / R for the whole benchmark
    kw = dict(selection=selection, scaled="head")
    return {
        "fp": (inner(), False),
        "twn": (hqjax.twn(inner(), selection=selection), True),
        "ttq": (hqjax.ttq(inner(), selection=selection), True),
        "ptq phase A": (hqjax.ptq(inner(), total_steps=long, **kw), True),
        "ptq phase B": (hqjax.ptq(inner(), total_steps=long, quantize_step=1, prune_end=1, **kw), True),
        "hq phase A": (hqjax.hq(inner(), total_steps=long, **kw), True),
        "hq phase B": (hqjax.hq(inner(), total_steps=long, quantize_step=1, prune_end=1, **kw), True),
        "hla_tq phase R": (hqjax.hla_tq(inner(), total_steps=long, **kw), True),
        "hla_tq phase Q": (hqjax.hla_tq(inner(), total_steps=long, quantize_step=1, **kw), True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    model, label, selection = build_model(args.model)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(args.batch, 32, 32, 3)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, args.batch), jnp.int32)
    variables = model.init(jax.random.key(0), x[:2], train=False)
    params0, stats0 = variables["params"], variables["batch_stats"]

    runs = {}
    for name, (tx, quantized) in configs(selection).items():
        step = make_step(model, tx, quantized)
        state = [params0, stats0, tx.init(params0)]
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            out = step(*state, x, y)
            jax.block_until_ready(out)
            state = list(out[:3])
        print(f"compiled + warmed up {name:<16} in {time.perf_counter() - t0:6.1f} s", flush=True)
        runs[name] = (step, state)

    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.reps):
        for name, (step, state) in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            out = step(*state, x, y)
            jax.block_until_ready(out)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            state[:] = out[:3]

    fp_wall, fp_cpu = statistics.median(wall["fp"]), statistics.median(cpu["fp"])
    print(
        f"\n{label}, batch {args.batch}, {jax.device_count()} device(s) {jax.devices()[0].platform}, "
        f"{args.reps} interleaved repetitions, medians"
    )
    print("(cpu s = process CPU time of the step, all threads: less sensitive to other processes' load)")
    print(f"{'config':<18}{'ms/step':>9}{'ratio':>8}{'min ms':>9}{'cpu s':>8}{'cpu ratio':>11}")
    for name in runs:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(
            f"{name:<18}{1e3 * w:>9.1f}{w / fp_wall:>8.3f}{1e3 * min(wall[name]):>9.1f}"
            f"{c:>8.3f}{c / fp_cpu:>11.3f}"
        )


if __name__ == "__main__":
    main()
