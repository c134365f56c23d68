"""End to end on a small real problem: an MLP on scikit-learn's 8x8 digits, 300 steps per method.

Model: Dense(64, no bias) -> BatchNorm -> ReLU -> Dense(10). Both kernels are quantized (first and last
layer included); the classifier has no BatchNorm after it, so under the sphere methods it keeps one FP
scale per unit (``scaled='Dense_1'``, spec section 8 item 3). Optimizer: SGD, nesterov momentum 0.9,
cosine learning rate from 0.1 (spec section 8 item 11). PTQ, HQ and HLA-TQ prune to 50 % per unit.

Shown: the loss falls; the forward weights are exactly ternary per unit; the sparsity equals the target
exactly; under HQ and HLA-TQ the mean cosine between latent and ternary weights rises towards 1 and ends
higher than under TWN; the ternary nets' test accuracy is within a few points of full precision.

Print the table with ``python -m tests.test_digits``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import optax
import pytest

import hqjax

STEPS = 300
BATCH = 128
SPARSITY = 0.5
LOG_EVERY = 25


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = nn.Dense(64, use_bias=False)(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
        return nn.Dense(10)(x)


def _data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    return train_test_split(x, y.astype(np.int32), test_size=0.3, random_state=0)


def _recipes():
    inner = lambda: optax.sgd(optax.cosine_decay_schedule(0.1, STEPS), momentum=0.9, nesterov=True)
    sphere = dict(total_steps=STEPS, sparsity=SPARSITY, scaled="Dense_1")
    return {
        "fp": inner(),
        "twn": hqjax.twn(inner()),
        "ttq": hqjax.ttq(inner()),
        "ptq": hqjax.ptq(inner(), **sphere),
        "hq": hqjax.hq(inner(), **sphere),
        # the regularizer switched on (its default is 0): the cosine test below is about its pull
        "hla_tq": hqjax.hla_tq(inner(), **sphere, reg_strength=0.1),
    }


def train(name: str, tx: optax.GradientTransformation, data) -> dict:
    xtr, xte, ytr, yte = data
    model = MLP()
    variables = model.init(jax.random.key(0), xtr[:2], train=False)
    params, batch_stats = variables["params"], variables["batch_stats"]
    quantized = name != "fp"
    forward = hqjax.forward_params if quantized else (lambda p, s: p)

    def loss_fn(params, batch_stats, opt_state, x, y):
        logits, updates = model.apply(
            {"params": forward(params, opt_state), "batch_stats": batch_stats},
            x,
            train=True,
            mutable=["batch_stats"],
        )
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updates["batch_stats"]

    @jax.jit
    def step(params, batch_stats, opt_state, x, y):
        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, batch_stats, opt_state, x, y
        )
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), batch_stats, opt_state, loss

    summarize = jax.jit(hqjax.summarize)
    opt_state = tx.init(params)
    rng = np.random.default_rng(0)
    losses, cosines = [], []
    for t in range(STEPS):
        if quantized and t % LOG_EVERY == 0:
            cosines.append(float(summarize(params, opt_state)["quantizer/cosine"]))
        idx = rng.integers(0, len(xtr), BATCH)
        params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state, xtr[idx], ytr[idx])
        losses.append(float(loss))
    qparams = forward(params, opt_state)
    logits = model.apply({"params": qparams, "batch_stats": batch_stats}, xte, train=False)
    out = dict(
        losses=np.array(losses), accuracy=float(np.mean(np.argmax(logits, -1) == yte)), qparams=qparams
    )
    if quantized:
        stats = {k: float(v) for k, v in summarize(params, opt_state).items()}
        cosines.append(stats["quantizer/cosine"])
        out.update(cosines=np.array(cosines), stats=stats, opt_state=opt_state)
    return out


@pytest.fixture(scope="module")
def results():
    data = _data()
    return {name: train(name, tx, data) for name, tx in _recipes().items()}


@pytest.mark.parametrize("name", ["fp", "twn", "ttq", "ptq", "hq", "hla_tq"])
def test_loss_falls(results, name):
    losses = results[name]["losses"]
    assert losses[-20:].mean() < 0.25 * losses[:20].mean()


@pytest.mark.parametrize("name", ["twn", "ptq", "hq", "hla_tq"])
def test_forward_weights_exactly_ternary_per_unit(results, name):
    for layer in ("Dense_0", "Dense_1"):
        k = np.asarray(results[name]["qparams"][layer]["kernel"])
        for j in range(k.shape[1]):
            mags = np.unique(np.abs(k[:, j][k[:, j] != 0]))
            assert mags.size == 1, f"{name} {layer} unit {j}: magnitudes {mags}"


def test_ttq_forward_has_its_two_learned_scales(results):
    state = hqjax.find_quantizer_states(results["ttq"]["opt_state"])
    k = np.asarray(results["ttq"]["qparams"]["Dense_0"]["kernel"])
    wp, wn = (np.asarray(x)[0] for x in state.ttq.scales["Dense_0"]["kernel"])
    for j in range(k.shape[1]):
        assert set(np.unique(k[:, j])) <= {0.0, np.float32(wp[j]), np.float32(-wn[j])}


@pytest.mark.parametrize("name", ["ptq", "hq", "hla_tq"])
def test_sparsity_equals_the_target_exactly(results, name):
    for layer in ("Dense_0", "Dense_1"):
        k = np.asarray(results[name]["qparams"][layer]["kernel"])
        np.testing.assert_array_equal((k == 0).sum(0), int(np.floor(SPARSITY * k.shape[0] + 0.5)))
        assert results[name]["stats"][f"{layer}/kernel/sparsity"] == SPARSITY


@pytest.mark.parametrize("name", ["hq", "hla_tq"])
def test_cosine_rises_towards_one_and_beats_twn(results, name):
    cos = results[name]["cosines"]
    assert cos.max() > 0.98, cos
    assert cos[-1] > cos[0] + 0.05, cos
    assert cos[-1] > results["twn"]["cosines"][-1], (cos[-1], results["twn"]["cosines"][-1])


@pytest.mark.parametrize("name", ["twn", "ttq", "ptq", "hq", "hla_tq"])
def test_ternary_accuracy_close_to_full_precision(results, name):
    assert results[name]["accuracy"] >= results["fp"]["accuracy"] - 0.04


def main() -> None:
    data = _data()
    print(f"digits MLP, {STEPS} steps, batch {BATCH}, SGD nesterov cosine lr 0.1; sparsity target {SPARSITY}")
    print(
        f"{'method':<8}{'test acc':>10}{'final loss':>12}{'cos start':>11}{'cos max':>9}{'cos end':>9}"
        f"{'sparsity':>10}"
    )
    for name, tx in _recipes().items():
        r = train(name, tx, data)
        loss = r["losses"][-20:].mean()
        if name == "fp":
            print(f"{name:<8}{r['accuracy']:>10.4f}{loss:>12.4f}")
            continue
        c = r["cosines"]
        sp = r["stats"]["quantizer/sparsity"]
        print(
            f"{name:<8}{r['accuracy']:>10.4f}{loss:>12.4f}{c[0]:>11.4f}{c.max():>9.4f}{c[-1]:>9.4f}{sp:>10.4f}"
        )


if __name__ == "__main__":
    main()
