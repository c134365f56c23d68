"""Exact k-smallest selection: the sort-free bisection of `hqjax.ops` against the sorts it replaced.

Run by hand:  ``.venv/bin/python bench/selection.py [--reps 21] [--sparsity 0.7]``

Two operations decide the per-step cost of pruning and quantile thresholds (PTQ and HQ phase A, every
``zeros='quantile'`` recipe):

- the per-unit magnitude mask (`hqjax.ops.magnitude_mask`): the library ranks by a bisection over the
  float bit patterns (one count per bit) with ties broken by position; the reference is the stable
  double argsort it replaced (the ranks of a stable sort, compared with ``k``);
- the per-unit quantile threshold (`hqjax.ops.threshold_quantile`): a bisection for the k-th smallest
  ``|w|``; the reference is ``jnp.sort`` then a take.

Both are exact: before timing, each layer's library result is checked against its reference (masks
equal, thresholds equal) and the bench stops on any difference. Each repetition then runs every
(layer, operation, implementation) once in turn, interleaved so machine load affects all alike; the table
gives medians in milliseconds and the reference / library ratio. Layer shapes are the kernels of LeNet-5,
CIFAR ResNet-20 (width 16) and ImageNet ResNet-18's largest convolution, pruned per output unit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from hqjax.ops import magnitude_mask, num_pruned, threshold_quantile

LAYERS: dict[str, tuple[int, ...]] = {
    "lenet5 conv1 5x5x1x20": (5, 5, 1, 20),
    "lenet5 conv2 5x5x20x50": (5, 5, 20, 50),
    "lenet5 fc1 800x500": (800, 500),
    "resnet20 conv 3x3x64x64": (3, 3, 64, 64),
    "resnet18 conv 3x3x512x512": (3, 3, 512, 512),
}


def sorted_mask(w: jax.Array, sparsity: float) -> jax.Array:
    """Reference: per-unit (last axis) mask from the ranks of a stable double argsort."""
    flat = jnp.abs(w).reshape(-1, w.shape[-1]).T
    k = num_pruned(flat.shape[1], sparsity)
    ranks = jnp.argsort(jnp.argsort(flat, axis=1, stable=True), axis=1, stable=True)
    return (ranks >= k).T.reshape(w.shape)


def sorted_threshold(w: jax.Array, sparsity: float) -> jax.Array:
    """Reference: per-unit (last axis) k-th smallest magnitude from a full sort (0 when k = 0)."""
    flat = jnp.abs(w).reshape(-1, w.shape[-1]).T
    k = num_pruned(flat.shape[1], sparsity)
    kth = jnp.take(jnp.sort(flat, axis=1), jnp.maximum(k - 1, 0), axis=1)
    return jnp.where(k > 0, kth, 0.0)


def _time_once(fn: Callable[[jax.Array], jax.Array], w: jax.Array, times: list[float]) -> None:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(w))
    times.append(1e3 * (time.perf_counter() - t0))


def run(reps: int, sparsity: float, seed: int = 0) -> list[dict[str, object]]:
    """Check every layer's library result against its reference, then time both side by side."""
    rng = np.random.default_rng(seed)
    cases = []
    for name, shape in LAYERS.items():
        w = jnp.asarray(rng.normal(size=shape), jnp.float32)
        lib_mask = jax.jit(lambda x: magnitude_mask(x, sparsity, -1))
        ref_mask = jax.jit(lambda x: sorted_mask(x, sparsity))
        lib_thr = jax.jit(lambda x: threshold_quantile(x, sparsity, -1).reshape(-1))
        ref_thr = jax.jit(lambda x: sorted_threshold(x, sparsity))
        if not np.array_equal(np.asarray(lib_mask(w)), np.asarray(ref_mask(w))):
            raise SystemExit(f"{name}: the library's mask differs from the stable sort's; not timing.")
        if not np.array_equal(np.asarray(lib_thr(w)), np.asarray(ref_thr(w))):
            raise SystemExit(f"{name}: the library's threshold differs from the sort's; not timing.")
        cases.append((name, "mask", lib_mask, ref_mask, w))
        cases.append((name, "threshold", lib_thr, ref_thr, w))
    times: dict[tuple[str, str, str], list[float]] = {}
    for _ in range(reps):
        for name, op, lib, ref, w in cases:
            _time_once(lib, w, times.setdefault((name, op, "lib"), []))
            _time_once(ref, w, times.setdefault((name, op, "ref"), []))
    rows = []
    for name, op, *_ in cases:
        lib_ms = statistics.median(times[(name, op, "lib")])
        ref_ms = statistics.median(times[(name, op, "ref")])
        rows.append({"layer": name, "op": op, "sort_ms": ref_ms, "bisect_ms": lib_ms,
                     "ratio": ref_ms / lib_ms})
    return rows


def print_table(rows: list[dict[str, object]], reps: int, sparsity: float) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# exact selection, per unit, {sparsity:.0%} zeros; medians of {reps} interleaved reps; "
          f"{jax.devices()[0].platform}, load {load:.2f}")
    print("| layer | op | sort (ms) | bisection (ms) | sort / bisection |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['layer']} | {r['op']} | {r['sort_ms']:.3f} | {r['bisect_ms']:.3f} | {r['ratio']:.1f}x |")


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    p = argparse.ArgumentParser(prog="bench/selection.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=21, help="timed repetitions (default 21)")
    p.add_argument("--sparsity", type=float, default=0.7, help="zero fraction per unit (default 0.7)")
    args = p.parse_args(argv)
    if args.reps < 1:
        p.error(f"--reps must be >= 1, got {args.reps}")
    if not 0.0 <= args.sparsity < 1.0:
        p.error(f"--sparsity must be in [0, 1), got {args.sparsity}")
    rows = run(args.reps, args.sparsity)
    print_table(rows, args.reps, args.sparsity)
    return rows


if __name__ == "__main__":
    main()
