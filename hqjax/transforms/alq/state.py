"""The state of the ALQ optimizer (a pytree) and its readers: layouts, layers, reconstructions.

Every quantized weight tensor is split into groups (`hqjax.ops.alq.to_groups`); a group is
``sum_i m_i alpha_i b_i`` with binary bases ``b_i`` in {-1,+1}^n, coordinates ``alpha_i`` and alive
masks ``m_i`` (ALGORITHMS.md 1.1). The state holds, per quantized leaf, an `ALQLayer`; globally a step
counter, the next step's mode and a PRNG key (`ALQState`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hqjax.ops import alq as alq_ops
from hqjax.selection import leaf_paths, path_str, unbox
from hqjax.transforms.alq.schedule import PRUNE

__all__ = [
    "ALQConfig",
    "ALQLayer",
    "ALQState",
    "GroupRule",
    "alq_bn_frozen",
    "alq_layers",
    "alq_params",
    "alq_reconstruction",
    "find_alq_state",
]

GroupRule = tuple[str, str] | tuple[str, str, int] | tuple[str, str, int, int]
Layout = tuple[str, tuple[int, ...], str, int, int]


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class ALQConfig:
    """Static layout of the quantized leaves (no arrays; part of the treedef).

    Attributes:
      layouts: per quantized leaf ``(path, shape, structure, subc, num_bases)``, in natural path order.
    """

    layouts: tuple[Layout, ...]

    @property
    def selected(self) -> tuple[str, ...]:
        return tuple(p for p, *_ in self.layouts)

    def layout(self, path: str) -> tuple[tuple[int, ...], str, int, int]:
        for p, shape, structure, subc, num_bases in self.layouts:
            if p == path:
                return shape, structure, subc, num_bases
        raise KeyError(path)


class ALQLayer(NamedTuple):
    """ALQ state of one quantized leaf (G groups of n weights, I basis slots).

    Attributes:
      bases: int8 (G, I, n), +-1 on live slots, 0 on dead ones.
      alpha: float32 (G, I) coordinates (0 on dead slots).
      mask: bool (G, I) alive slots; a group's bitwidth is its number of live slots.
      w_fp: float32, leaf-shaped full-precision buffer (STE mode; with ``reproduce_official_quirks``
        it starts as the pretrained weights).
      mu, nu, nu_max: float32, leaf-shaped AMSGrad moments in the weight domain.
      mu_alpha, nu_alpha, nu_max_alpha: float32 (G, I) AMSGrad moments in the coordinate domain.
    """

    bases: jax.Array
    alpha: jax.Array
    mask: jax.Array
    w_fp: jax.Array
    mu: jax.Array
    nu: jax.Array
    nu_max: jax.Array
    mu_alpha: jax.Array
    nu_alpha: jax.Array
    nu_max_alpha: jax.Array


class ALQState(NamedTuple):
    """State of `alq_optimizer`.

    Attributes:
      config: static `ALQConfig`.
      count: int32 number of updates applied.
      mode: int32 mode of the *next* update (0 coordinate, 1 basis, 2 ste, 3 prune); a training step
        reads it to run BatchNorm in inference mode during pruning epochs (1.4 d).
      prev_mode: int32 mode of the last update (-1 before the first).
      basis_steps: int32 number of basis updates applied.
      learning_rate: float32 learning rate of the last update.
      key: uint32 PRNG key data (stochastic rounding of the per-layer candidate counts).
      layers: tree shaped like the params: `ALQLayer` on quantized leaves, None elsewhere.
      fp_state: state of the optimizer of the full-precision leaves.
    """

    config: ALQConfig
    count: jax.Array
    mode: jax.Array
    prev_mode: jax.Array
    basis_steps: jax.Array
    learning_rate: jax.Array
    key: jax.Array
    layers: Any
    fp_state: Any


def is_layer(x: Any) -> bool:
    """True for an `ALQLayer` (the ``is_leaf`` of tree maps over `ALQState.layers`)."""
    return isinstance(x, ALQLayer)


def find_alq_state(opt_state: Any) -> ALQState | None:
    """The one `ALQState` inside an optimizer state, or None (ValueError when there are several)."""
    is_s = lambda x: isinstance(x, ALQState)  # noqa: E731
    found = [x for x in jax.tree_util.tree_leaves(unbox(opt_state), is_leaf=is_s) if is_s(x)]
    if len(found) > 1:
        raise ValueError(f"Found {len(found)} ALQState in the optimizer state; at most one is allowed.")
    return found[0] if found else None


def layer_weights(layer: ALQLayer, shape: tuple[int, ...], structure: str, subc: int) -> jax.Array:
    """The leaf-shaped float32 weight ``sum_i m_i alpha_i b_i`` of each group (1.1)."""
    groups = alq_ops.reconstruct(layer.bases, layer.alpha, layer.mask)
    return alq_ops.from_groups(groups, shape, structure, subc)


def alq_layers(state: ALQState) -> dict[str, ALQLayer]:
    """``{path: ALQLayer}`` of every quantized leaf of an `ALQState`."""
    leaves = jax.tree_util.tree_flatten_with_path(state.layers, is_leaf=is_layer)[0]
    return {path_str(p): x for p, x in leaves if is_layer(x)}


def alq_reconstruction(state: ALQState) -> dict[str, jax.Array]:
    """``{path: reconstructed float32 weight}`` of every quantized leaf (1.1)."""
    flat = alq_layers(state)
    return {
        path: layer_weights(flat[path], shape, structure, subc)
        for path, shape, structure, subc, _ in state.config.layouts
    }


def check_groups(groups: Sequence[Any]) -> tuple[GroupRule, ...]:
    """`groups` as a tuple of rules ``(path_regex, structure[, subc[, num_bases]])`` (ValueError)."""
    out = []
    for rule in groups:
        rule = tuple(rule)
        ok = 2 <= len(rule) <= 4 and isinstance(rule[0], str) and rule[1] in alq_ops.ALQ_STRUCTURES
        ok = ok and all(isinstance(v, (int, np.integer)) and v >= 1 for v in rule[2:])
        if not ok:
            raise ValueError(
                f"Each ALQ `groups` rule is (path_regex, structure[, subc[, num_bases]]) with structure one "
                f"of {alq_ops.ALQ_STRUCTURES} and positive ints; got {rule!r}."
            )
        out.append(rule)
    return tuple(out)


def resolve_layouts(
    params: Any, paths: tuple[str, ...], groups: tuple[GroupRule, ...], num_bases: int
) -> tuple[Layout, ...]:
    """The `ALQConfig.layouts` of the quantized `paths`: the first matching rule of `groups` per leaf
    (unmatched leaves: ``'channelwise'`` with `num_bases` slots); ValueError for a rule matching none."""
    shapes = {p: tuple(x.shape) for p, x in leaf_paths(params)}
    used = [False] * len(groups)
    out = []
    for path in paths:
        structure, subc, nb = "channelwise", 1, num_bases
        for i, rule in enumerate(groups):
            if re.search(rule[0], path):
                used[i] = True
                structure = rule[1]
                subc = int(rule[2]) if len(rule) > 2 else 1
                nb = int(rule[3]) if len(rule) > 3 else num_bases
                break
        try:
            alq_ops.group_shape(shapes[path], structure, subc)
        except ValueError as e:
            raise ValueError(f"ALQ group structure for leaf {path!r} {shapes[path]}: {e}") from None
        out.append((path, shapes[path], structure, subc, nb))
    for rule, hit in zip(groups, used, strict=True):
        if not hit:
            raise ValueError(f"ALQ `groups` rule {rule[0]!r} matches none of the quantized leaves {paths}.")
    return tuple(out)


@jax.custom_vjp
def _use_reconstruction(param: jax.Array, weight: jax.Array) -> jax.Array:
    return weight.astype(param.dtype)


def _use_reconstruction_fwd(param: jax.Array, weight: jax.Array) -> tuple[jax.Array, jax.Array]:
    return weight.astype(param.dtype), weight


def _use_reconstruction_bwd(weight: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    return g, jnp.zeros_like(weight)


_use_reconstruction.defvjp(_use_reconstruction_fwd, _use_reconstruction_bwd)


def alq_params(params: Any, state: ALQState, *, differentiable: bool = True) -> Any:
    """`params` with every quantized leaf replaced by its exact reconstruction (1.1).

    With ``differentiable`` the gradient of a loss w.r.t. the returned leaf flows unchanged to the
    parameter (ALQ's optimizer needs the gradient at the quantized weights, 7.2).

    Each reconstruction passes through `jax.lax.optimization_barrier`, so that inside a jitted forward
    pass the compiler materialises the weight tensor instead of folding the group-to-kernel transpose of
    `hqjax.ops.alq.from_groups` into the consuming dot or convolution (which changes that operation's
    accumulation order): the network computes with exactly these weights, as a model loaded from a packed
    export (`hqjax.export`) does, and gives the same logits bit for bit.
    """
    params = unbox(params)
    weights = alq_reconstruction(state)

    def one(path: Any, p: jax.Array) -> jax.Array:
        w = weights.get(path_str(path))
        if w is None:
            return p
        w = jax.lax.optimization_barrier(w)
        return _use_reconstruction(p, w) if differentiable else w.astype(p.dtype)

    return jax.tree_util.tree_map_with_path(one, params)


def alq_bn_frozen(opt_state: Any) -> jax.Array:
    """True when the next ALQ update is a pruning step: its epoch runs BatchNorm in inference mode
    (ALGORITHMS.md 1.4 d); pass as ``bn_frozen`` to `hqjax.train.steps.make_train_step`."""
    state = find_alq_state(opt_state)
    if state is None:
        raise ValueError("alq_bn_frozen needs the optimizer state of hqjax.alq / alq_optimizer.")
    return state.mode == PRUNE
