"""Export a training run to one packed file and print its size table.

    python -m hqjax.export --workdir runs/default --out resnet20_hq.hqx
    python -m hqjax.export --workdir runs/lenet5 --out lenet5.hqx --coder dense2 --json sizes.json

Restores the newest readable checkpoint of ``--workdir`` (or ``--step``), writes the packed model
(``--coder ans``: entropy-coded ternary codes; ``dense2``: 2 bits per weight; ALQ runs: bitplanes of the
live slots, masks and alphas), checks that the packed model's logits equal the run's ternary (ALQ:
multi-bit) evaluation on a random batch (skip with ``--no-verify``) and prints the per-layer table:
fp32 bytes, dense 2-bit (ALQ: storage of spec 1.6, codes + alphas), entropy bound, coded bytes, bits per
weight (ALQ: average bitwidth), sparsity, totals in MB (10^6 bytes) and MiB with compression ratios.
Exit status 1 on any error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m hqjax.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, help="run directory written by train.py")
    parser.add_argument("--out", required=True, help="packed model file to write")
    parser.add_argument("--coder", default="ans", choices=("ans", "dense2"), help="code format (default ans)")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: newest)")
    parser.add_argument("--no-verify", action="store_true", help="skip the round-trip logits check")
    parser.add_argument("--json", default=None, help="also write the size totals to this JSON file")
    args = parser.parse_args(argv)

    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from hqjax.export.format import PackedFormatError
    from hqjax.export.run import check_round_trip, export_run

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
        what = "multi-bit" if cfg.method == "alq" else "ternary"
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
