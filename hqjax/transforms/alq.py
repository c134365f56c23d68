"""ALQ (Qu, Zhou, Cheng, Thiele, CVPR 2020) as one optax transformation.

ALGORITHMS.md sections 1.1-1.6 and 6. Every quantized weight tensor is split into groups (`to_groups`);
a group is ``sum_i m_i alpha_i b_i`` with binary bases ``b_i`` in {-1,+1}^n, coordinates ``alpha_i`` and
alive masks ``m_i``. The optimizer state holds, per quantized leaf, the bases (int8), coordinates, masks,
AMSGrad moments in the weight domain and in the coordinate (alpha) domain, and a full-precision buffer
for the STE mode; globally a step counter, the next step's mode and a PRNG key. Each step is one of:

=============  ==============================================================================
coordinate     Adam/AMSGrad step on the coordinates with the bases fixed (1.4 a)
basis          nearest representable value of the quadratic-model optimum ``w - p/h``, then a
               curvature-weighted least-squares refit of the coordinates (1.4 b)
ste            as basis, on a maintained full-precision tensor (post-training, 1.4 c)
prune          moments only; then the coordinates with the smallest modelled loss increase
               ``-p alpha + h alpha^2 / 2`` are removed, ranked across all layers (1.4 d)
=============  ==============================================================================

The network must compute with the reconstruction: use ``hqjax.forward_params(params, opt_state)``, which
returns the exact reconstruction and passes the gradient to ``params`` unchanged (ALQ needs the gradient
at the quantized weights, 7.2). ``update`` returns ``reconstruction - params`` for the quantized leaves,
so ``optax.apply_updates`` lands the parameters on the reconstruction (up to the float32 rounding of
``p + (w - p)``, at most one ulp). Full-precision leaves (BatchNorm, biases) take the same learning rate
through optax's Adam.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hqjax.ops import alq as alq_ops
from hqjax.selection import Selection, leaf_paths, path_str, unbox
from hqjax.transforms import _common
from hqjax.transforms.alq_schedule import ALQ_MODES, BASIS, PRUNE, STE

__all__ = [
    "ALQConfig",
    "ALQLayer",
    "ALQState",
    "alq_layers",
    "alq_optimizer",
    "alq_reconstruction",
    "find_alq_state",
]

GroupRule = tuple[str, str] | tuple[str, str, int] | tuple[str, str, int, int]


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class ALQConfig:
    """Static layout of the quantized leaves (no arrays; part of the treedef).

    Attributes:
      layouts: per quantized leaf ``(path, shape, structure, subc, num_bases)``, in natural path order.
    """

    layouts: tuple[tuple[str, tuple[int, ...], str, int, int], ...]

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


def _is_layer(x: Any) -> bool:
    return isinstance(x, ALQLayer)


def find_alq_state(opt_state: Any) -> ALQState | None:
    """The one `ALQState` inside an optimizer state, or None (ValueError when there are several)."""
    is_s = lambda x: isinstance(x, ALQState)  # noqa: E731
    found = [x for x in jax.tree_util.tree_leaves(unbox(opt_state), is_leaf=is_s) if is_s(x)]
    if len(found) > 1:
        raise ValueError(f"Found {len(found)} ALQState in the optimizer state; at most one is allowed.")
    return found[0] if found else None


def _layer_weights(layer: ALQLayer, shape: tuple[int, ...], structure: str, subc: int) -> jax.Array:
    groups = alq_ops.reconstruct(layer.bases, layer.alpha, layer.mask)
    return alq_ops.from_groups(groups, shape, structure, subc)


def alq_reconstruction(state: ALQState) -> dict[str, jax.Array]:
    """``{path: reconstructed float32 weight}`` of every quantized leaf (1.1)."""
    flat = alq_layers(state)
    return {
        path: _layer_weights(flat[path], shape, structure, subc)
        for path, shape, structure, subc, _ in state.config.layouts
    }


def alq_layers(state: ALQState) -> dict[str, ALQLayer]:
    """``{path: ALQLayer}`` of every quantized leaf of an `ALQState`."""
    leaves = jax.tree_util.tree_flatten_with_path(state.layers, is_leaf=_is_layer)[0]
    return {path_str(p): x for p, x in leaves if _is_layer(x)}


def _resolve_layouts(
    params: Any, paths: tuple[str, ...], groups: tuple[GroupRule, ...], num_bases: int
) -> tuple[tuple[str, tuple[int, ...], str, int, int], ...]:
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


def _check_groups(groups: Sequence[Any]) -> tuple[GroupRule, ...]:
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


def alq_optimizer(
    learning_rate: Callable[[Any], Any],
    mode: Callable[[Any], Any],
    prune_rate: Callable[[Any], Any] | None = None,
    *,
    top_k: float = 0.005,
    num_bases: int = 6,
    groups: Sequence[GroupRule] = (),
    selection: Selection | None = None,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    rel_tol: float = 1e-6,
    ridge: float = 1e-6,
    seed: int = 0,
    stochastic_rounding: bool = True,
    reproduce_official_quirks: bool = False,
    fp_optimizer: optax.GradientTransformation | None = None,
) -> optax.GradientTransformation:
    """The ALQ optimizer (ALGORITHMS.md 1.3-1.4, 6), driven by step schedules.

    ``tx.init(params)`` sketches every quantized leaf of the (pretrained) params into binary bases
    (1.2); ``tx.update(grads, state, params)`` takes one step of the mode ``mode(count)``.

    Args:
      learning_rate: ``step -> lr`` (also the FP leaves' Adam learning rate).
      mode: ``step -> int`` step type: 0 coordinate, 1 basis, 2 ste, 3 prune
        (`hqjax.transforms.alq_pipeline` builds the official pipeline).
      prune_rate: ``step -> fraction`` of the live coordinates to prune in a prune step (default 0).
      top_k: per-layer candidate fraction of the live coordinates (1.4 d step 3).
      num_bases: I_max, basis slots per group.
      groups: rules ``(path_regex, structure[, subc[, num_bases]])``, first match wins; unmatched
        leaves are ``'channelwise'`` with `num_bases` slots. Structures: `hqjax.ops.ALQ_STRUCTURES`.
      selection: the quantized leaves (default: every kernel with ndim >= 2, first and last included,
        as in the official code).
      b1, b2, eps: AMSGrad constants of the quadratic loss model (1.3).
      weight_decay: added to the coordinate-domain gradient as ``wd * alpha`` (official default 0).
      rel_tol: sketching stops adding bases when ``|r|^2/|w|^2 < rel_tol``.
      ridge: ridge of the weighted refit on live slots.
      seed: PRNG seed for the stochastic rounding of per-layer candidate counts.
      stochastic_rounding: ``floor(N top_k) + Bernoulli(frac)`` candidates (official); False rounds
        half up (deterministic).
      reproduce_official_quirks: reproduce the two deviations of the official code (spec 8 row 17):
        the first basis step targets the pretrained weights, and the global pruning ranking reads each
        candidate's score at its index within the live subset.
      fp_optimizer: optimizer of the full-precision leaves (default ``optax.adam(learning_rate, b1, b2,
        eps)``).

    Returns:
      An `optax.GradientTransformation` with `ALQState`.
    """
    selection = _common.as_selection(selection)
    groups = _check_groups(groups)
    _common.check_int(num_bases, "num_bases", minimum=1)
    if not (0.0 < float(top_k) <= 1.0):
        raise ValueError(f"`top_k` must be in (0, 1], got {top_k!r}.")
    for name, v in (("b1", b1), ("b2", b2)):
        if not 0.0 <= float(v) < 1.0:
            raise ValueError(f"`{name}` must be in [0, 1), got {v!r}.")
    if not float(eps) > 0.0:
        raise ValueError(f"`eps` must be > 0, got {eps!r}.")
    if not callable(mode):
        raise ValueError("`mode` must be a schedule step -> int (see hqjax.transforms.alq_pipeline).")
    lr_fn = learning_rate if callable(learning_rate) else (lambda _: learning_rate)
    rate_fn = prune_rate if prune_rate is not None else (lambda _: 0.0)
    fp_tx = fp_optimizer if fp_optimizer is not None else optax.adam(
        lambda t: lr_fn(t), b1=b1, b2=b2, eps=eps
    )
    top_k = float(top_k)

    def fp_tree(tree: Any, sel: Any) -> Any:
        return jax.tree.map(lambda s, x: None if s else x, sel, tree)

    def init_fn(params: Any) -> ALQState:
        paths = selection.paths(params)
        sel = _common.selected_tree(params, selection)
        config = ALQConfig(_resolve_layouts(params, paths, groups, num_bases))

        def layer(path: str, w: jax.Array) -> ALQLayer:
            shape, structure, subc, nb = config.layout(path)
            w32 = jnp.asarray(w, jnp.float32)
            g = alq_ops.to_groups(w32, structure, subc)
            bases, alpha, mask = alq_ops.sketch(g, nb, rel_tol=rel_tol)
            w_hat = alq_ops.from_groups(alq_ops.reconstruct(bases, alpha, mask), shape, structure, subc)
            zw, za = jnp.zeros_like(w32), jnp.zeros_like(alpha)
            w_fp = w32 if reproduce_official_quirks else w_hat
            return ALQLayer(bases, alpha, mask, w_fp, zw, zw, zw, za, za, za)

        layers = jax.tree_util.tree_map_with_path(
            lambda p, s, x: layer(path_str(p), x) if s else None, sel, params
        )
        return ALQState(
            config=config,
            count=_common.zeros_count(),
            mode=jnp.asarray(mode(0), jnp.int32),
            prev_mode=jnp.asarray(-1, jnp.int32),
            basis_steps=_common.zeros_count(),
            learning_rate=jnp.asarray(lr_fn(0), jnp.float32),
            key=jax.random.key_data(jax.random.PRNGKey(seed)),
            layers=layers,
            fp_state=fp_tx.init(fp_tree(params, sel)),
        )

    def update_fn(grads: Any, state: ALQState, params: Any = None) -> tuple[Any, ALQState]:
        if params is None:
            raise ValueError("hqjax ALQ needs `params` in tx.update(grads, state, params).")
        params, grads = unbox(params), unbox(grads)
        config = state.config
        sel = _common.selected_tree(params, selection)
        step = state.count
        t = (step + 1).astype(jnp.float32)
        cur_mode = jnp.clip(jnp.asarray(mode(step), jnp.int32), 0, len(ALQ_MODES) - 1)
        lr = jnp.asarray(lr_fn(step), jnp.float32)
        rate = jnp.asarray(rate_fn(step), jnp.float32)
        key, sub = jax.random.split(jax.random.wrap_key_data(state.key))
        bc1, bc2 = 1.0 - b1**t, jnp.sqrt(1.0 - b2**t)

        def amsgrad(m: jax.Array, v: jax.Array, v_max: jax.Array, g: jax.Array) -> tuple[jax.Array, ...]:
            """Moments after gradient `g`, the pseudo gradient ``p`` (lr-scaled) and pseudo Hessian ``h``
            of the quadratic loss model (1.3)."""
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            v_max = jnp.maximum(v_max, v)
            return m, v, v_max, lr * m / bc1, (jnp.sqrt(v_max) + eps) / bc2

        flat = alq_layers(state)
        grad_by_path = dict(leaf_paths(grads))
        names = config.selected
        ctx = []
        for path in names:
            shape, structure, subc, _ = config.layout(path)
            lay = flat[path]
            g = jnp.asarray(grad_by_path[path], jnp.float32)
            mu, nu, nu_max, p, h = amsgrad(lay.mu, lay.nu, lay.nu_max, g)
            lay = lay._replace(mu=mu, nu=nu, nu_max=nu_max)
            ctx.append((lay, g, p, h, shape, structure, subc))

        def alpha_moments(lay: ALQLayer, g: jax.Array, structure: str, subc: int) -> tuple[Any, ...]:
            ga = alq_ops.grad_to_alpha(lay.bases, alq_ops.to_groups(g, structure, subc), lay.mask)
            ga = ga + weight_decay * lay.alpha * lay.mask
            return amsgrad(lay.mu_alpha, lay.nu_alpha, lay.nu_max_alpha, ga)

        def coordinate(_: Any) -> list[ALQLayer]:
            out = []
            for lay, g, _p, _h, _shape, structure, subc in ctx:
                m_a, v_a, vm_a, p_a, h_a = alpha_moments(lay, g, structure, subc)
                alpha = lay.alpha - lay.mask * (p_a / h_a)
                out.append(lay._replace(alpha=alpha, mu_alpha=m_a, nu_alpha=v_a, nu_max_alpha=vm_a))
            return out

        def refit(lay: ALQLayer, target: jax.Array, h: jax.Array, structure: str, subc: int) -> ALQLayer:
            tg = alq_ops.to_groups(target, structure, subc)
            hg = alq_ops.to_groups(h, structure, subc)
            bases = alq_ops.nearest_codes(tg, lay.alpha, lay.mask)
            alpha = alq_ops.wls_refit(bases, tg, hg, lay.mask, ridge=ridge)
            bases, alpha = alq_ops.fix_signs(bases, alpha)
            grouped = lambda x: alq_ops.to_groups(x, structure, subc)  # noqa: E731
            return lay._replace(
                bases=bases,
                alpha=alpha,
                mu_alpha=alq_ops.grad_to_alpha(bases, grouped(lay.mu), lay.mask),
                nu_alpha=alq_ops.diag_to_alpha(grouped(lay.nu), lay.mask),
                nu_max_alpha=alq_ops.diag_to_alpha(grouped(lay.nu_max), lay.mask),
            )

        def basis(_: Any) -> list[ALQLayer]:
            out = []
            first = state.basis_steps == 0
            for lay, _g, p, h, shape, structure, subc in ctx:
                w_hat = _layer_weights(lay, shape, structure, subc)
                src = jnp.where(first, lay.w_fp, w_hat) if reproduce_official_quirks else w_hat
                lay = refit(lay, src - p / h, h, structure, subc)
                out.append(lay._replace(w_fp=_layer_weights(lay, shape, structure, subc)))
            return out

        def ste(_: Any) -> list[ALQLayer]:
            out = []
            entering = state.prev_mode != STE
            for lay, _g, p, h, shape, structure, subc in ctx:
                w_hat = _layer_weights(lay, shape, structure, subc)
                target = jnp.where(entering, w_hat, lay.w_fp) - p / h
                lay = refit(lay, target, h, structure, subc)
                out.append(lay._replace(w_fp=target))
            return out

        def prune(_: Any) -> list[ALQLayer]:
            moved, scores, slots, valid = [], [], [], []
            keys = jax.random.split(sub, max(len(ctx), 1))
            q = jnp.clip(rate / top_k, 0.0, 1.0)
            for i, (lay, g, *_rest, structure, subc) in enumerate(ctx):
                m_a, v_a, vm_a, p_a, h_a = alpha_moments(lay, g, structure, subc)
                moved.append(lay._replace(mu_alpha=m_a, nu_alpha=v_a, nu_max_alpha=vm_a))
                d_all = alq_ops.importance(p_a, h_a, lay.alpha).reshape(-1)
                live = lay.mask.reshape(-1)
                size = live.size
                n_live = jnp.sum(live).astype(jnp.float32)
                x = n_live * top_k
                if stochastic_rounding:
                    extra = jax.random.uniform(keys[i]) < (x - jnp.floor(x))
                    k = jnp.floor(x).astype(jnp.int32) + extra.astype(jnp.int32)
                else:
                    k = jnp.floor(x + 0.5).astype(jnp.int32)
                k_max = min(math.ceil(size * top_k) + 1, size)
                d = jnp.where(live, d_all, jnp.inf)
                neg, idx = jax.lax.top_k(-d, k_max)  # the k_max smallest scores among live slots
                ok = (jnp.arange(k_max) < k) & jnp.isfinite(neg)
                if reproduce_official_quirks:
                    # official ranking value: the score at the candidate's index within the live subset
                    pos = jnp.cumsum(live.astype(jnp.int32))[idx] - 1
                    value = jnp.where(live, d_all, 0.0)[jnp.clip(pos, 0, size - 1)]
                else:
                    value = -neg
                scores.append(jnp.where(ok, value, jnp.inf))
                slots.append(idx)
                valid.append(ok)
            all_scores = jnp.concatenate(scores)
            all_valid = jnp.concatenate(valid)
            n_prune = jnp.floor(jnp.sum(all_valid).astype(jnp.float32) * q).astype(jnp.int32)
            order = jnp.argsort(all_scores, stable=True)
            rank = jnp.zeros_like(order).at[order].set(jnp.arange(order.size, dtype=order.dtype))
            chosen = all_valid & (rank < n_prune)
            out, start = [], 0
            for lay, idx in zip(moved, slots, strict=True):
                c = chosen[start : start + idx.size]
                start += idx.size
                mask = lay.mask.reshape(-1).at[idx].min(~c).reshape(lay.mask.shape)
                alpha = jnp.where(mask, lay.alpha, 0.0)
                bases = jnp.where(mask[..., None], lay.bases, 0).astype(lay.bases.dtype)
                out.append(lay._replace(mask=mask, alpha=alpha, bases=bases))
            return out

        if ctx:
            new_layers = jax.lax.switch(cur_mode, (coordinate, basis, ste, prune), None)
        else:
            new_layers = []
        by_path = dict(zip(names, new_layers, strict=True))

        # full-precision leaves: the same learning rate through Adam
        fp_updates, fp_state = fp_tx.update(fp_tree(grads, sel), state.fp_state, fp_tree(params, sel))
        fp_by_path = dict(leaf_paths(fp_updates))

        def out_update(path: Any, s: bool, p: jax.Array) -> jax.Array:
            name = path_str(path)
            if s:
                shape, structure, subc, _ = config.layout(name)
                w = _layer_weights(by_path[name], shape, structure, subc)
                return (w - p).astype(p.dtype)
            return fp_by_path[name]

        updates = jax.tree_util.tree_map_with_path(out_update, sel, params)
        layers = jax.tree_util.tree_map_with_path(
            lambda p, s, _x: by_path[path_str(p)] if s else None, sel, params
        )
        new_state = ALQState(
            config=config,
            count=optax.safe_increment(step),
            mode=jnp.clip(jnp.asarray(mode(step + 1), jnp.int32), 0, len(ALQ_MODES) - 1),
            prev_mode=cur_mode,
            basis_steps=state.basis_steps + (cur_mode == BASIS).astype(jnp.int32),
            learning_rate=lr,
            key=jax.random.key_data(key),
            layers=layers,
            fp_state=fp_state,
        )
        return updates, new_state

    return optax.GradientTransformation(_common.abstract_safe(init_fn), update_fn)



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


__all__ += ["alq_params"]


def alq_bn_frozen(opt_state: Any) -> jax.Array:
    """True when the next ALQ update is a pruning step: its epoch runs BatchNorm in inference mode
    (ALGORITHMS.md 1.4 d); pass as ``bn_frozen`` to `hqjax.train.steps.make_train_step`."""
    state = find_alq_state(opt_state)
    if state is None:
        raise ValueError("alq_bn_frozen needs the optimizer state of hqjax.alq / alq_optimizer.")
    return state.mode == PRUNE


__all__ += ["alq_bn_frozen"]
