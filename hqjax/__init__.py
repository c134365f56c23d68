"""hqjax: ternary and multi-bit neural networks in JAX.

Pure quantization ops live in `hqjax.ops`; every public op is also re-exported here so that
``import hqjax`` gives the whole flat API.
"""

__version__ = "0.1.0"
