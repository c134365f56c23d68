"""Reproduce the results report: every method on every dataset reachable offline, over several seeds.

    python bench/reproduce.py run --tables digits mnist_lenet5 --seeds 0 1 2 --mnist-dir PATH/TO/mnist
    python bench/reproduce.py report        # docs/results.md and docs/results/*.png from the records
    python bench/reproduce.py verify --tables digits --rows fp hq alq --seeds 0   # retrain, compare

``run`` trains each (table, row, seed) with ``train.py`` in its own process, in a fresh work directory
under ``--workdir``, and condenses the run's ``metrics.jsonl`` into one small JSON record in
``docs/results/runs/<table>/<row>-s<seed>.json`` (final test accuracy, sparsity, bits, exact exported
size, training time, per-layer statistics over training). Rows whose record exists are skipped, so an
interrupted sweep resumes; ``--force`` retrains. ``report`` needs only the records: it writes the tables
(mean ± sample std over seeds), the command behind every row and the plots.

Each row's command is exactly what ``run`` executes (``TABLES`` below), so any single number can be
re-derived with ``python train.py ...`` by hand. ``verify`` does that for the records it is given: it
retrains each in a temporary directory with the record's command and device count and prints whether
every figure (accuracies, sizes, per-epoch and per-layer statistics; not the timings) is identical.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDS = os.path.join(ROOT, "docs", "results", "runs")
MNIST_PLACEHOLDER = "$HQJAX_MNIST_DIR"


@dataclass(frozen=True)
class Row:
    """One row of a table: a method with its overrides (``--config.KEY=VALUE``)."""

    name: str
    method: str
    overrides: tuple[tuple[str, Any], ...] = ()
    label: str = ""  # shown in the table; defaults to `name`
    baseline: str = ""  # the row an ablation compares it with (default: the table's TWN row)


@dataclass(frozen=True)
class Table:
    """A dataset/model setting: its config file, shared overrides and rows."""

    name: str
    title: str
    config: str
    rows: tuple[Row, ...]
    overrides: tuple[tuple[str, Any], ...] = ()
    mnist: bool = False
    notes: str = ""
    papers: tuple[dict[str, str], ...] = field(default_factory=tuple)
    eval_split: str = "test"  # "validation": rows trained with --config.validation_split, never tested
    seeds: tuple[int, ...] = (0, 1, 2)  # the seeds a complete test table has for every row


_TERNARY = ("twn", "ttq", "ptq", "hq", "hla_tq")
# PTQ and HQ rows of the results tables as trained: with the AGP mask frozen at the boundary (the
# recipes' default until the component ablation below made zeros by per-step quantile the default).
_FROZEN = (("method_kwargs.zeros", "frozen"),)
# HLA-TQ rows as trained: regularizer strength 0.1, the default before the same ablation.
_REG01 = (("method_kwargs.reg_strength", 0.1),)


def _results_rows() -> tuple[Row, ...]:
    """fp and the ternary methods with their defaults (PTQ, HQ and HLA-TQ pinned as trained, see
    `_FROZEN` and `_REG01`)."""
    pinned = {"ptq": (_FROZEN, "ptq (AGP mask frozen)"), "hq": (_FROZEN, "hq (AGP mask frozen)"),
              "hla_tq": (_REG01, "hla_tq (regularizer 0.1)")}
    return (Row("fp", "fp"), *(
        Row(m, m, *pinned[m]) if m in pinned else Row(m, m) for m in _TERNARY))


# ALQ on a short schedule (the official one is 194 epochs): the 4 rounds of basis / coordinate / prune
# that set the bitwidth, one epoch each, then STE and final coordinate epochs. pr = 0.8 per round as
# the official run; the fp32 starting point is trained first (pretrain) in the run's own directory.
_ALQ_SHORT = (
    ("method_kwargs.epoch_basis", 1), ("method_kwargs.epoch_coord", 1), ("method_kwargs.epoch_ste", 2),
    ("method_kwargs.epoch_post", 1), ("num_epochs", 15),
)

# The component ablation (issue: why HQ, PTQ and HLA-TQ lose to TWN): from TWN one component at a time
# towards the full recipes. 1,950 steps in all; a third of them is the two-phase boundary.
_Q = 650
_ABLATION_ROWS = (
    Row("twn", "twn", label="TWN (per unit, threshold 0.7 mean abs(w))"),
    Row("twn_2ph", "twn", (("method_kwargs.quantize_step", _Q),), label="+ two-phase (fp first third)"),
    Row("twn_2ph_q50", "twn", (("method_kwargs.quantize_step", _Q), ("method_kwargs.sparsity", 0.5)),
        label="+ two-phase + 50 % zeros by per-step quantile"),
    Row("sphere_q50", "hla_tq", (("method_kwargs.reg_strength", 0.0), ("method_kwargs.min_factor", 1.0),
                                 ("method_kwargs.sparsity", 0.5)),
        label="+ hypersphere (no regularizer, normalised STE)"),
    Row("ptq_quantile", "ptq", (("method_kwargs.zeros", "quantile"),),
        label="PTQ, zeros by per-step quantile after the boundary"),
    Row("ptq", "ptq", _FROZEN, label="PTQ (AGP mask frozen at the boundary)"),
    Row("hq_quantile", "hq", (("method_kwargs.zeros", "quantile"),),
        label="HQ, zeros by per-step quantile after the boundary"),
    Row("hq", "hq", _FROZEN, label="HQ (PTQ + sign reinitialisation, AGP mask frozen)"),
    Row("hla_tq_reg0", "hla_tq", (("method_kwargs.reg_strength", 0.0),), label="HLA-TQ without regularizer"),
    Row("hla_tq_r01", "hla_tq", (("method_kwargs.reg_strength", 0.01),), label="HLA-TQ, regularizer 0.01"),
    Row("hla_tq_r001", "hla_tq", (("method_kwargs.reg_strength", 0.001),),
        label="HLA-TQ, regularizer 0.001"),
    Row("hla_tq", "hla_tq", _REG01, label="HLA-TQ (regularizer 0.1, re-scaled STE)"),
)

# The same question on LeNet-5 for 15 epochs (5,865 steps): TWN, TWN at PTQ/HQ's 70 % zeros, and each
# recipe with its components set explicitly, so the rows do not move when a default does.
_ABLATION_LENET5_ROWS = (
    Row("twn", "twn", label="TWN (per unit, threshold 0.7 mean abs(w))"),
    Row("twn_q70", "twn", (("method_kwargs.sparsity", 0.7),), label="TWN, 70 % zeros by per-step quantile"),
    Row("ptq", "ptq", (("method_kwargs.zeros", "quantile"),),
        label="PTQ, zeros by per-step quantile after the boundary"),
    Row("hq", "hq", (("method_kwargs.zeros", "quantile"),),
        label="HQ, zeros by per-step quantile after the boundary"),
    Row("hla_tq_reg0", "hla_tq", (("method_kwargs.reg_strength", 0.0),), label="HLA-TQ without regularizer"),
    Row("hla_tq_r001", "hla_tq", (("method_kwargs.reg_strength", 0.001),),
        label="HLA-TQ, regularizer 0.001"),
    Row("hla_tq_mf1", "hla_tq", (("method_kwargs.reg_strength", 0.0), ("method_kwargs.min_factor", 1.0)),
        label="HLA-TQ without regularizer, normalised STE (re-scaling floor 1)"),
    Row("hla_tq_mf005", "hla_tq", (("method_kwargs.reg_strength", 0.0), ("method_kwargs.min_factor", 0.05)),
        label="HLA-TQ without regularizer, re-scaling floor 0.05"),
    # the learning rate, the one free hyper-parameter every method shares: the same grid of three for
    # TWN, PTQ, HQ and HLA-TQ (the config's 0.05 in the rows above, 0.02 and 0.1 here, seed 0)
    *(Row(f"{base.name}_lr{str(lr).replace('.', '')}", base.method, (*base.overrides, ("learning_rate", lr)),
          label=f"{base.label}, lr {lr}",
          baseline="" if base.method == "twn" else f"twn_lr{str(lr).replace('.', '')}")
      for base in (Row("twn", "twn", label="TWN"),
                   Row("ptq", "ptq", (("method_kwargs.zeros", "quantile"),), label="PTQ (quantile)"),
                   Row("hq", "hq", (("method_kwargs.zeros", "quantile"),), label="HQ (quantile)"),
                   Row("hla_tq_reg0", "hla_tq", (("method_kwargs.reg_strength", 0.0),),
                       label="HLA-TQ without regularizer"))
      for lr in (0.02, 0.1)),
    # TWN at PTQ/HQ's size with the learning rate the grid chose for TWN and PTQ
    Row("twn_q70_lr01", "twn", (("method_kwargs.sparsity", 0.7), ("learning_rate", 0.1)),
        label="TWN, 70 % zeros by per-step quantile, lr 0.1", baseline="twn_lr01"),
)

# The test split, opened once: each method with the settings the validation tables chose (explicit, so
# the rows do not move when a default does). LeNet-5: the learning rate of the validation grid; PTQ and
# HQ compare with TWN at their own 70 % zeros.
_Q70 = (("method_kwargs.sparsity", 0.7),)
_QUANTILE = (("method_kwargs.zeros", "quantile"),)
_TUNED_LENET5_ROWS = (
    Row("twn", "twn", (("learning_rate", 0.1),), label="TWN, lr 0.1"),
    Row("twn_q70", "twn", (*_Q70, ("learning_rate", 0.1)),
        label="TWN, 70 % zeros by per-step quantile, lr 0.1"),
    Row("ptq", "ptq", (*_QUANTILE, ("learning_rate", 0.1)), label="PTQ (quantile zeros), lr 0.1",
        baseline="twn_q70"),
    Row("hq", "hq", (*_QUANTILE, ("learning_rate", 0.05)), label="HQ (quantile zeros), lr 0.05",
        baseline="twn_q70"),
    Row("hla_tq", "hla_tq", (("method_kwargs.reg_strength", 0.0), ("method_kwargs.min_factor", 1.0),
                             ("learning_rate", 0.05)),
        label="HLA-TQ without regularizer, normalised STE (floor 1), lr 0.05"),
)
# ResNet-20: every method at the config's learning rate (0.1; not tuned, the same for all).
_TUNED_RESNET_ROWS = (
    Row("twn", "twn", label="TWN"),
    Row("ptq", "ptq", _QUANTILE, label="PTQ (quantile zeros)"),
    Row("hq", "hq", _QUANTILE, label="HQ (quantile zeros)"),
    Row("hla_tq", "hla_tq", (("method_kwargs.reg_strength", 0.0),), label="HLA-TQ without regularizer"),
)

# The official ALQ code's LeNet-5 / MNIST figures, as its README gives them.
_ALQ_README = {"method": "alq", "source": "ALQ official README (Qu et al., CVPR 2020)",
               "accuracy": "99.1 %", "bits": "0.40", "size": "22.7 KB",
               "setting": "same network and groups; 100 fp32 + 194 ALQ epochs, best-of-validation"}

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            name="digits",
            title="scikit-learn digits (8x8), CIFAR ResNet-20 — the embedded default run",
            config="configs/default.py",
            overrides=(("num_epochs", 30), ("layer_stats_every_epochs", 1)),
            rows=(
                *_results_rows(),
                Row("alq", "alq", (
                    ("pretrain.epochs", 10), ("method_kwargs.rounds", 2), ("method_kwargs.epoch_basis", 10),
                    ("method_kwargs.epoch_coord", 5), ("method_kwargs.epoch_ste", 10),
                    ("method_kwargs.epoch_post", 5), ("method_kwargs.top_k", 0.2), ("num_epochs", 47))),
            ),
            notes=("1,437 training and 360 test images; 30 epochs of batch 128 (11 steps each), "
                   "SGD-nesterov, cosine lr 0.1; PTQ and HQ prune to 50 % zeros. ALQ: 10 fp32 epochs, "
                   "then 2 rounds of [10 basis, 5 coordinate, 1 prune epoch], 10 STE and 5 coordinate "
                   "epochs (47 epochs, 517 steps; an epoch here is only 11 steps), channelwise groups, "
                   "pruning candidates raised to 20 % of a layer's coordinates per step (`top_k`)."),
        ),
        Table(
            name="mnist_lenet5",
            title="MNIST (real, 60k/10k), LeNet-5 (20-50-500)",
            config="configs/mnist_lenet5.py",
            mnist=True,
            overrides=(("num_epochs", 3), ("layer_stats_every_steps", 47), ("checkpoint_every_epochs", 0)),
            rows=(
                *_results_rows(),
                Row("alq", "alq", (("pretrain.epochs", 3), *_ALQ_SHORT)),
                Row("twn_s70", "twn", (("method_kwargs.factor", 1.3),),
                    label="twn, threshold 1.3·mean abs(w)"),
            ),
            notes=("3 epochs of batch 128 (SGD-nesterov, cosine lr 0.05) for fp and the ternary methods; "
                   "PTQ and HQ prune to 70 % zeros. ALQ: 3 fp32 epochs, then a 15-epoch version of the "
                   "official pipeline (4 rounds x [1 basis, 1 coordinate, 1 prune epoch], 2 STE, 1 "
                   "coordinate epoch) instead of 10 + 194 epochs. `twn_s70` raises TWN's threshold "
                   "so that its size matches HQ/PTQ (the ablation below)."),
            papers=(_ALQ_README,),
        ),
        Table(
            name="mnist_resnet",
            title="MNIST (real, 60k/10k), CIFAR ResNet-20 at width 8",
            config="configs/mnist_resnet20.py",
            mnist=True,
            overrides=(("num_epochs", 1), ("warmup_epochs", 0), ("model_kwargs", "{'width': 8}"),
                       ("layer_stats_every_steps", 47),
                       ("checkpoint_every_epochs", 0)),
            rows=(
                *_results_rows(),
                Row("alq", "alq", (("pretrain.epochs", 1), ("method_kwargs.rounds", 1),
                                   ("method_kwargs.epoch_basis", 1), ("method_kwargs.epoch_coord", 1),
                                   ("method_kwargs.epoch_ste", 1), ("method_kwargs.epoch_post", 1),
                                   ("num_epochs", 5))),
            ),
            notes=("One epoch of batch 128 (SGD-nesterov, cosine lr 0.1, no warm-up) for fp and the "
                   "ternary methods; PTQ and HQ prune to 50 % zeros. ALQ: 1 fp32 epoch, then one round of "
                   "the pipeline (1 basis, 1 coordinate, 1 prune, 1 STE, 1 coordinate epoch), channelwise "
                   "groups."),
        ),
        Table(
            name="ablation_resnet",
            title="Component ablation — MNIST ResNet-20 at width 8, 5 epochs, validation split",
            config="configs/mnist_resnet20.py",
            mnist=True,
            overrides=(("num_epochs", 5), ("warmup_epochs", 0), ("model_kwargs", "{'width': 8}"),
                       ("validation_split", 10000), ("layer_stats_every_steps", 390),
                       ("checkpoint_every_epochs", 0)),
            rows=_ABLATION_ROWS,
            eval_split="validation",
            notes=("Trained on 50,000 MNIST training images for 5 epochs of batch 128 (1,950 steps; the "
                   "two-phase rows quantize from step 650, a third, as the recipes' default); every "
                   "accuracy is on the 10,000 training images held out by `--config.validation_split` "
                   "(the test split is never opened). Each row switches on one component on top of the "
                   "row above it or of TWN (see the label)."),
        ),
        Table(
            name="ablation_lenet5",
            title="Component ablation — MNIST LeNet-5, 15 epochs, validation split",
            config="configs/mnist_lenet5.py",
            mnist=True,
            overrides=(("num_epochs", 15), ("validation_split", 10000), ("layer_stats_every_steps", 1173),
                       ("checkpoint_every_epochs", 0)),
            rows=_ABLATION_LENET5_ROWS,
            eval_split="validation",
            notes=("Trained on 50,000 MNIST training images for 15 epochs of batch 128 (5,865 steps; the "
                   "two-phase recipes quantize from step 1,955, a third); accuracy on the 10,000 held-out "
                   "training images (the test split is never opened). PTQ and HQ prune to 70 % zeros."),
        ),
        Table(
            name="tuned_lenet5",
            title="Settings chosen on validation, test split — MNIST LeNet-5, 15 epochs",
            config="configs/mnist_lenet5.py",
            mnist=True,
            overrides=(("num_epochs", 15), ("layer_stats_every_steps", 1404), ("checkpoint_every_epochs", 0)),
            rows=_TUNED_LENET5_ROWS,
            seeds=(0, 1, 2),
            notes=("All 60,000 training images, 15 epochs of batch 128 (7,020 steps); each method with the "
                   "zeros rule and learning rate the validation table above chose for it; the test split "
                   "is opened for these rows only."),
        ),
        Table(
            name="alq_full",
            title="ALQ at its official schedule — MNIST LeNet-5, 10 fp32 + 194 ALQ epochs, 50k/10k split",
            config="configs/mnist_lenet5.py",
            mnist=True,
            overrides=(("validation_split", 10000), ("final_test", True)),
            rows=(
                Row("alq", "alq", label="alq (the config unchanged: pruning ratio 0.8 per round)"),
                # one step towards fewer bits; a checkpoint after every epoch, the last 72 kept, so that
                # the network of any post-training epoch (fixed bitwidth) can be selected on validation
                Row("alq_pr083", "alq", (("method_kwargs.prune_ratio", 0.83), ("checkpoint_every_epochs", 1),
                                         ("keep_checkpoints", 72)),
                    label="alq, pruning ratio 0.83 per round"),
            ),
            eval_split="validation",
            seeds=(0,),
            notes=("The official pipeline as `configs/mnist_lenet5.py:alq` sets it: 10 fp32 epochs, then 4 "
                   "rounds x [20 basis, 10 coordinate, 1 prune epoch], 50 STE and 20 coordinate epochs (194 "
                   "ALQ epochs of 390 steps), trained on 50,000 training images; accuracy per epoch on the "
                   "10,000 held out, the test split read once at the end (`--config.final_test`)."),
            papers=(_ALQ_README,),
        ),
        Table(
            name="tuned_resnet",
            title="Settings chosen on validation, test split — MNIST ResNet-20 at width 8, 5 epochs",
            config="configs/mnist_resnet20.py",
            mnist=True,
            overrides=(("num_epochs", 5), ("warmup_epochs", 0), ("model_kwargs", "{'width': 8}"),
                       ("layer_stats_every_steps", 468), ("checkpoint_every_epochs", 0)),
            rows=_TUNED_RESNET_ROWS,
            seeds=(0, 1, 2),
            notes=("All 60,000 training images, 5 epochs of batch 128 (2,340 steps), SGD-nesterov, cosine "
                   "lr 0.1 for every method; PTQ and HQ with zeros by per-step quantile, HLA-TQ without "
                   "its regularizer, as the ResNet-20 validation table chose; the test split is opened "
                   "for these rows only."),
        ),
    )
}


def row_command(table: Table, row: Row, seed: int, workdir: str, mnist_dir: str = MNIST_PLACEHOLDER,
                python: str = "python") -> list[str]:
    """The ``train.py`` command line of one run."""
    cmd = [python, "train.py", "--config", f"{table.config}:{row.method}", "--workdir", workdir]
    settings = [("seed", seed), ("progress_bar", False), ("tensorboard", False), *table.overrides,
                *row.overrides]
    if table.mnist:
        settings.append(("data_dir", mnist_dir))
    for key, value in settings:
        cmd.append(f"--config.{key}={value}")
    return cmd


def public_command(table: Table, row: Row, seed: int, workdir: str, cpu_devices: int) -> str:
    """The command of one run as the report prints it (the MNIST directory left as an env variable)."""
    cmd = shlex.join([*row_command(table, row, seed, workdir), f"--cpu_devices={cpu_devices}"])
    data_dir = f"--config.data_dir={MNIST_PLACEHOLDER}"
    return cmd.replace(shlex.quote(data_dir), data_dir)


def record_path(table: str, row: str, seed: int) -> str:
    return os.path.join(RECORDS, table, f"{row}-s{seed}.json")


# Figures that depend on the machine's load, not on the computation.
TIMINGS = ("train_seconds", "wall_seconds")


def condense(workdir: str) -> dict[str, Any]:
    """The parts of a finished run's ``metrics.jsonl`` the report uses."""
    with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    summaries = [r for r in rows if r["split"] == "summary"]
    if not summaries:
        raise RuntimeError(f"{workdir} has no summary row: the run did not finish.")
    per_layer = ("/cosine", "/sparsity", "/bits")
    layers = [
        {"step": r["step"],
         **{k: v for k, v in r.items() if k.endswith(per_layer) or k.startswith("quantizer/")}}
        for r in rows if r["split"] == "layers"
    ]
    evals = [{"step": r["step"], "epoch": r["epoch"], "accuracy": r["ternary_accuracy"]}
             for r in rows if r["split"] == "eval"]
    # each invocation of a run (stopped and resumed, or resumed finished for its final test) writes a
    # summary timing itself alone: the run's times are their sums
    summary = {**summaries[-1], **{k: sum(s.get(k, 0.0) for s in summaries) for k in TIMINGS}}
    return {"summary": summary, "evals": evals, "layers": layers}


