"""Which leaves of a parameter tree are quantized: regex rules over tree paths.

Works on any parameter pytree: Flax Linen ``params`` dicts, Flax NNX ``State`` (with or without
``nnx.Variable`` boxes), plain nested dicts/lists. A leaf's *path* is its tree path written with ``/``
between keys, e.g. ``'Conv_0/kernel'`` or ``'stage1_block0/conv1/kernel'``; NNX's ``.value`` attribute
of a Variable is left out, so Linen and NNX give the same paths for the same layer names.

Defaults (spec section 8 items 8-9): every leaf named ``kernel`` with ``ndim >= 2`` (conv and dense
kernels) is quantized; BatchNorm parameters, biases and everything else stay full precision; the first and
the last layer are quantized too (switch them off with ``quantize_first=False`` / ``quantize_last=False``).

How "first" and "last" are determined: among the leaves the include/exclude rules select, the first and
last in *natural path order* (paths compared key by key, runs of digits as numbers, so ``Dense_2`` comes
before ``Dense_10`` and ``layers/2`` before ``layers/10``), unless a `first` / `last` regex names them.
Path order equals the order of execution for the usual auto-named models (``Conv_0, Conv_1, Dense_0``),
but not for every model: in `hqjax.models` ResNets the classifier ``head`` sorts before ``stage*``, so
there pass ``last='head'`` (and ``first='conv_init'`` for clarity). The order is a property of the tree,
never of dict insertion order, so it does not change when the tree is rebuilt by a tree map or restored
from a checkpoint.

Every rule must match at least one leaf, otherwise `ValueError` (a typo never silently quantizes
nothing).
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Sequence
from typing import Any

import jax

__all__ = [
    "DEFAULT_INCLUDE",
    "Selection",
    "as_rules",
    "leaf_paths",
    "path_str",
    "select",
    "selected_paths",
    "unbox",
]

DEFAULT_INCLUDE = (r"(^|/)kernel$",)


def unbox(tree: Any) -> Any:
    """Replace Flax NNX ``Variable`` boxes in `tree` by their values (other trees are returned as is).

    Examples:
      >>> unbox({'w': 1.0})
      {'w': 1.0}
    """
    nnx = sys.modules.get("flax.nnx")
    if nnx is None:  # no NNX Variable can exist if flax.nnx was never imported
        return tree
    is_var = lambda x: isinstance(x, nnx.Variable)
    if not any(is_var(x) for x in jax.tree.leaves(tree, is_leaf=is_var)):
        return tree
    return jax.tree.map(lambda x: x.get_value() if is_var(x) else x, tree, is_leaf=is_var)


def _key_name(key: Any) -> str | None:
    if isinstance(key, jax.tree_util.DictKey):
        return str(key.key)
    if isinstance(key, jax.tree_util.GetAttrKey):
        return None if key.name == "value" else key.name
    if isinstance(key, jax.tree_util.SequenceKey):
        return str(key.idx)
    if isinstance(key, jax.tree_util.FlattenedIndexKey):
        return str(key.key)
    return str(key)


def path_str(path: Sequence[Any]) -> str:
    """A tree path (as from `jax.tree_util.tree_flatten_with_path`) written as ``'a/b/kernel'``.

    Examples:
      >>> path_str(jax.tree_util.tree_flatten_with_path({'Dense_0': {'kernel': 1}})[0][0][0])
      'Dense_0/kernel'
    """
    return "/".join(n for n in (_key_name(k) for k in path) if n is not None)


def leaf_paths(params: Any) -> list[tuple[str, Any]]:
    """``(path, leaf)`` pairs of `params` in tree-flatten order (NNX boxes removed)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(unbox(params))
    return [(path_str(p), x) for p, x in flat]


def _natural_key(path: str) -> tuple:
    parts = []
    for comp in path.split("/"):
        tokens = [t for t in re.split(r"(\d+)", comp) if t]
        parts.append(tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in tokens))
    return tuple(parts)


def as_rules(value: Any, name: str) -> tuple[str, ...]:
    """`value` (None, one regex string or an iterable of them) as a tuple of rules; `ValueError` naming
    `name` for a non-string or an invalid regular expression."""
    if value is None:
        return ()
    rules = (value,) if isinstance(value, str) else tuple(value)
    for r in rules:
        if not isinstance(r, str):
            raise ValueError(f"`{name}` rules must be regex strings, got {r!r}.")
        try:
            re.compile(r)
        except re.error as e:
            raise ValueError(f"`{name}` rule {r!r} is not a valid regular expression: {e}.") from None
    return rules


