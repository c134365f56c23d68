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

import os
import sys

if __name__ == "__main__":
    # The command is part of the training side (`hqjax.train.artifacts.main`, which restores a run);
    # the codec package itself never imports training. Export runs on the CPU unless told otherwise.
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from hqjax.train.artifacts import main

    sys.exit(main())
