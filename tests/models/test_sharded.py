"""Every model jit-compiles and runs a training step with the batch sharded over the 8 forced CPU
devices, and gives the single-device loss, gradients and BatchNorm statistics.

Plain `jax.jit` with `NamedSharding` inputs: params replicated (``P()``), batch split on the
``'data'`` mesh axis (one image per device), so BatchNorm uses the statistics of the global batch.

Speed: variables are drawn with NumPy from the `jax.eval_shape` of ``init`` (no init program to
compile; the models' own initialisers are tested elsewhere), the ImageNet models run on 32x32
inputs, the two programs of a test compile in parallel threads, and LLVM optimisation is off
(``xla_backend_optimization_level=0``: codegen only; the HLO passes, sharding propagation and SPMD
partitioning included, are unchanged).

Tolerance: deep BatchNorm networks at initialisation amplify rounding (gradient explosion with
depth): in float32 a single-device ResNet-50 step already differs from float64 by ~2% in relative
L2 norm of the gradients, so summing in another order on 8 devices moves the result by as much.
The tolerances below are set from that, per model; the BatchNorm bug this test is after (per-device
statistics, here over one image) or a missing gradient all-reduce changes the result by O(1), as
`test_tolerance_detects_per_device_batchnorm` checks.

Coverage: the default run covers every block and layer type (resnet20: option A; resnet18: basic
blocks with projections and the ImageNet stem; resnet50: bottlenecks; mobilenet_v2; lenet5;
vgg_small). resnet32/44/56/110 and resnet34 repeat the same blocks more times and take 5-20 s each
to compile, so they are marked ``slow`` (``pytest -m slow tests/models``).
"""

from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from hqjax import models

COMPILER_OPTIONS = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
BATCH = 8
LEARNING_RATE = 0.1

# Relative L2 error allowed on the whole gradient tree (and on the updated params): about 10x
# the difference measured between the two float32 programs (see the module docstring).
GRAD_RTOL = {
    "lenet5": 1e-5,
    "resnet20": 1e-5,
    "resnet18": 1e-4,
    "resnet34": 3e-4,
    "mobilenet_v2": 1e-3,
    "vgg_small": 3e-2,  # BatchNorm over 8 samples after each FC layer
    "resnet32": 3e-2,
    "resnet44": 3e-2,
    "resnet56": 3e-2,
    "resnet110": 1e-1,
    "resnet50": 1e-1,
}
# Deeper copies of code paths the default models already cover: run with `pytest -m slow`.
SLOW = ("resnet32", "resnet44", "resnet56", "resnet110", "resnet34")


def _input_shape(name):
    spec = models.spec(name)
    return (32, 32, 3) if spec.dataset == "imagenet" else spec.input_shape


def _numpy_variables(abstract, seed=0):
    """He-normal (fan-in) kernels, random BatchNorm affine parameters, zero biases."""
    rng = np.random.default_rng(seed)

    def leaf(path, s):
        key = path[-1].key
        if key == "kernel":
            fan_in = int(np.prod(s.shape[:-1]))
            return (rng.standard_normal(s.shape) * np.sqrt(2.0 / fan_in)).astype(s.dtype)
        if key == "scale":
            return rng.uniform(0.5, 1.5, s.shape).astype(s.dtype)
        if key == "bias" and path[-2].key.startswith("bn"):
            return rng.uniform(-0.1, 0.1, s.shape).astype(s.dtype)
        if key == "var":
            return np.ones(s.shape, s.dtype)
        return np.zeros(s.shape, s.dtype)  # dense/conv bias, running mean

    return jax.tree_util.tree_map_with_path(leaf, abstract)


def make_train_step(model):
    """SGD step: (params, state, x, y) -> (loss, grads, new params, new batch_stats)."""

    def loss_fn(params, state, x, y):
        logits, new_state = model.apply(
            {"params": params, **state}, x, train=True, mutable=["batch_stats"]
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, new_state

    def step(params, state, x, y):
        (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, x, y)
        new_params = jax.tree.map(lambda p, g: p - LEARNING_RATE * g, params, grads)
        return loss, grads, new_params, new_state

    return step


def _setup(name, batch=BATCH):
    model = models.get(name)
    shape = (batch, *_input_shape(name))
    abstract = jax.eval_shape(
        lambda x: model.init(jax.random.key(0), x, train=False),
        jax.ShapeDtypeStruct(shape, jnp.float32),
    )
    variables = _numpy_variables(abstract)
    params = variables.pop("params")
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    y = (np.arange(batch) % 10).astype(np.int32)
    return model, params, variables, x, y


def _compile_in_parallel(fn, *arg_lists):
    lowered = [jax.jit(fn, compiler_options=COMPILER_OPTIONS).lower(*args) for args in arg_lists]
    with ThreadPoolExecutor(len(lowered)) as pool:
        return list(pool.map(lambda low: low.compile(), lowered))


def _rel_l2(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    pairs = zip(la, lb, strict=True)
    num = sum(float(np.sum((np.asarray(u, np.float64) - np.asarray(v)) ** 2)) for u, v in pairs)
    den = sum(float(np.sum(np.asarray(u, np.float64) ** 2)) for u in la)
    return np.sqrt(num / max(den, 1e-30))


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in models.names()]
)
def test_sharded_train_step_matches_single_device(name, devices):
    model, params, state, x, y = _setup(name)
    mesh = jax.make_mesh((len(devices),), ("data",))
    replicated, batch = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    sharded_args = (*jax.device_put((params, state), replicated), *jax.device_put((x, y), batch))
    single_args = jax.device_put((params, state, x, y), devices[0])
    single, sharded = _compile_in_parallel(make_train_step(model), single_args, sharded_args)

    loss1, grads1, params1, state1 = single(*single_args)
    loss8, grads8, params8, state8 = sharded(*sharded_args)

    # The sharded program really is data-parallel: batch split, params and results replicated.
    assert sharded_args[2].sharding.shard_shape(x.shape)[0] == 1
    for leaf in jax.tree.leaves((grads8, params8, state8)):
        assert leaf.sharding.is_fully_replicated
        assert len(leaf.sharding.device_set) == len(devices)

    assert np.isfinite(float(loss8))
    np.testing.assert_allclose(float(loss8), float(loss1), rtol=1e-4)
    assert jax.tree.structure(grads8) == jax.tree.structure(params)
    # The classifier gradient is well conditioned; the whole tree is compared at GRAD_RTOL.
    assert _rel_l2(grads1["head"], grads8["head"]) < 1e-3
    assert _rel_l2(grads1, grads8) < GRAD_RTOL[name]
    assert _rel_l2(params1, params8) < GRAD_RTOL[name]
    assert _rel_l2(params, params1) > 1e-4  # the step moved the params
    # BatchNorm running statistics (forward only) were updated, identically.
    if name != "lenet5":
        assert _rel_l2(state, state1) > 1e-3
        assert _rel_l2(state1, state8) < 1e-4


def test_tolerance_detects_per_device_batchnorm(devices):
    """Per-device BatchNorm (statistics over 4 images instead of 8) is far outside the tolerance."""
    model, params, state, x, y = _setup("resnet20")
    step = jax.jit(make_train_step(model), compiler_options=COMPILER_OPTIONS)
    _, grads, _, _ = step(params, state, x, y)
    halves = [step(params, state, x[i : i + 4], y[i : i + 4])[1] for i in (0, 4)]
    local = jax.tree.map(lambda a, b: (a + b) / 2, *halves)
    assert _rel_l2(grads, local) > 100 * GRAD_RTOL["resnet20"]
