"""Helpers shared by the transforms: selection resolution, per-leaf maps, abstract init, checks."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hqjax._checks import check_int, is_concrete, normalize_axis  # noqa: F401 - check_int re-exported
from hqjax.selection import Selection, leaf_paths, path_str, unbox


def as_selection(selection: Selection | None) -> Selection:
    """`selection`, or the default `Selection()`; anything else is a clear error."""
    if selection is None:
        return Selection()
    if not isinstance(selection, Selection):
        raise ValueError(
            "`selection` must be a hqjax.Selection (or None for the default), "
            f"got {type(selection).__name__}."
        )
    return selection


def selected_tree(params: Any, selection: Selection) -> Any:
    """Tree of Python bools shaped like (unboxed) `params`: True on quantized leaves."""
    return selection.mask(params)


def check_axis(axis: Any, params: Any, paths: tuple[str, ...]) -> None:
    """Validate the unit axis against every selected leaf (ValueError naming the leaf)."""
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, (int, np.integer))):
        raise ValueError(
            f"`axis` must be a Python int or None, got {axis!r}. Under optax.inject_hyperparams, list it in "
            "`static_args` (see hqjax.static_args)."
        )
    by_path = dict(leaf_paths(params))
    for p in paths:
        ndim = len(by_path[p].shape)
        try:
            normalize_axis(axis, ndim)
        except ValueError as e:
            raise ValueError(f"Leaf {p!r} (rank {ndim}): {e}") from None


def is_abstract(params: Any) -> bool:
    """True when some leaf is a `jax.ShapeDtypeStruct` (init called on abstract params)."""
    return any(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(unbox(params)))


def abstract_safe(init: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap an ``init``: NNX boxes removed, jitted (one compilation instead of many eager op dispatches),
    and ShapeDtypeStruct params give an abstract (ShapeDtypeStruct) state."""
    jitted = jax.jit(init)

    def wrapped(params: Any) -> Any:
        params = unbox(params)
        if is_abstract(params):
            return jax.eval_shape(init, params)
        return jitted(params)

    return wrapped


def map_selected(
    fn: Callable[..., Any], sel: Any, params: Any, *trees: Any, other: Callable[..., Any]
) -> Any:
    """``fn(leaf, *others)`` on selected leaves, ``other(leaf, *others)`` elsewhere (tree of `params`)."""
    return jax.tree.map(lambda s, *xs: fn(*xs) if s else other(*xs), sel, params, *trees)


def per_leaf_state(fn: Callable[[jax.Array], Any], sel: Any, params: Any) -> Any:
    """A tree shaped like `params` with ``fn(leaf)`` on selected leaves and None elsewhere."""
    return jax.tree.map(lambda s, x: fn(x) if s else None, sel, params)


def concrete_float(value: Any) -> float | None:
    """`value` as a Python float when it is concrete, else None."""
    if callable(value) or not is_concrete(value):
        return None
    return float(np.asarray(value))


def zeros_count() -> jax.Array:
    return jnp.zeros([], jnp.int32)


def scaled_paths(paths: tuple[str, ...], rules: tuple[str, ...]) -> tuple[str, ...]:
    """The quantized paths matched by the `scaled` rules; a rule matching none of them is an error."""
    chosen = set()
    for rule in rules:
        hits = {p for p in paths if re.search(rule, p)}
        if not hits:
            raise ValueError(f"`scaled` rule {rule!r} matches none of the quantized leaves {paths}.")
        chosen |= hits
    return tuple(p for p in paths if p in chosen)


def scaled_tree(params: Any, rules: tuple[str, ...]) -> Any:
    """Tree of Python bools shaped like `params`: True where a `scaled` rule matches the path."""
    return jax.tree_util.tree_map_with_path(
        lambda p, _: any(re.search(r, path_str(p)) for r in rules), unbox(params)
    )


def unsharded_call(fn: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    """``fn(x)`` computed on a replicated copy of `x` when `x` carries an explicit sharding.

    Under explicit mesh axes (sharding in types) some ops cannot resolve an output sharding (e.g. the
    scatter inside `hqjax.ops.magnitude_mask`). Such inputs are resharded to replicated, and the result
    back to the input's partition spec; with replicated or auto-sharded inputs `fn` runs unchanged.
    """
    spec = getattr(getattr(jax.typeof(x), "sharding", None), "spec", None)
    if spec is None or all(s is None for s in spec):
        return fn(x)
    out = fn(jax.sharding.reshard(x, jax.sharding.PartitionSpec()))
    return jax.sharding.reshard(out, spec)
