"""A training run's artifacts: restore the newest checkpoint of a run directory and pack it.

The model and optimizer are rebuilt from the config the checkpoint records with the functions
`hqjax.train.loop.train_and_evaluate` builds them with (`hqjax.train.build`), and the train state is
restored into them; the packed file (`hqjax.export`, the codec, which knows nothing of training) gets
the model's registry name, class count, kwargs and input shape, and the run's method, dataset and step
as metadata. `main` is the command ``python -m hqjax.export --workdir RUN --out FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

import hqjax
from hqjax import data
from hqjax.export.format import PackedFormatError
from hqjax.export.packed import export_variables, forward_variables, load_packed
from hqjax.export.size import SizeReport
from hqjax.train import build, parallel
from hqjax.train.checkpoint import Checkpointer
from hqjax.train.methods import get_spec

__all__ = ["RestoredRun", "check_round_trip", "export_kwargs", "export_run", "main", "restore_run"]


class RestoredRun:
    """A run's config, model and restored train state.

    Attributes:
      config: the run's ``ml_collections.ConfigDict`` as its checkpoint records it.
      model: the Flax module (float32 or the run's compute dtype).
      state: the restored `hqjax.train.steps.TrainState`.
      step: the checkpoint's step.
      input_shape: shape of one model input, (H, W, C).
    """

    def __init__(self, config: Any, model: Any, state: Any, step: int, input_shape: tuple[int, ...]):
        self.config, self.model, self.state = config, model, state
        self.step, self.input_shape = step, input_shape

    @property
    def opt_state(self) -> Any:
        """The optimizer state, or None for a full-precision run."""
        return get_spec(self.config.method).opt_state(self.state)


def _saved_config(directory: str, step: int | None) -> tuple[int, dict[str, Any]]:
    manager = ocp.CheckpointManager(directory, item_handlers={"config": ocp.JsonCheckpointHandler()})
    try:
        steps = sorted(manager.all_steps(), reverse=True) if step is None else [step]
        if not steps:
            raise FileNotFoundError(
                f"{directory} holds no checkpoint. Train first (python train.py --workdir ...), or pass "
                "the --workdir of a run that saved one."
            )
        errors = []
        for s in steps:
            try:
                cfg = manager.restore(s, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]
                return s, cfg
            except Exception as e:  # noqa: BLE001 - an unreadable step: try the previous one
                errors.append(f"step {s}: {type(e).__name__}: {e}")
        raise ValueError(f"No checkpoint config in {directory} can be read: {'; '.join(errors)}.")
    finally:
        manager.close()


def restore_run(workdir: str, step: int | None = None) -> RestoredRun:
    """Rebuild a run's model and optimizer from its checkpointed config and restore its newest state.

    Args:
      workdir: the run directory (``--workdir`` of ``train.py``).
      step: a specific checkpoint step (default: the newest readable one).

    Raises:
      FileNotFoundError: no run directory or no checkpoint in it.
      ValueError: unreadable checkpoints (see `hqjax.train.checkpoint.Checkpointer.restore`).
    """
    directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"{directory} does not exist: --workdir must be the directory of a training run "
            "(python train.py --workdir DIR)."
        )
    found, saved = _saved_config(directory, step)
    config = ml_collections.ConfigDict(saved)
    info = data.info(config.dataset)
    model = build.build_model(config)
    tx = build.build_optimizer(config, build.steps_per_epoch(config))
    abstract = build.init_state(config, model, tx, info.image_shape, parallel.make_mesh(1))
    checkpointer = Checkpointer(workdir, async_save=False)
    try:
        restored = checkpointer.restore(abstract, config.to_dict(), step=found)
    finally:
        checkpointer.close()
    if restored is None:  # pragma: no cover - _saved_config found the step
        raise FileNotFoundError(f"{directory} holds no checkpoint.")
    _, state, _ = restored
    return RestoredRun(config, model, state, found, tuple(info.image_shape))


def export_kwargs(config: Any, step: int) -> dict[str, Any]:
    """The model and metadata `export` records for a run with `config` at `step`.

    `hqjax.train.report` passes the same to `hqjax.size_report`, so the size the run summary prints is the
    size of the file ``python -m hqjax.export`` writes from the run's final checkpoint.
    """
    return {
        "model": config.model,
        "num_classes": config.num_classes,
        "model_kwargs": dict(config.model_kwargs),
        "input_shape": tuple(data.info(config.dataset).image_shape),
        "meta": {
            "method": config.method,
            "dataset": config.dataset,
            "step": int(step),
            "compute_dtype": config.compute_dtype,
        },
    }


def export_run(
    workdir: str, out: str, *, coder: str = "ans", step: int | None = None
) -> tuple[RestoredRun, SizeReport]:
    """Restore a run (`restore_run`) and write its packed model to `out`; returns ``(run, report)``.

    Ternary runs store codes and scales; ALQ runs the bitplanes, masks and alphas of their multi-bit
    layers (see `hqjax.export.export`).
    """
    run = restore_run(workdir, step)
    variables, ternary, multibit = forward_variables(run.state.params, run.opt_state, run.state.batch_stats)
    kwargs = export_kwargs(run.config, run.step)
    report = export_variables(out, variables, ternary=ternary, multibit=multibit, coder=coder, **kwargs)
    return run, report


def check_round_trip(run: RestoredRun, path: str, batch: int = 2, seed: int = 0) -> float:
    """Max |difference| between the logits of the packed model and of the run's ternary evaluation.

    Both are computed on the same random batch, the reference as the training loop's evaluation does
    (``model.apply`` on `hqjax.ternary_params`, for ALQ its multi-bit reconstruction, inside one
    `jax.jit`). 0.0 means identical logits.
    """
    model, state = run.model, run.state
    x = jax.random.normal(jax.random.key(seed), (batch, *run.input_shape), jnp.float32)
    tern = hqjax.ternary_params if run.opt_state is not None else (lambda p, s: p)

    def reference(params, opt_state, batch_stats, x):
        return model.apply({"params": tern(params, opt_state), "batch_stats": batch_stats}, x, train=False)

    ref = jax.jit(reference)(state.params, state.opt_state, state.batch_stats, x)
    variables = load_packed(path, model=run.config.model)
    variables.setdefault("batch_stats", {})
    got = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x)
    ref, got = np.asarray(ref, np.float32), np.asarray(got, np.float32)
    if np.array_equal(ref, got):
        return 0.0
    return float(np.max(np.abs(ref - got)))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m hqjax.export",
        description="Export a training run to one packed file and print its size table.",
    )
    parser.add_argument("--workdir", required=True, help="run directory written by train.py")
    parser.add_argument("--out", required=True, help="packed model file to write")
    parser.add_argument("--coder", default="ans", choices=("ans", "dense2"), help="code format (default ans)")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: newest)")
    parser.add_argument("--no-verify", action="store_true", help="skip the round-trip logits check")
    parser.add_argument("--json", default=None, help="also write the size totals to this JSON file")
    args = parser.parse_args(argv)

    try:
        run, report = export_run(args.workdir, args.out, coder=args.coder, step=args.step)
    except (FileNotFoundError, ValueError) as e:
        print(f"hqjax.export: {e}", file=sys.stderr)
        return 1
    cfg = run.config
    print(
        f"== {cfg.method} {cfg.model} ({cfg.dataset}), step {run.step} -> {args.out}: "
        f"{os.path.getsize(args.out):,} bytes =="
    )
    print(report.table())
    if not args.no_verify:
        what = get_spec(cfg.method).storage
        try:
            diff = check_round_trip(run, args.out)
        except PackedFormatError as e:
            print(f"hqjax.export: {e}", file=sys.stderr)
            return 1
        if diff != 0.0:
            print(f"round trip: logits differ from the {what} evaluation (max |diff| {diff:.3g})",
                  file=sys.stderr)
            return 1
        print(f"round trip: logits identical to the run's {what} evaluation")
    if args.json:
        totals = {"file": args.out, "method": cfg.method, "model": cfg.model, "step": run.step,
                  **report.as_dict()}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(totals, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
