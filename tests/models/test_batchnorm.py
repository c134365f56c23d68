"""Train vs eval behaviour: BatchNorm statistics, dropout, and the computation dtype."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hqjax import models
from hqjax.models import MobileNetV2

# Fast compiles for small test programs (LLVM optimisation off; same HLO).
COMPILER_OPTIONS = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
jit = functools.partial(jax.jit, compiler_options=COMPILER_OPTIONS)


def _init(model, x):
    return jit(lambda x: model.init(jax.random.key(0), x, train=False))(x)


def _images(shape, seed=0):
    # A non-zero mean and non-unit variance, so batch statistics differ from the initial ones.
    return (np.random.default_rng(seed).standard_normal(shape) * 2.0 + 1.0).astype(np.float32)


@pytest.fixture(scope="module", params=["resnet20", "vgg_small"])
def bn_model(request):
    name = request.param
    model = models.get(name)
    x = _images((8, *models.spec(name).input_shape))
    variables = _init(model, x)
    train = jit(
        lambda v, x: model.apply(
            v, x, train=True, mutable=["batch_stats"], capture_intermediates=True
        )
    )
    evaluate = jit(lambda v, x: model.apply(v, x, train=False, mutable=["batch_stats"]))
    return name, model, variables, x, train, evaluate


def test_train_mode_updates_every_running_statistic(bn_model):
    name, _, variables, x, train, _ = bn_model
    _, state = train(variables, x)
    old = jax.tree_util.tree_leaves_with_path(variables["batch_stats"])
    new = jax.tree.leaves(state["batch_stats"])
    assert len(old) == len(new) > 0
    for (path, before), after in zip(old, new, strict=True):
        assert not np.allclose(before, after), f"{name}: {jax.tree_util.keystr(path)} unchanged"


def test_running_statistics_use_momentum_0_9(bn_model):
    """new = 0.9 * old + 0.1 * batch statistic (PyTorch momentum 0.1), over N, H, W."""
    name, _, variables, x, train, _ = bn_model
    _, state = train(variables, x)
    first_conv = "conv_init" if name == "resnet20" else "conv1"
    first_bn = "bn_init" if name == "resnet20" else "bn1"
    conv_out = np.asarray(state["intermediates"][first_conv]["__call__"][0], np.float64)
    stats = state["batch_stats"][first_bn]
    np.testing.assert_allclose(stats["mean"], 0.1 * conv_out.mean((0, 1, 2)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        stats["var"], 0.9 + 0.1 * conv_out.var((0, 1, 2)), rtol=1e-4, atol=1e-6
    )


def test_eval_mode_keeps_running_statistics(bn_model):
    _, _, variables, x, _, evaluate = bn_model
    _, state = evaluate(variables, x)
    for before, after in zip(
        jax.tree.leaves(variables["batch_stats"]),
        jax.tree.leaves(state["batch_stats"]),
        strict=True,
    ):
        np.testing.assert_array_equal(before, after)


def test_eval_output_is_per_example_and_train_output_is_not(bn_model):
    _, model, variables, x, _, _ = bn_model
    apply = jit(model.apply, static_argnames=("train", "mutable"))
    eval_full = apply(variables, x, train=False)
    eval_half = apply(variables, x[:4], train=False)
    np.testing.assert_allclose(eval_half, eval_full[:4], rtol=1e-4, atol=1e-5)
    train_full, _ = apply(variables, x, train=True, mutable=("batch_stats",))
    train_half, _ = apply(variables, x[:4], train=True, mutable=("batch_stats",))
    assert not np.allclose(train_half, train_full[:4], rtol=1e-3, atol=1e-3)


def test_eval_uses_the_updated_statistics(bn_model):
    _, _, variables, x, train, evaluate = bn_model
    _, state = train(variables, x)
    before, _ = evaluate(variables, x)
    after, _ = evaluate({**variables, "batch_stats": state["batch_stats"]}, x)
    assert not np.allclose(before, after, rtol=1e-3, atol=1e-3)


def test_lenet5_has_no_batch_stats_and_train_equals_eval():
    model = models.get("lenet5")
    x = _images((4, 28, 28, 1))
    variables = _init(model, x)
    assert set(variables) == {"params"}
    out_train, state = jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(
        variables, x
    )
    assert not state
    out_eval = jit(lambda v, x: model.apply(v, x, train=False))(variables, x)
    np.testing.assert_array_equal(out_train, out_eval)


def _tiny_mobilenet(**kw):
    return MobileNetV2(num_classes=10, settings=((1, 16, 1, 1), (6, 24, 2, 2)), **kw)


def test_mobilenet_dropout_is_off_by_default_and_needs_an_rng_when_on():
    x = _images((4, 32, 32, 3))
    plain = _tiny_mobilenet()
    dropped = _tiny_mobilenet(dropout_rate=0.5)
    variables = _init(plain, x)

    def train_step(model):
        return jit(
            lambda v, x, rngs: model.apply(v, x, train=True, mutable=["batch_stats"], rngs=rngs)
        )

    # Default: no dropout, a train step needs no 'dropout' rng.
    train_step(plain)(variables, x, {})
    with pytest.raises(Exception, match="dropout"):
        train_step(dropped)(variables, x, {})
    step = train_step(dropped)
    out_a, _ = step(variables, x, {"dropout": jax.random.key(1)})
    out_b, _ = step(variables, x, {"dropout": jax.random.key(2)})
    assert not np.allclose(out_a, out_b)
    # Eval: deterministic, no rng needed, the same function as without dropout.
    evaluate = jit(lambda v, x: dropped.apply(v, x, train=False))
    np.testing.assert_allclose(
        evaluate(variables, x), jit(lambda v, x: plain.apply(v, x, train=False))(variables, x)
    )


def test_bfloat16_computation_keeps_float32_params_stats_and_logits():
    x = _images((8, 32, 32, 3))
    f32 = models.get("resnet20")
    bf16 = models.get("resnet20", dtype=jnp.bfloat16)
    variables = _init(bf16, x)
    for leaf in jax.tree.leaves(variables):
        assert leaf.dtype == jnp.float32

    def run(model):
        return jit(
            lambda v, x: model.apply(
                v, x, train=True, mutable=["batch_stats"], capture_intermediates=True
            )
        )(variables, x)

    out16, state16 = run(bf16)
    out32, _ = run(f32)
    assert out16.dtype == jnp.float32
    assert state16["intermediates"]["stage1_block0"]["conv1"]["__call__"][0].dtype == jnp.bfloat16
    for leaf in jax.tree.leaves(state16["batch_stats"]):
        assert leaf.dtype == jnp.float32
    rel = np.linalg.norm(out16 - out32) / np.linalg.norm(out32)
    assert rel < 5e-2, rel
