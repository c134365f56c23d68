"""Sharding invariants on the 8 forced CPU devices (pattern of optax's sharding_test.py).

With explicit mesh axes (sharding in types): state types, shardings included, are identical after init
and after update, eager and jitted; init works from `jax.ShapeDtypeStruct` params; the forward weights
and their gradients keep the parameters' sharding.
"""

import jax
import jax.numpy as jnp
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import hqjax

RECIPES = {
    "twn": lambda: hqjax.twn(optax.sgd(0.1, momentum=0.9)),
    "ttq": lambda: hqjax.ttq(optax.adam(1e-2)),
    "ptq": lambda: hqjax.ptq(optax.adamw(1e-2), total_steps=6, quantize_step=2, prune_end=1),
    "hq": lambda: hqjax.hq(
        optax.sgd(0.1, nesterov=True, momentum=0.9), total_steps=6, quantize_step=2, prune_end=1
    ),
    "hla_tq": lambda: hqjax.hla_tq(optax.lamb(1e-2), total_steps=6, quantize_step=2, sparsity=0.5),
}


@pytest.fixture(scope="module")
def mesh(devices):
    return jax.make_mesh((8,), ("x",), axis_types=(jax.sharding.AxisType.Explicit,))


def _params(mesh):
    key0, key1 = jax.random.split(jax.random.key(0))
    spec = NamedSharding(mesh, P(None, "x"))
    return {
        "Dense_0": {
            "kernel": jax.random.normal(key0, (16, 8), out_sharding=spec),
            "bias": jnp.zeros((8,), out_sharding=NamedSharding(mesh, P("x"))),
        },
        "Dense_1": {"kernel": jax.random.normal(key1, (8, 16), out_sharding=spec)},
    }


def _types(tree):
    return jax.tree.map(jax.typeof, tree)


@pytest.mark.parametrize("name", list(RECIPES))
def test_state_sharding_stable_eager_and_jit(mesh, name):
    tx = RECIPES[name]()
    with jax.set_mesh(mesh):
        params = _params(mesh)
        s0 = tx.init(params)
        s1 = jax.jit(tx.init)(params)
        assert _types(s0) == _types(s1)
        grads = jax.tree.map(lambda x: 0.1 * x, params)
        _, s2 = tx.update(grads, s0, params)
        _, s3 = jax.jit(tx.update)(grads, s0, params)
        assert _types(s2) == _types(s0)
        assert _types(s3) == _types(s0)
        masks = hqjax.find_quantizer_states(s0).prune
        if masks is not None:
            assert jax.typeof(masks.masks["Dense_0"]["kernel"]).sharding.spec == P(None, "x")


@pytest.mark.parametrize("name", list(RECIPES))
def test_init_from_shape_dtype_structs(mesh, name):
    tx = RECIPES[name]()
    with jax.set_mesh(mesh):
        params = _params(mesh)
        abstract = jax.eval_shape(tx.init, params)
        concrete = tx.init(params)
        assert jax.tree.structure(abstract) == jax.tree.structure(concrete)
        for a, c in zip(jax.tree.leaves(abstract), jax.tree.leaves(concrete), strict=True):
            assert isinstance(a, jax.ShapeDtypeStruct)
            assert (a.shape, a.dtype) == (c.shape, c.dtype)
        sds = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), params)
        direct = tx.init(sds)  # hqjax transforms accept ShapeDtypeStruct params directly as well
        assert jax.tree.structure(direct) == jax.tree.structure(concrete)


def test_forward_and_gradient_keep_param_sharding(mesh):
    tx = RECIPES["hq"]()
    with jax.set_mesh(mesh):
        params = _params(mesh)
        state = tx.init(params)

        @jax.jit
        def step(params, state):
            loss = lambda p: jnp.sum(hqjax.forward_params(p, state)["Dense_0"]["kernel"] ** 3)
            grads = jax.grad(loss)(params)
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state, grads

        for _ in range(3):  # crosses the phase boundary (quantize_step=2)
            new_params, state, grads = step(params, state)
            assert _types(new_params) == _types(params)
            assert _types(grads) == _types(params)
            params = new_params
        q = jax.jit(hqjax.forward_params)(params, state)
        assert _types(q) == _types(params)
