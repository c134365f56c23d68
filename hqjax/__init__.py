"""hqjax: ternary and multi-bit neural networks in JAX.

Pure quantization ops live in `hqjax.ops`; every public op is also re-exported here so that
``import hqjax`` gives the whole flat API. The optax transformations live in `hqjax.transforms`, step
schedules in `hqjax.schedules`; the recipes (`hq`, `hla_tq`, `ptq`, `twn`, `ttq`, and ALQ's `alq`), leaf
selection, `forward_params` and `summarize` are re-exported here. The packed-file codec
(`hqjax.export`: `export_packed`, `load_packed`, `size_report`) is imported on first use.
"""

import importlib
from typing import TYPE_CHECKING, Any

from hqjax import ops, schedules, transforms
from hqjax.forward import (
    QUANTIZER_STATE_TYPES,
    find_quantizer_states,
    forward_params,
    latent_params,
    ternary_params,
)
from hqjax.methods import METHODS, alq, get_method, hla_tq, hq, ptq, static_args, ttq, twn
from hqjax.ops import *  # noqa: F403
from hqjax.ops import __all__ as _ops_all
from hqjax.selection import Selection, select, selected_paths
from hqjax.summary import entropy_bits, summarize, ternary_entropy_bits
from hqjax.transforms import QuantizerConfig, QuantizerState

if TYPE_CHECKING:  # imported lazily at run time (`__getattr__` below)
    from hqjax import export
    from hqjax.export import export_packed, load_packed, size_report

__version__ = "0.1.0"

__all__ = [
    "ops",
    "schedules",
    "transforms",
    *_ops_all,
    "METHODS",
    "alq",
    "QUANTIZER_STATE_TYPES",
    "QuantizerConfig",
    "QuantizerState",
    "Selection",
    "entropy_bits",
    "export",
    "export_packed",
    "find_quantizer_states",
    "forward_params",
    "get_method",
    "hla_tq",
    "hq",
    "latent_params",
    "load_packed",
    "ptq",
    "select",
    "selected_paths",
    "size_report",
    "static_args",
    "summarize",
    "ternary_entropy_bits",
    "ternary_params",
    "ttq",
    "twn",
]

_EXPORT_NAMES = ("export_packed", "load_packed", "size_report")


def __getattr__(name: str) -> Any:
    """Import the codec (`hqjax.export`) only when one of its names is first used."""
    if name == "export" or name in _EXPORT_NAMES:
        module = importlib.import_module("hqjax.export")
        return module if name == "export" else getattr(module, name)
    raise AttributeError(f"module 'hqjax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