@dataclasses.dataclass(frozen=True)
class Selection:
    """Declarative choice of the quantized leaves (frozen, hashable: safe as static configuration).

    Attributes:
      include: regexes; a leaf is a candidate when one of them matches its path (`re.search`).
        Default: ``(r'(^|/)kernel$',)``, the conv and dense kernels of Flax layers.
      exclude: regexes; a matching leaf is never quantized (e.g. ``r'^head/'``).
      min_ndim: candidates must have at least this many dimensions (default 2: never a bias/scale).
      quantize_first: quantize the first selected layer (default True, spec section 8 item 8).
      quantize_last: quantize the last selected layer (default True).
      first: regex naming the first layer's leaves; default: the first candidate in natural path order.
      last: regex naming the last layer's leaves; default: the last candidate in natural path order.

    Every rule (include, exclude, first, last) must match at least one leaf, else `ValueError`.

    Examples:
      >>> params = {'Dense_0': {'kernel': jnp.ones((4, 3)), 'bias': jnp.ones(3)},
      ...           'Dense_1': {'kernel': jnp.ones((3, 2)), 'bias': jnp.ones(2)}}
      >>> Selection().paths(params)
      ('Dense_0/kernel', 'Dense_1/kernel')
      >>> Selection(quantize_last=False).paths(params)
      ('Dense_0/kernel',)
    """

    include: tuple[str, ...] = DEFAULT_INCLUDE
    exclude: tuple[str, ...] = ()
    min_ndim: int = 2
    quantize_first: bool = True
    quantize_last: bool = True
    first: str | None = None
    last: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "include", as_rules(self.include, "include"))
        object.__setattr__(self, "exclude", as_rules(self.exclude, "exclude"))
        for name in ("first", "last"):
            value = getattr(self, name)
            if value is not None:
                as_rules(value, name)
                if not isinstance(value, str):
                    raise ValueError(f"`{name}` must be one regex string or None, got {value!r}.")
        if not self.include:
            raise ValueError("`include` needs at least one rule; use the default to quantize all kernels.")
        if isinstance(self.min_ndim, bool) or not isinstance(self.min_ndim, int) or self.min_ndim < 0:
            raise ValueError(f"`min_ndim` must be a non-negative int, got {self.min_ndim!r}.")

    def paths(self, params: Any) -> tuple[str, ...]:
        """The paths of the quantized leaves of `params`, in natural path order.

        Raises:
          ValueError: a rule matches no leaf, or nothing is left to quantize.
        """
        leaves = leaf_paths(params)
        all_paths = [p for p, _ in leaves]
        shown = ", ".join(repr(p) for p in all_paths[:12]) + (" ..." if len(all_paths) > 12 else "")
        for kind, rules in (("include", self.include), ("exclude", self.exclude)):
            for rule in rules:
                if not any(re.search(rule, p) for p in all_paths):
                    raise ValueError(
                        f"Selection {kind} rule {rule!r} matches no leaf of the parameter tree. "
                        f"Leaf paths are: {shown}. Fix the regex (it is matched with re.search)."
                    )
        cands = []
        for path, leaf in leaves:
            if not any(re.search(r, path) for r in self.include):
                continue
            if any(re.search(r, path) for r in self.exclude):
                continue
            ndim = len(getattr(leaf, "shape", ()))
            if ndim >= self.min_ndim:
                cands.append(path)
        if not cands:
            raise ValueError(
                f"No leaf is selected for quantization (include={self.include}, exclude={self.exclude}, "
                f"min_ndim={self.min_ndim}). Leaf paths are: {shown}."
            )
        cands.sort(key=_natural_key)
        drop = set()
        for name, rule, keep, default in (
            ("first", self.first, self.quantize_first, cands[0]),
            ("last", self.last, self.quantize_last, cands[-1]),
        ):
            if rule is None:
                named = {default}
            else:
                named = {p for p in cands if re.search(rule, p)}
                if not named:
                    raise ValueError(
                        f"Selection `{name}` rule {rule!r} matches none of the selected leaves {cands}."
                    )
            if not keep:
                drop |= named
        out = tuple(p for p in cands if p not in drop)
        if not out:
            raise ValueError(
                f"Keeping the first/last layer in full precision leaves nothing to quantize among {cands}."
            )
        return out

    def mask(self, params: Any) -> Any:
        """A tree of Python bools shaped like `params`: True on the quantized leaves.

        Usable as the ``mask`` of `optax.masked` or `optax.add_decayed_weights`.
        """
        chosen = set(self.paths(params))
        return jax.tree_util.tree_map_with_path(lambda p, _: path_str(p) in chosen, unbox(params))


def select(params: Any, selection: Selection | None = None) -> Any:
    """Tree of bools, True on the leaves `selection` (default `Selection()`) quantizes.

    Examples:
      >>> select({'Dense_0': {'kernel': jnp.ones((4, 3)), 'bias': jnp.ones(3)}})
      {'Dense_0': {'bias': False, 'kernel': True}}
    """
    return (selection or Selection()).mask(params)


def selected_paths(params: Any, selection: Selection | None = None) -> tuple[str, ...]:
    """The paths `selection` (default `Selection()`) quantizes, in natural path order."""
    return (selection or Selection()).paths(params)
