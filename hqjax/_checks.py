"""Argument validation shared by the ops: every error names the argument and says how to fix it.

Checks only run on concrete values (Python numbers, NumPy arrays, concrete jax arrays). Traced values
inside `jax.jit` cannot be inspected without a host round trip; the ops are written so that such
values give a defined result (clipped where a range applies) instead of NaN.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x: Any) -> bool:
    """True when `x` holds a value that can be read on the host now (not a tracer)."""
    return not isinstance(x, jax.core.Tracer)


def check_int(value: Any, name: str, *, minimum: int = 0, allow_none: bool = False) -> None:
    """Raise `ValueError` unless `value` is a Python int >= `minimum` (or None when allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(
            f"`{name}` must be a Python int >= {minimum}, got {value!r}. Under optax.inject_hyperparams, "
            f"list it in `static_args` (see hqjax.static_args)."
        )


def check_fraction(value: Any, name: str, *, allow_one: bool = False) -> None:
    """Raise `ValueError` unless every element of a concrete `value` lies in [0, 1) (or [0, 1])."""
    if not is_concrete(value):
        return
    arr = np.asarray(value, dtype=np.float64)
    upper_ok = arr <= 1.0 if allow_one else arr < 1.0
    if not np.all(np.isfinite(arr)) or not np.all((arr >= 0.0) & upper_ok):
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(
            f"`{name}` must lie in {interval}, got {value!r}. "
            f"It is a fraction of weights; e.g. {name}=0.5 zeroes half of them."
        )


def check_positive(value: Any, name: str, *, allow_zero: bool = False) -> None:
    """Raise `ValueError` unless every element of a concrete `value` is > 0 (or >= 0)."""
    if not is_concrete(value):
        return
    arr = np.asarray(value, dtype=np.float64)
    ok = arr >= 0.0 if allow_zero else arr > 0.0
    if not np.all(np.isfinite(arr)) or not np.all(ok):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be finite and {bound}, got {value!r}.")


def check_choice(value: str, choices: Iterable[str], name: str) -> None:
    """Raise `ValueError` unless `value` is one of `choices`."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"Unknown {name}={value!r}; valid values are {', '.join(map(repr, choices))}.")


def normalize_axis(axis: int | None, ndim: int, name: str = "axis") -> int | None:
    """Return `axis` as a non-negative index into an array of rank `ndim` (None stays None)."""
    if axis is None:
        return None
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"`{name}` must be an int or None, got {axis!r}.")
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"`{name}`={axis} is out of range for an array of rank {ndim}; "
            f"use an index in [{-ndim}, {ndim - 1}] (the output-unit axis) or None (whole tensor)."
        )
    return int(axis) % ndim


def reduce_axes(ndim: int, axis: int | None, name: str = "axis") -> tuple[int, ...]:
    """The axes to reduce over to get one value per unit.

    `axis` is the *unit* axis (e.g. -1, the output channel of a Flax kernel): each index along it is
    one unit and statistics are taken over all other axes. `axis=None` makes the whole tensor one unit.
    """
    ax = normalize_axis(axis, ndim, name)
    if ax is None:
        return tuple(range(ndim))
    return tuple(i for i in range(ndim) if i != ax)


def compute_dtype(x: jax.Array) -> jnp.dtype:
    """float32 for half-precision (or integer) inputs, the input dtype otherwise."""
    dt = jnp.result_type(x)
    if not jnp.issubdtype(dt, jnp.floating) or jnp.finfo(dt).bits < 32:
        return jnp.dtype(jnp.float32)
    return dt


def output_dtype(x: jax.Array) -> jnp.dtype:
    """The dtype a weight-valued result is returned in: the input's floating dtype, else float32."""
    dt = jnp.result_type(x)
    return dt if jnp.issubdtype(dt, jnp.floating) else jnp.dtype(jnp.float32)
