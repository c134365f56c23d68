"""Composition: every recipe around sgd (momentum, nesterov), adamw and lamb, inside optax.MultiSteps,
optax.inject_hyperparams and optax.apply_if_finite, all under jax.jit; the chained low-level transforms
give the same result as the recipe.

Each (recipe, inner optimizer) pair runs plain and inside one wrapper (a Latin square, so every recipe
and every optimizer meets every wrapper); a wrapper that does not change the maths must give the same
parameters as the plain run.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hqjax
from hqjax import schedules, transforms
from tests.helpers import assert_trees_all_close

STEPS = 6
RECIPE_KW = {
    "twn": {},
    "ttq": dict(scale_learning_rate=1e-2),
    "ptq": dict(total_steps=STEPS, quantize_step=2, prune_end=1, sparsity=0.5),
    "hq": dict(total_steps=STEPS, quantize_step=2, prune_end=1, sparsity=0.5),
    "hla_tq": dict(total_steps=STEPS, quantize_step=2, sparsity=0.5, reg_strength=0.5),
}
INNERS = {
    "sgd_momentum": lambda: optax.sgd(0.05, momentum=0.9),
    "sgd_nesterov": lambda: optax.sgd(0.05, momentum=0.9, nesterov=True),
    "adamw": lambda: optax.adamw(1e-2, weight_decay=1e-3),
    "lamb": lambda: optax.lamb(1e-2),
}
WRAPPERS = ["multisteps", "inject_hyperparams", "apply_if_finite", "multisteps_k1"]

_rng = np.random.default_rng(0)
X = jnp.asarray(_rng.normal(size=(16, 6)), jnp.float32)
Y = jnp.asarray(_rng.normal(size=(16, 4)), jnp.float32)
# One quantized kernel and one full-precision bias keep the many compilations of this file cheap.
PARAMS = {"Dense_0": {"kernel": jnp.asarray(_rng.normal(size=(6, 4)), jnp.float32), "bias": jnp.zeros(4)}}


def loss_fn(params, opt_state):
    p = hqjax.forward_params(params, opt_state)["Dense_0"]
    return jnp.mean((X @ p["kernel"] + p["bias"] - Y) ** 2)


def train(tx, repeat=1):
    """`STEPS` jitted steps; each gradient is fed `repeat` times (for MultiSteps with k = repeat)."""

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(loss_fn)(params, state)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    params, state = PARAMS, tx.init(PARAMS)
    losses = []
    for _ in range(STEPS * repeat):
        params, state, loss = step(params, state)
        losses.append(float(loss))
    return params, state, losses


def wrap(name, recipe_name, inner):
    recipe = hqjax.METHODS[recipe_name]
    kw = RECIPE_KW[recipe_name]
    if name == "multisteps":
        return optax.MultiSteps(recipe(inner, **kw), every_k_schedule=2), 2
    if name == "multisteps_k1":
        return optax.MultiSteps(recipe(inner, **kw), every_k_schedule=1), 1
    if name == "inject_hyperparams":
        return optax.inject_hyperparams(recipe, static_args=hqjax.static_args(recipe))(inner=inner, **kw), 1
    return optax.apply_if_finite(recipe(inner, **kw), max_consecutive_errors=3), 1


CASES = [
    (r, i, WRAPPERS[(ri + ii) % len(WRAPPERS)])
    for ri, r in enumerate(RECIPE_KW)
    for ii, i in enumerate(INNERS)
]


@pytest.mark.parametrize("recipe_name, inner_name, wrapper", CASES, ids=["-".join(c) for c in CASES])
def test_recipe_in_wrapper_matches_plain_run(recipe_name, inner_name, wrapper):
    recipe = hqjax.METHODS[recipe_name]
    plain_params, plain_state, losses = train(recipe(INNERS[inner_name](), **RECIPE_KW[recipe_name]))
    assert np.all(np.isfinite(losses))
    tx, repeat = wrap(wrapper, recipe_name, INNERS[inner_name]())
    params, state, _ = train(tx, repeat)
    assert_trees_all_close(params, plain_params, rtol=2e-5, atol=1e-6)
    q = hqjax.forward_params(params, state)
    assert_trees_all_close(q, hqjax.forward_params(plain_params, plain_state), rtol=2e-5, atol=1e-6)
    qs = hqjax.find_quantizer_states(state).quantizer
    assert int(qs.count) == STEPS
    if recipe_name != "ttq":  # TTQ has two magnitudes per unit (W_p, W_n) by design
        k = np.asarray(q["Dense_0"]["kernel"])
        for j in range(k.shape[-1]):
            assert np.unique(np.abs(k[:, j][k[:, j] != 0])).size <= 1


def test_apply_if_finite_skips_a_nan_step_entirely():
    tx = optax.apply_if_finite(hqjax.hq(optax.adamw(1e-2), **RECIPE_KW["hq"]), max_consecutive_errors=3)
    state = tx.init(PARAMS)
    nan_grads = jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), PARAMS)
    updates, new_state = jax.jit(tx.update)(nan_grads, state, PARAMS)
    assert_trees_all_close(optax.apply_updates(PARAMS, updates), PARAMS)
    assert_trees_all_close(new_state.inner_state, state.inner_state)
    assert int(new_state.notfinite_count) == 1


def _chain(name, inner, zeros="quantile"):
    sel = hqjax.Selection()
    if name == "twn":
        return optax.chain(transforms.quantizer("ternary", method="twn", factor=0.7), inner)
    if name == "ttq":
        q = transforms.quantizer("ttq", method="ttq", factor=0.05)
        return optax.chain(q, transforms.ttq_scales(1e-2), inner)
    if name in ("ptq", "hq"):
        sp = hqjax.ops.agp_schedule(0.5, end_step=1)
        if zeros == "quantile":  # the default: zeros by per-step quantile after the boundary
            q = transforms.quantizer("sphere", method=name, quantize_step=2, selection=sel,
                                     threshold="quantile", sparsity=sp)
            pr = transforms.prune(sp, frozen_from=3, release_from=3)
        else:  # the AGP mask frozen at the boundary
            q = transforms.quantizer("sphere", method=name, quantize_step=2, selection=sel)
            pr = transforms.prune(sp, frozen_from=3)
        parts = [q, transforms.add_decayed_weights(1e-4), inner, pr]
        if name == "hq":
            parts.append(transforms.reinitialize(2))
        return optax.chain(*parts)
    sp = hqjax.ops.agp_schedule(0.5, end_step=1)
    return optax.chain(
        transforms.quantizer(
            "hla",
            method="hla_tq",
            quantize_step=2,
            sparsity=sp,
            temperature=schedules.geometric(2.0, 50.0, begin_step=2, end_step=STEPS),
        ),
        transforms.ternary_regularizer(
            schedules.ramp(0.5, end_step=2, stop_step=2), threshold="quantile", sparsity=sp
        ),
        transforms.add_decayed_weights(1e-4),
        inner,
    )


@pytest.mark.parametrize("name", list(RECIPE_KW))
def test_chained_transforms_equal_the_recipe(name):
    p1, s1, l1 = train(hqjax.METHODS[name](optax.sgd(0.05, momentum=0.9), **RECIPE_KW[name]))
    p2, s2, l2 = train(_chain(name, optax.sgd(0.05, momentum=0.9)))
    assert_trees_all_close(p1, p2, rtol=0, atol=0)
    assert jax.tree.structure(s1) == jax.tree.structure(s2)
    np.testing.assert_array_equal(l1, l2)
    assert l1[-1] < l1[0]


@pytest.mark.parametrize("name", ["ptq", "hq"])
def test_chained_transforms_equal_the_recipe_with_frozen_zeros(name):
    kw = dict(RECIPE_KW[name], zeros="frozen")
    p1, s1, l1 = train(hqjax.METHODS[name](optax.sgd(0.05, momentum=0.9), **kw))
    p2, s2, l2 = train(_chain(name, optax.sgd(0.05, momentum=0.9), zeros="frozen"))
    assert_trees_all_close(p1, p2, rtol=0, atol=0)
    assert jax.tree.structure(s1) == jax.tree.structure(s2)
    np.testing.assert_array_equal(l1, l2)
    assert l1[-1] < l1[0]


@pytest.mark.parametrize(
    "factory, kwargs",
    [
        (transforms.prune, dict(sparsity=0.5)),
        (transforms.ternary_regularizer, dict(strength=0.1)),
        (transforms.add_decayed_weights, dict(weight_decay=1e-3)),
        (transforms.ttq_scales, dict(learning_rate=1e-2)),
        (transforms.project_to_sphere, dict(radius=2.0)),
        (transforms.reinitialize, dict(at_step=1)),
        (transforms.quantizer, dict(forward="hla", quantize_step=1, temperature=3.0)),
    ],
    ids=lambda x: getattr(x, "__name__", ""),
)
def test_each_transform_works_under_inject_hyperparams(factory, kwargs):
    plain = factory(**kwargs)
    injected = optax.inject_hyperparams(factory, static_args=hqjax.static_args(factory))(**kwargs)
    grads = jax.tree.map(lambda x: 0.1 * x, PARAMS)
    u1, _ = plain.update(grads, plain.init(PARAMS), PARAMS)
    u2, s2 = jax.jit(injected.update)(grads, injected.init(PARAMS), PARAMS)
    assert_trees_all_close(u2, u1, rtol=1e-6, atol=1e-7)
    assert int(s2.count) == 1
