"""Packed export of ternary (and multi-bit) models: one file, a fraction of a bit per weight.

* ``hqjax.export_packed(params, opt_state, path, batch_stats=..., model='resnet20')`` writes the weights
  of the ternary forward pass: ternary codes (entropy-coded with ANS, or dense at 2 bits per weight) and one
  float32 magnitude per unit, BatchNorm parameters, running statistics and biases in float32. For an ALQ
  (multi-bit) optimizer state, the bitplanes of the live basis slots, the live-slot masks and float32
  alphas instead of ternary codes. (Calling the package, ``hqjax.export(...)``, still works and warns:
  it is deprecated in favour of ``hqjax.export_packed``.)
* ``hqjax.load_packed(path)`` returns ``{'params': ..., 'batch_stats': ...}`` for
  ``model.apply(variables, x, train=False)``, with logits identical to the training-time ternary
  evaluation. `load_model` also builds the registry model the file records.
* ``hqjax.size_report(params, opt_state)``: fp32, dense 2-bit (ALQ: its storage of spec 1.6), entropy
  bound and coded sizes, per layer and in total (`SizeReport.table`).
* ``python -m hqjax.export --workdir RUN --out FILE`` exports a training run's newest checkpoint and prints
  the size table (the command lives on the training side, `hqjax.train.artifacts`).

Modules: `pack` (codes, scales, bitplanes), `format` (the container: magic, version, header, payload,
SHA-256), `size` (accounting), `packed` (the API). The package is a codec: it depends on numpy, the model
registry and the quantizer states, never on the training program.
"""

from __future__ import annotations

import sys
import types
import warnings
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
    export_packed,
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
    "export_packed",
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
    """Lets the deprecated ``hqjax.export(...)`` call `export_packed` while ``hqjax.export.load_packed``
    etc. stay reachable."""

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        warnings.warn(
            "Calling the package hqjax.export(...) is deprecated; call hqjax.export_packed(...) (the same "
            "function) instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return export_packed(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
