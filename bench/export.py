"""Packed export of really trained networks: coded size against the entropy bound, per method.

Run by hand::

    HQJAX_MNIST_DIR=PATH/TO/mnist .venv/bin/python bench/export.py          # LeNet-5 on MNIST (IDX files)
    .venv/bin/python bench/export.py                                         # ResNet-20 on embedded digits
    .venv/bin/python bench/export.py --methods hq,ttq --epochs 3 --max-steps 0
    .venv/bin/python bench/export.py --runs runs/lenet5_hq runs/lenet5_ptq   # export existing runs only

For every method it trains a run with `hqjax.train.loop.train_and_evaluate` (the config of
``configs/mnist_lenet5.py`` or ``configs/default.py``; one epoch of MNIST or 15 of digits, the schedules
spanning them, stopped after ``--max-steps`` steps; 1-2 minutes per method on 2 CPU cores, mostly
compilation), exports its final checkpoint exactly as ``python -m hqjax.export --workdir RUN`` does,
checks that the packed model's logits equal the run's ternary evaluation, and prints one row per run:

* fp32, dense 2-bit (+ side data), entropy bound (+ side data), entropy-coded (+ side data) and the file,
  in bytes; side data = per-unit scales, biases, BatchNorm parameters and running statistics (fp32);
* ``c/H codes``: ANS-coded codes / their entropy bound (per-layer i.i.d. model); ``c/H +side``: the same
  with the side data added to both;
* the same ratio for general-purpose compressors applied to the dense 2-bit codes (zlib -9, bz2 -9,
  xz/lzma -9e; zstd -22 when the ``zstandard`` package is installed), the alternative to a real entropy
  coder.

Measured (LeNet-5, one MNIST epoch per method, ``--methods hq,ptq,hla_tq,twn,ttq --max-steps 0``; 4 % to
70 % zeros): ANS 1.0002-1.0003x the bound, zstd -22 1.008-1.017x, xz 1.030-1.044x, zlib 1.013-1.125x,
bz2 1.013-1.158x; logits exact for all five. On i.i.d. symmetric codes (2 M weights) at 90 % zeros, the
sparsity of the papers' 939 KB ResNet-18: ANS 1.0000x, zstd 1.054x, xz 1.092x, zlib 1.249x, bz2 1.275x.
A general-purpose compressor misses 1.02x exactly where the papers' sizes are.
"""

from __future__ import annotations

import argparse
import bz2
import lzma
import os
import sys
import tempfile
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _compressors() -> dict:
    out = {
        "zlib": lambda b: len(zlib.compress(b, 9)),
        "bz2": lambda b: len(bz2.compress(b, 9)),
        "xz": lambda b: len(lzma.compress(b, preset=9 | lzma.PRESET_EXTREME)),
    }
    try:
        import zstandard

        out["zstd"] = lambda b: len(zstandard.ZstdCompressor(level=22).compress(b))
    except ImportError:
        pass
    return out


def _dense_codes(path: str) -> bytes:
    """The dense 2-bit codes of every ternary tensor of a packed file, concatenated."""
    from hqjax.export import pack as pk
    from hqjax.export import read_packed

    packed = read_packed(path)
    blocks = []
    for rec in packed.header["tensors"]:
        if rec["kind"] != "ternary":
            continue
        node = packed.variables
        for k in rec["path"]:
            node = node[k]
        blocks.append(pk.pack_dense2(pk.ternary_split(node, rec["axis"]).codes))
    return b"".join(blocks)


def _config(method: str, epochs: int | None, max_steps: int):
    mnist = os.environ.get("HQJAX_MNIST_DIR")
    if mnist:
        from configs.mnist_lenet5 import get_config

        c = get_config(method)
        c.data_dir = mnist
        c.eval_batch_size = 1000
    else:
        from configs.default import get_config

        c = get_config(method)
    c.num_epochs = epochs or (1 if mnist else 15)
    c.warmup_epochs = 0
    c.max_steps = max_steps
    c.progress_bar = False
    c.tensorboard = False
    c.async_checkpoints = False
    c.bn_recalibration_batches = 5
    return c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="hq,hla_tq,ttq", help="any of fp,twn,ttq,ptq,hq,hla_tq")
    parser.add_argument("--epochs", type=int, default=None, help="default: 1 (MNIST), 15 (digits)")
    parser.add_argument("--max-steps", type=int, default=250, help="0: train all epochs")
    parser.add_argument("--runs", nargs="*", default=None, help="export these run directories, train nothing")
    parser.add_argument("--keep", default=None, help="directory for the runs and files (default: temporary)")
    args = parser.parse_args()

    from hqjax.train.parallel import cpu_device_flags

    os.environ["XLA_FLAGS"] = cpu_device_flags(None)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from absl import logging

    logging.set_verbosity(logging.ERROR)
    from hqjax.train.artifacts import check_round_trip, export_run
    from hqjax.train.loop import train_and_evaluate

    folder = args.keep or tempfile.mkdtemp(prefix="hqjax-bench-export-")
    runs = []
    if args.runs:
        runs = [(os.path.basename(os.path.normpath(r)), r, None) for r in args.runs]
    else:
        for method in args.methods.split(","):
            workdir = os.path.join(folder, method)
            t0 = time.time()
            summary = train_and_evaluate(_config(method, args.epochs, args.max_steps), workdir)
            runs.append((method, workdir, (summary["ternary_accuracy"], time.time() - t0)))

    comps = _compressors()
    rows = []
    for label, workdir, trained in runs:
        out = os.path.join(folder, f"{label}.hqx")
        run, r = export_run(workdir, out)
        diff = check_round_trip(run, out)
        codes = _dense_codes(out)
        bound = r.entropy_code_bytes
        rows.append((f"{run.config.model}/{run.config.method}", run.step, trained, r, diff,
                     {k: f(codes) / bound if bound else float("nan") for k, f in comps.items()}))
        title = f"{label}: {run.config.model} {run.config.method}, step {run.step}"
        print(f"\n== {title} ==\n{r.table()}", flush=True)

    names = list(comps)
    head = (f"{'model/method':<18}{'step':>6}{'acc':>7}{'zeros':>7}{'fp32 B':>11}{'2-bit+side':>12}"
            f"{'bound+side':>12}{'coded+side':>12}{'file B':>11}{'c/H codes':>10}{'c/H +side':>10}"
            + "".join(f"{n + '/H':>8}" for n in names) + f"{'logits':>9}")
    print("\n" + head + "\n" + "-" * len(head))
    for name, step, trained, r, diff, ratios in rows:
        acc = f"{trained[0]:>7.4f}" if trained else f"{'-':>7}"
        print(
            f"{name:<18}{step:>6}{acc}{r.sparsity:>7.3f}{r.fp32_bytes:>11,}{r.dense2_bytes:>12,}"
            f"{r.entropy_bytes:>12,.0f}{r.coded_bytes:>12,}{r.file_bytes:>11,}{r.code_ratio:>10.4f}"
            f"{r.model_ratio:>10.4f}" + "".join(f"{ratios[n]:>8.3f}" for n in names)
            + f"{'exact' if diff == 0.0 else f'{diff:.1e}':>9}"
        )
    print(f"\nfiles and runs in {folder}")


if __name__ == "__main__":
    main()
