"""Packed export of ternary (and multi-bit) models: one file, a fraction of a bit per weight.

* ``hqjax.export(params, opt_state, path, batch_stats=..., model='resnet20')`` writes the weights of the
  ternary forward pass: ternary codes (entropy-coded with ANS, or dense at 2 bits per weight) and one
  float32 magnitude per unit, BatchNorm parameters, running statistics and biases in float32. For an ALQ
  (multi-bit) optimizer state, the bitplanes of the live basis slots, the live-slot masks and float32
  alphas instead of ternary codes. The module itself is callable: ``hqjax.export(...)`` is
  `hqjax.export.export`.
* ``hqjax.load_packed(path)`` returns ``{'params': ..., 'batch_stats': ...}`` for
  ``model.apply(variables, x, train=False)``, with logits identical to the training-time ternary
  evaluation. `load_model` also builds the registry model the file records.
* ``hqjax.size_report(params, opt_state)``: fp32, dense 2-bit (ALQ: its storage of spec 1.6), entropy
  bound and coded sizes, per layer and in total (`SizeReport.table`).
* ``python -m hqjax.export --workdir RUN --out FILE`` exports a training run's newest checkpoint and prints
  the size table.

Modules: `pack` (codes, scales, bitplanes), `format` (the container: magic, version, header, payload,
SHA-256), `size` (accounting), `packed` (the API), `run` (export from a run directory).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from hqjax.export.format import (
    FORMAT_VERSION,
    ChecksumError,
    FormatVersionError,
    ModelMismatchError,
    NotPackedFileError,
    PackedFormatError,
    TruncatedFileError,
)
from hqjax.export.pack import MultiBitLayer, NotTernaryError, multibit_groups, multibit_groups_jax
from hqjax.export.packed import (
    CODERS,
    PackedModel,
    export,
    export_variables,
    forward_variables,
    load_model,
    load_packed,
    pack_variables,
    read_packed,
    size_report,
)
from hqjax.export.size import MB, SizeReport, TensorSize

__all__ = [
    "CODERS",
    "FORMAT_VERSION",
    "MB",
    "ChecksumError",
    "FormatVersionError",
    "ModelMismatchError",
    "MultiBitLayer",
    "NotPackedFileError",
    "NotTernaryError",
    "PackedFormatError",
    "PackedModel",
    "SizeReport",
    "TensorSize",
    "TruncatedFileError",
    "export",
    "export_variables",
    "forward_variables",
    "load_model",
    "load_packed",
    "multibit_groups",
    "multibit_groups_jax",
    "pack_variables",
    "read_packed",
    "size_report",
]


class _CallableModule(types.ModuleType):
    """Lets ``hqjax.export(...)`` call `export` while ``hqjax.export.load_packed`` etc. stay reachable."""

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
