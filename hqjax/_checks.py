"""Argument validation for the whole package: every error names the argument, shows the value and says
what is allowed.

Plain Python only: this module imports neither jax nor NumPy (NumPy scalars are accepted through the
`numbers` ABCs; arrays are read with the NumPy that made them). Checks only run on concrete values
(Python numbers, NumPy arrays, concrete jax arrays). Traced values inside `jax.jit` cannot be inspected
without a host round trip; the ops are written so that such values give a defined result (clipped where
a range applies) instead of NaN.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Iterable
from typing import Any

STATIC_ARGS_HINT = "Under optax.inject_hyperparams, list it in `static_args` (see hqjax.static_args)."


def is_concrete(x: Any) -> bool:
    """True when `x` holds a value that can be read on the host now (not a jax tracer).

    Without jax loaded nothing can be a tracer, so this never imports it.
    """
    jax = sys.modules.get("jax")
    return jax is None or not isinstance(x, jax.core.Tracer)


def _is_int(value: Any) -> bool:
    """A Python or NumPy integer, not a bool (NumPy integers register as `numbers.Integral`)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _bounds(minimum: int, maximum: int | None, below: int | None) -> str:
    if maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if below is not None:
        return f" in [{minimum}, {below})"
    return f" >= {minimum}"


def check_int(
    value: Any,
    name: str,
    *,
    minimum: int = 0,
    maximum: int | None = None,
    below: int | None = None,
    allow_none: bool = False,
    quote: bool = True,
    hint: str | None = STATIC_ARGS_HINT,
) -> int | None:
    """Return `value` as a Python int if it is an int ``>= minimum`` (and ``<= maximum`` or ``< below``),
    None if it is None and `allow_none`; else raise `ValueError`.

    Args:
      value: the argument.
      name: its name, written in backticks (``quote=True``) or as is (``batch_size must be >= 1``).
      minimum: smallest allowed value.
      maximum, below: optional inclusive / exclusive upper bound (at most one).
      allow_none: None is allowed (and returned).
      quote: write `name` in backticks.
      hint: a sentence appended to the message (default: how to keep the value static under
        `optax.inject_hyperparams`); None for none.

    Examples:
      >>> check_int(3, "n", minimum=1)
      3
      >>> check_int(2, "shard_index", below=2, quote=False, hint=None)
      Traceback (most recent call last):
      ...
      ValueError: shard_index must be in [0, 2), got 2.
    """
    if maximum is not None and below is not None:
        raise TypeError("check_int takes `maximum` or `below`, not both.")
    if value is None and allow_none:
        return None
    label = f"`{name}`" if quote else name
    bounds = _bounds(minimum, maximum, below)
    tail = f" {hint}" if hint else ""
    if not _is_int(value):
        raise ValueError(f"{label} must be an int{bounds}, got {value!r}.{tail}")
    too_big = (maximum is not None and value > maximum) or (below is not None and value >= below)
    if value < minimum or too_big:
        raise ValueError(f"{label} must be{bounds}, got {value!r}.{tail}")
    return int(value)


def _floats(value: Any, name: str) -> tuple[list[float], int]:
    """The elements of a number, a (nested) list/tuple or an array as floats, and whether it was one
    number (1) or a collection (its element count)."""
    if isinstance(value, numbers.Real):
        return [float(value)], 1
    np = sys.modules.get("numpy")  # an array exists only when NumPy is loaded; never import it here
    try:
        if np is not None:
            flat = np.asarray(value, dtype=np.float64).reshape(-1).tolist()
        elif isinstance(value, (list, tuple)):
            flat = [x for v in value for x in _floats(v, name)[0]]
        else:
            raise TypeError
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number or an array of numbers, got {value!r}.") from None
    return flat, len(flat)


def check_fraction(value: Any, name: str, *, allow_one: bool = False) -> None:
    """Raise `ValueError` unless every element of a concrete `value` lies in [0, 1) (or [0, 1])."""
    if not is_concrete(value):
        return
    flat, _ = _floats(value, name)
    if not all(math.isfinite(v) and 0.0 <= v and (v <= 1.0 if allow_one else v < 1.0) for v in flat):
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(
            f"`{name}` must lie in {interval}, got {value!r}. "
            f"It is a fraction of weights; e.g. {name}=0.5 zeroes half of them."
        )


def check_positive(value: Any, name: str, *, allow_zero: bool = False, scalar: bool = False) -> None:
    """Raise `ValueError` unless every element of a concrete `value` is finite and > 0 (or >= 0); with
    `scalar`, `value` must also hold exactly one number."""
    if not is_concrete(value):
        return
    flat, size = _floats(value, name)
    ok = all(math.isfinite(v) and (v >= 0.0 if allow_zero else v > 0.0) for v in flat)
    if not ok or (scalar and size != 1):
        what = "a finite scalar" if scalar else "finite and"
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be {what} {bound}, got {value!r}.")


def check_choice(value: Any, choices: Iterable[Any], name: str) -> Any:
    """Return `value` if it is one of `choices`, else raise `ValueError` listing them.

    Examples:
      >>> check_choice("max", ("peak", "mean"), "normalization")
      Traceback (most recent call last):
      ...
      ValueError: Unknown normalization='max'; valid values are 'peak', 'mean'.
    """
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"Unknown {name}={value!r}; valid values are {', '.join(map(repr, choices))}.")
    return value


def normalize_axis(axis: int | None, ndim: int, name: str = "axis") -> int | None:
    """Return `axis` as a non-negative index into an array of rank `ndim` (None stays None)."""
    if axis is None:
        return None
    if not _is_int(axis):
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
