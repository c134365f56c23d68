"""Metrics as JSON lines and TensorBoard events, written by process 0 only."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np


def to_python(value: Any) -> Any:
    """A JSON-serialisable Python scalar (or list) from a number or array."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        v = arr.item()
        return None if isinstance(v, float) and not math.isfinite(v) else v
    return arr.tolist()


class MetricWriter:
    """Appends ``{"step": s, "split": ..., **metrics}`` to ``workdir/metrics.jsonl`` and TensorBoard.

    Only process 0 writes; on other processes every method is a no-op, so callers need no checks.

    Args:
      workdir: run directory; the writer creates ``metrics.jsonl`` and ``tensorboard/`` in it.
      tensorboard: also write TensorBoard event files (tensorboardX).
    """

    def __init__(self, workdir: str, *, tensorboard: bool = True) -> None:
        self._active = jax.process_index() == 0
        self._jsonl = None
        self._tb = None
        if not self._active:
            return
        os.makedirs(workdir, exist_ok=True)
        self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a", encoding="utf-8")  # noqa: SIM115
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def write(self, step: int, split: str, metrics: Mapping[str, Any]) -> None:
        """Record scalar `metrics` of `split` ('train', 'eval', 'layers', ...) at `step`."""
        if not self._active:
            return
        row = {"step": int(step), "split": split}
        row.update({k: to_python(v) for k, v in metrics.items()})
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            for k, v in row.items():
                if k not in ("step", "split") and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(f"{split}/{k}", v, int(step))

    def close(self) -> None:
        """Flush and close the files."""
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    """All rows of ``workdir/metrics.jsonl`` (for tests and reports)."""
    path = os.path.join(workdir, "metrics.jsonl")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
