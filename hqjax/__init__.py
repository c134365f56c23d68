"""hqjax: ternary and multi-bit neural networks in JAX.

Pure quantization ops live in `hqjax.ops`; every public op is also re-exported here so that
``import hqjax`` gives the whole flat API.
"""

from hqjax import ops
from hqjax.ops import *  # noqa: F403
from hqjax.ops import __all__ as _ops_all

__version__ = "0.1.0"

__all__ = ["ops", *_ops_all]
