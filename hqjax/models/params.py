"""Counting the parameters of a Flax variables tree."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax

__all__ = ["count_params"]


def _size(leaf: Any) -> int:
    return math.prod(getattr(leaf, "shape", ()))


def count_params(variables: Mapping[str, Any], include_batch_stats: bool = False) -> int:
    """Number of scalars in the ``params`` collection (plus ``batch_stats`` if asked).

    With the default ``include_batch_stats=False`` this is the torchvision count
    (``sum(p.numel() for p in model.parameters())``): conv kernels, BatchNorm scale and bias,
    dense kernels and biases; the BatchNorm running mean and variance are buffers there and
    ``batch_stats`` here. Works on concrete arrays and on the `jax.ShapeDtypeStruct` tree of
    ``jax.eval_shape(model.init, ...)``, so big models can be counted without computing anything.

    Args:
        variables: the dict returned by ``model.init`` (collections at the top level).
        include_batch_stats: also count the ``batch_stats`` collection.

    Returns:
        The number of scalars.

    Raises:
        ValueError: if `variables` has no ``params`` collection (e.g. a bare params tree was
            passed; wrap it as ``{'params': params}``).
    """
    if not isinstance(variables, Mapping) or "params" not in variables:
        keys = list(variables) if isinstance(variables, Mapping) else type(variables).__name__
        raise ValueError(
            "count_params expects the variables dict of `model.init` with a 'params' collection "
            f"(wrap a bare params tree as {{'params': params}}); got top-level keys {keys}."
        )
    collections = ["params"] + (["batch_stats"] if include_batch_stats else [])
    return sum(
        _size(leaf)
        for name in collections
        for leaf in jax.tree_util.tree_leaves(variables.get(name, {}))
    )
