"""Per-layer statistics for logging and the end-of-run summary table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

import hqjax
from hqjax.selection import leaf_paths


def layer_stats(state: Any, summarize: Callable[[Any, Any], dict] = hqjax.summarize) -> dict[str, float]:
    """`hqjax.summarize` of a train state as plain floats (one entry per layer and statistic).

    Pass a jitted `summarize` when calling repeatedly: eager evaluation dispatches one op at a time.
    """
    stats = jax.device_get(summarize(state.params, state.opt_state))
    return {k: float(v) for k, v in stats.items()}


def model_sizes(params: Any, stats: dict[str, float] | None) -> dict[str, float]:
    """Three honest size counts in bytes (spec B7): fp32, dense 2-bit ternary, entropy-coded ternary.

    Quantized leaves cost 2 bits (dense) or ``H(p0)`` bits (entropy bound) per weight plus one fp32
    scale per unit (output channel); every other parameter (BatchNorm, biases, full-precision layers)
    costs 32 bits. BatchNorm running statistics are not counted (they fold into the affine at export).
    """
    leaves = dict(leaf_paths(params))
    total = sum(int(np.size(x)) for x in leaves.values())
    fp32 = 4.0 * total
    if not stats:
        return {"params": total, "quantized": 0, "fp32_bytes": fp32, "dense2_bytes": fp32,
                "coded_bytes": fp32}
    dense_bits = coded_bits = 0.0
    quantized = 0
    for path, leaf in leaves.items():
        n = int(np.size(leaf))
        if f"{path}/sparsity" in stats:
            units = int(np.shape(leaf)[-1]) if np.ndim(leaf) else 1
            quantized += n
            dense_bits += 2.0 * n + 32.0 * units
            coded_bits += stats[f"{path}/bits_entropy"] * n + 32.0 * units
        else:
            dense_bits += 32.0 * n
            coded_bits += 32.0 * n
    return {
        "params": total,
        "quantized": quantized,
        "fp32_bytes": fp32,
        "dense2_bytes": dense_bits / 8.0,
        "coded_bytes": coded_bits / 8.0,
    }


def final_report(
    config: Any,
    state: Any,
    history: list[dict[str, Any]],
    *,
    latent_accuracy: float,
    summarize: Callable[[Any, Any], dict] | None = None,
    train_seconds: float,
    wall_seconds: float,
    stopped_early: bool,
) -> dict[str, Any]:
    """Print (process 0) and return the run summary: accuracies, sparsity, bits, sizes, time."""
    stats = layer_stats(state, summarize or hqjax.summarize) if config.method != "fp" else None
    sizes = model_sizes(state.params, stats)
    last = history[-1] if history else {}
    summary: dict[str, Any] = {
        "method": config.method,
        "model": config.model,
        "dataset": config.dataset,
        "step": int(jax.device_get(state.step)),
        "latent_accuracy": latent_accuracy,
        "ternary_accuracy": last.get("ternary_accuracy", float("nan")),
        "sparsity": stats["quantizer/sparsity"] if stats else 0.0,
        "cosine": stats["quantizer/cosine"] if stats else 1.0,
        "bits_entropy": stats["quantizer/bits_entropy"] if stats else 32.0,
        "train_seconds": train_seconds,
        "wall_seconds": wall_seconds,
        "stopped_early": stopped_early,
        **sizes,
    }
    if jax.process_index() == 0:
        print(format_summary(summary), flush=True)
    return summary


def format_summary(s: dict[str, Any]) -> str:
    """The summary as a plain-text table."""
    fp32 = s["fp32_bytes"]
    lines = [
        "",
        f"== hqjax: {s['method']} {s['model']} on {s['dataset']}: {s['step']} steps, "
        f"{s['train_seconds']:.0f} s training ({s['wall_seconds']:.0f} s wall)"
        + (" [stopped early; resume with the same --workdir]" if s["stopped_early"] else "")
        + " ==",
        f"{'test accuracy':<22}{'latent (FP)*':>14}{'ternary':>12}",
        f"{'':<22}{s['latent_accuracy']:>14.4f}{s['ternary_accuracy']:>12.4f}",
        f"quantized weights {s['quantized']:,} of {s['params']:,}; sparsity {s['sparsity']:.3f}; "
        f"mean cos(latent, ternary) {s['cosine']:.4f}; entropy bound {s['bits_entropy']:.3f} bit/weight",
        "* latent network evaluated after re-estimating BatchNorm statistics for its weights",
        f"{'size':<22}{'bytes':>14}{'MB':>10}{'MiB':>10}{'ratio':>9}",
    ]
    for name, key in (("fp32", "fp32_bytes"), ("dense 2-bit", "dense2_bytes"),
                      ("entropy-coded bound", "coded_bytes")):
        b = s[key]
        lines.append(f"{name:<22}{b:>14,.0f}{b / 1e6:>10.3f}{b / 2**20:>10.3f}{fp32 / b:>8.1f}x")
    return "\n".join(lines)