def _compact(value: Any) -> Any:
    """`value` with floats rounded to 6 significant digits (records stay small in the repository)."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def write_record(rec: dict[str, Any], path: str) -> None:
    """Write one run's record: one JSON object per top-level key and layer row per line."""
    rec = _compact(rec)
    lines = []
    for key in sorted(rec):
        if key == "layers" and rec[key]:
            rows = ",\n  ".join(json.dumps(r, sort_keys=True) for r in rec[key])
            lines.append(f'"layers": [\n  {rows}\n]')
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(rec[key], sort_keys=True)}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")


def _train_row(
    table: Table, row: Row, seed: int, wd: str, mnist_dir: str, cpu_devices: int
) -> tuple[int, float]:
    """Train one row/seed in a fresh `wd`; returns ``(exit status, seconds)``."""
    shutil.rmtree(wd, ignore_errors=True)  # a fresh run, so the training time is the whole run's
    os.makedirs(wd)
    cmd = row_command(table, row, seed, wd, mnist_dir, sys.executable)
    cmd.append(f"--cpu_devices={cpu_devices}")
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    t0 = time.time()
    with open(os.path.join(wd, "log.txt"), "w", encoding="utf-8") as log:
        rc = subprocess.call(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    return rc, time.time() - t0


def run_one(table: Table, row: Row, seed: int, args: argparse.Namespace) -> str:
    """Train one row/seed and write its record; returns a one-line status."""
    out = record_path(table.name, row.name, seed)
    if os.path.exists(out) and not args.force:
        return f"skip {table.name}/{row.name}/s{seed} (record exists)"
    wd = os.path.join(args.workdir, table.name, f"{row.name}-s{seed}")
    rc, wall = _train_row(table, row, seed, wd, args.mnist_dir, args.cpu_devices)
    if rc != 0:
        return f"FAIL {table.name}/{row.name}/s{seed} (exit {rc}; see {wd}/log.txt)"
    rec = condense(wd)
    public_wd = f"runs/results/{table.name}/{row.name}-s{seed}"
    rec.update(
        table=table.name, row=row.name, method=row.method, seed=seed, process_seconds=wall,
        cpu_devices=args.cpu_devices, jobs=args.jobs,
        command=public_command(table, row, seed, public_wd, args.cpu_devices),
    )
    if os.path.exists(os.path.join(wd, "pretrain", "metrics.jsonl")):
        pre = condense(os.path.join(wd, "pretrain"))
        rec["pretrain"] = {"accuracy": pre["summary"].get("ternary_accuracy"),
                           "train_seconds": pre["summary"].get("train_seconds")}
    os.makedirs(os.path.dirname(out), exist_ok=True)
    write_record(rec, out)
    acc = rec["summary"].get("ternary_accuracy")
    return f"done {table.name}/{row.name}/s{seed}: acc {acc:.4f}, {wall:.0f} s"


def differences(recorded: Any, rerun: Any, where: str = "") -> list[str]:
    """Paths at which two condensed records differ (timings ignored)."""
    if isinstance(recorded, dict) and isinstance(rerun, dict):
        out = []
        for k in sorted(set(recorded) | set(rerun)):
            if k in TIMINGS:
                continue
            if k not in recorded or k not in rerun:
                out.append(f"{where}/{k} (only in the {'rerun' if k in rerun else 'record'})")
            else:
                out.extend(differences(recorded[k], rerun[k], f"{where}/{k}"))
        return out
    if isinstance(recorded, list) and isinstance(rerun, list):
        if len(recorded) != len(rerun):
            return [f"{where} ({len(recorded)} entries recorded, {len(rerun)} rerun)"]
        return [d for i, (a, b) in enumerate(zip(recorded, rerun, strict=True))
                for d in differences(a, b, f"{where}[{i}]")]
    return [] if recorded == rerun else [f"{where}: recorded {recorded!r}, rerun {rerun!r}"]


def verify_one(table: Table, row: Row, seed: int, args: argparse.Namespace) -> tuple[bool, str]:
    """Retrain a recorded row/seed with its command and compare; ``(identical, one-line status)``."""
    name = f"{table.name}/{row.name}/s{seed}"
    path = record_path(table.name, row.name, seed)
    if not os.path.exists(path):
        return False, f"MISSING {name}: no record to verify"
    with open(path, encoding="utf-8") as f:
        recorded = json.load(f)
    public_wd = f"runs/results/{table.name}/{row.name}-s{seed}"
    if recorded["command"] != public_command(table, row, seed, public_wd, recorded["cpu_devices"]):
        return False, f"CHANGED {name}: the table's command is no longer the recorded one"
    wd = os.path.join(args.workdir, table.name, f"{row.name}-s{seed}")
    rc, wall = _train_row(table, row, seed, wd, args.mnist_dir, recorded["cpu_devices"])
    if rc != 0:
        return False, f"FAIL {name} (exit {rc}; see {wd}/log.txt)"
    rerun = _compact(condense(wd))
    diff = differences({k: recorded[k] for k in rerun}, rerun)
    added = [d for d in diff if d.endswith("(only in the rerun)")]  # fields the program reports since
    diff = [d for d in diff if d not in added]
    if diff:
        return False, f"DIFFERENT {name} ({len(diff)} figures): " + "; ".join(diff[:5])
    acc = rerun["summary"].get("ternary_accuracy")
    note = f"; new fields not in the record: {', '.join(d.split(' ')[0] for d in added)}" if added else ""
    return True, f"identical {name}: accuracy {acc}, every recorded figure as recorded ({wall:.0f} s){note}"


def _jobs(args: argparse.Namespace) -> list[tuple[Table, Row, int]]:
    jobs = []
    for tname in args.tables:
        table = TABLES[tname]
        if table.mnist and not args.mnist_dir:
            sys.exit(f"Table {tname!r} needs real MNIST: pass --mnist-dir (a directory of the four IDX "
                     "files) or set HQJAX_MNIST_DIR.")
        for row in table.rows:
            if args.rows and row.name not in args.rows:
                continue
            for seed in args.seeds:
                jobs.append((table, row, seed))
    return jobs


def cmd_verify(args: argparse.Namespace) -> int:
    ok = True
    for job in _jobs(args):
        same, status = verify_one(*job, args)
        ok &= same
        print(status, flush=True)
    return 0 if ok else 1


def cmd_run(args: argparse.Namespace) -> None:
    jobs = _jobs(args)
    # seed by seed, so an interrupted sweep leaves whole tables of fewer seeds; within a seed the longest
    # first (ALQ rows train for many more epochs), so the parallel workers finish together
    jobs.sort(key=lambda j: (j[2], j[1].method != "alq"))
    print(f"{len(jobs)} runs, {args.jobs} at a time", flush=True)
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for status in pool.map(lambda j: run_one(*j, args), jobs):
            print(status, flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train the runs that have no record yet")
    r.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    r.add_argument("--rows", nargs="*", default=[], help="only these rows (default: all)")
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    r.add_argument("--mnist-dir", default=os.environ.get("HQJAX_MNIST_DIR", ""))
    r.add_argument("--workdir", default=os.path.join(ROOT, "runs", "results"))
    r.add_argument("--jobs", type=int, default=1, help="runs trained at the same time")
    r.add_argument("--cpu-devices", type=int, default=0,
                   help="virtual CPU devices per run (0: one per core divided among the jobs)")
    r.add_argument("--force", action="store_true", help="retrain rows that have a record")
    v = sub.add_parser("verify", help="retrain recorded runs and check every figure is unchanged")
    v.add_argument("--tables", nargs="+", default=["digits"], choices=list(TABLES))
    v.add_argument("--rows", nargs="*", default=[], help="only these rows (default: all)")
    v.add_argument("--seeds", nargs="+", type=int, default=[0])
    v.add_argument("--mnist-dir", default=os.environ.get("HQJAX_MNIST_DIR", ""))
    v.add_argument("--workdir", default=os.path.join(ROOT, "runs", "verify"))
    rep = sub.add_parser("report", help="write docs/results.md and the plots from the records")
    rep.add_argument("--out", default=os.path.join(ROOT, "docs"))
    args = p.parse_args(argv)
    if args.command == "run":
        if args.jobs < 1:
            p.error("--jobs must be >= 1")
        if not args.cpu_devices:
            args.cpu_devices = max(1, (os.cpu_count() or 1) // args.jobs)
        cmd_run(args)
    elif args.command == "verify":
        sys.exit(cmd_verify(args))
    else:
        from bench.results_report import write_report  # matplotlib only for the report

        write_report(TABLES, RECORDS, args.out)


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
