"""Per-layer statistics for logging and the end-of-run summary table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

import hqjax
from hqjax.export import size_report
from hqjax.train.artifacts import export_kwargs
from hqjax.train.methods import get_spec


def layer_stats(state: Any, summarize: Callable[[Any, Any], dict] = hqjax.summarize) -> dict[str, float]:
    """`hqjax.summarize` of a train state as plain floats (one entry per layer and statistic).

    Pass a jitted `summarize` when calling repeatedly: eager evaluation dispatches one op at a time.
    """
    stats = jax.device_get(summarize(state.params, state.opt_state))
    return {k: float(v) for k, v in stats.items()}


def model_sizes(state: Any, config: Any) -> dict[str, float]:
    """Honest size counts in bytes (spec B7, 1.6) from `hqjax.export.size_report`, the one size accounting.

    ``fp32_bytes``: 4 bytes per parameter; ``dense2_bytes``: ternary codes at 2 bits per weight plus side
    data, for ALQ its storage of spec 1.6 (binary codes at their live bits, 32-bit alphas) plus side data;
    ``entropy_bytes``: the codes' entropy bound plus side data; ``coded_bytes``: the exact size of the
    file ``python -m hqjax.export`` writes from the run's checkpoint at this step (codes, or ALQ's
    bitplanes and live-slot masks, per-unit scales or alphas, BatchNorm parameters and running
    statistics, biases, header and checksum); ``quantized``: the number of quantized (ternary or
    multi-bit) weights.
    """
    params = jax.device_get(state.params)
    opt_state = jax.device_get(get_spec(config.method).opt_state(state))
    kwargs = export_kwargs(config, int(jax.device_get(state.step)))
    r = size_report(params, opt_state, batch_stats=jax.device_get(state.batch_stats), **kwargs)
    return {
        "params": r.params,
        "quantized": r.quantized,
        "fp32_bytes": float(r.fp32_bytes),
        "dense2_bytes": float(r.dense2_bytes),
        "entropy_bytes": float(r.entropy_bytes),
        "coded_bytes": float(r.file_bytes),
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
    test: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Print (process 0) and return the run summary: accuracies, sparsity, bits, sizes, time; with
    `test` (``config.final_test``) also the final network's test-split accuracy and loss."""
    spec = get_spec(config.method)
    stats = layer_stats(state, summarize or hqjax.summarize) if spec.quantized else None
    sizes = model_sizes(state, config)
    last = history[-1] if history else {}
    summary: dict[str, Any] = {
        "method": config.method,
        "model": config.model,
        "dataset": config.dataset,
        "step": int(jax.device_get(state.step)),
        "latent_accuracy": latent_accuracy,
        "ternary_accuracy": last.get("ternary_accuracy", float("nan")),
        "sparsity": stats["quantizer/sparsity"] if stats else 0.0,
        "cosine": stats.get("quantizer/cosine", float("nan")) if stats else 1.0,
        "bits_entropy": stats.get("quantizer/bits_entropy", float("nan")) if stats else 32.0,
        # ALQ (spec 1.6): live coordinates per group, weighted by weight count
        "average_bits": stats.get("quantizer/average_bits", float("nan")) if stats else 32.0,
        "train_seconds": train_seconds,
        "wall_seconds": wall_seconds,
        "stopped_early": stopped_early,
        "eval_split": "validation" if config.get("validation_split") else "test",
        "validation_split": int(config.get("validation_split") or 0),
        **sizes,
    }
    if test is not None:
        summary["test_accuracy"], summary["test_loss"] = test["accuracy"], test["loss"]
    if jax.process_index() == 0:
        print(format_summary(summary), flush=True)
    return summary


def format_summary(s: dict[str, Any]) -> str:
    """The summary as a plain-text table."""
    fp32 = s["fp32_bytes"]
    # multi-bit storage (spec 1.6): bitplanes and masks are stored, not entropy-coded
    multibit = get_spec(s["method"]).family == "multibit"
    lines = [
        "",
        f"== hqjax: {s['method']} {s['model']} on {s['dataset']}: {s['step']} steps, "
        f"{s['train_seconds']:.0f} s training ({s['wall_seconds']:.0f} s wall)"
        + (" [stopped early; resume with the same --workdir]" if s["stopped_early"] else "")
        + " ==",
        f"{s.get('eval_split', 'test') + ' accuracy':<22}{'latent (FP)*':>14}{'ternary':>12}",
        f"{'':<22}{s['latent_accuracy']:>14.4f}{s['ternary_accuracy']:>12.4f}",
        *([f"{'test accuracy (once)':<22}{'':>14}{s['test_accuracy']:>12.4f}"]
          if "test_accuracy" in s else []),
        (
            f"quantized weights {s['quantized']:,} of {s['params']:,}; sparsity {s['sparsity']:.3f}; "
            f"average bitwidth {s['average_bits']:.3f} bit/weight (binary codes; alphas and FP parameters "
            "count in the storage below)"
            if multibit
            else f"quantized weights {s['quantized']:,} of {s['params']:,}; sparsity {s['sparsity']:.3f}; "
            f"mean cos(latent, ternary) {s['cosine']:.4f}; entropy bound {s['bits_entropy']:.3f} bit/weight"
        ),
        "* latent network evaluated after re-estimating BatchNorm statistics for its weights",
        f"{'size':<22}{'bytes':>14}{'MB':>10}{'MiB':>10}{'ratio':>9}",
    ]
    rows = (
        ("fp32", "fp32_bytes"),
        ("ALQ storage" if multibit else "dense 2-bit", "dense2_bytes"),
        ("entropy bound", "entropy_bytes"),
        ("coded file" if multibit else "entropy-coded file", "coded_bytes"),
    )
    for name, key in rows:
        b = s[key]
        lines.append(f"{name:<22}{b:>14,.0f}{b / 1e6:>10.3f}{b / 2**20:>10.3f}{fp32 / b:>8.1f}x")
    return "\n".join(lines)
