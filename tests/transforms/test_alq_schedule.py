"""`hqjax.transforms.alq.ALQSchedule`: validated once, the official pipeline's epochs, presets as
overrides of the default equal to the argument lists they replace."""

import dataclasses

import jax
import ml_collections
import numpy as np
import pytest

import hqjax
from hqjax.transforms.alq import ALQ_DEFAULT, ALQSchedule, alq_pipeline


def _old_epochs(learning_rate=1e-3, rounds=4, epoch_basis=20, ld_basis=0.8, epoch_coord=10, ld_coord=0.8,
                epoch_prune=1, epoch_ste=50, ld_ste=0.95, epoch_post=20, ld_post=0.9, post_learning_rate=None,
                **_):
    """The pipeline's epoch list as the replaced `alq_pipeline` built it (spec 1.5)."""
    epochs = []
    for r in range(1, rounds + 1):
        lr = learning_rate
        for _ in range(epoch_basis):
            lr *= ld_basis
            epochs.append(("basis", lr, r))
        for _ in range(epoch_coord):
            lr *= ld_coord
            epochs.append(("coordinate", lr, r))
        epochs.extend(("prune", lr, r) for _ in range(epoch_prune))
    lr = learning_rate
    for _ in range(epoch_ste):
        lr *= ld_ste
        epochs.append(("ste", lr, 0))
    if post_learning_rate is not None:
        lr = post_learning_rate
    for _ in range(epoch_post):
        lr *= ld_post
        epochs.append(("coordinate", lr, 0))
    return tuple(epochs)


@pytest.mark.parametrize("field, value", [
    ("learning_rate", 0.0), ("learning_rate", "fast"), ("rounds", -1), ("rounds", 2.0), ("epoch_basis", True),
    ("epoch_prune", -2), ("ld_basis", 1.5), ("ld_coord", 0.0), ("ld_ste", float("nan")), ("ld_post", -0.1),
    ("prune_ratio", -0.5), ("prune_ratio", float("inf")), ("post_learning_rate", 0.0),
])
def test_every_field_is_validated_once_when_built(field, value):
    with pytest.raises(ValueError, match=field):
        ALQSchedule(**{field: value})
    with pytest.raises(ValueError, match=field):
        ALQ_DEFAULT.replace(**{field: value})


def test_bad_schedules_say_what_is_wrong():
    with pytest.raises(ValueError, match="no epoch"):
        ALQSchedule(rounds=0, epoch_ste=0, epoch_post=0)
    with pytest.raises(ValueError, match=r"Unknown ALQ schedule field\(s\) \['round'\]"):
        ALQ_DEFAULT.replace(round=3)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        ALQ_DEFAULT.pipeline(0)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        alq_pipeline(0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ALQ_DEFAULT.rounds = 3


def test_fields_are_stored_as_python_numbers():
    s = ALQSchedule(learning_rate=np.float32(0.5), rounds=np.int64(2), ld_basis=1)
    assert type(s.rounds) is int and type(s.learning_rate) is float and type(s.ld_basis) is float
    assert s == ALQSchedule(learning_rate=0.5, rounds=2, ld_basis=1.0)
    assert ALQSchedule() == ALQ_DEFAULT and hash(ALQSchedule()) == hash(ALQ_DEFAULT)


@pytest.mark.parametrize("kw", [
    {}, {"rounds": 2, "epoch_basis": 10, "epoch_coord": 5, "epoch_ste": 10, "epoch_post": 5},
    {"learning_rate": 2e-4, "rounds": 5, "epoch_basis": 10, "epoch_coord": 5, "ld_coord": 0.6,
     "prune_ratio": 0.15, "epoch_ste": 80, "post_learning_rate": 5e-6},
    {"rounds": 0, "epoch_ste": 1, "epoch_post": 0}, {"epoch_prune": 0},
])
def test_epochs_and_schedules_equal_the_replaced_pipeline(kw):
    s = ALQ_DEFAULT.replace(**kw)
    assert s.epochs == _old_epochs(**kw)
    assert s.num_epochs == len(s.epochs)
    assert s.prune_epochs == {e for e, (m, _, _) in enumerate(s.epochs) if m == "prune"}
    pipe, old = s.pipeline(7), alq_pipeline(7, **kw)
    assert pipe.epochs == old.epochs and pipe.total_steps == 7 * s.num_epochs
    steps = np.arange(0, pipe.total_steps + 9)
    for name in ("mode", "learning_rate", "prune_rate"):
        np.testing.assert_array_equal(getattr(pipe, name)(steps), getattr(old, name)(steps))
    rate = kw.get("prune_ratio", 0.8) / (7 * s.epoch_prune) if s.epoch_prune else 0.0
    np.testing.assert_allclose(pipe.prune_rate(steps), np.where(pipe.mode(steps) == 3, rate, 0.0),
                               rtol=1e-6)


def test_split_and_overrides():
    schedule, rest = ALQSchedule.split({"rounds": 2, "top_k": 0.2, "learning_rate": 0.1, "seed": 3})
    assert schedule == ALQSchedule(rounds=2, learning_rate=0.1) and rest == {"top_k": 0.2, "seed": 3}
    assert schedule.overrides() == {"rounds": 2, "learning_rate": 0.1}
    assert ALQ_DEFAULT.overrides() == {}


# The presets as they were written before they became overrides of `ALQ_DEFAULT` (argument lists).
OLD_PRESETS = {
    "lenet5": (1e-3, 128, {
        "groups": (("conv1|conv2", "kernelwise"), ("fc1", "subchannelwise", 2),
                   ("head", "subchannelwise", 1)),
        "num_bases": 6, "rounds": 4, "epoch_basis": 20, "ld_basis": 0.8, "epoch_coord": 10, "ld_coord": 0.8,
        "epoch_prune": 1, "prune_ratio": 0.8, "top_k": 0.005, "epoch_ste": 50,
        "ld_ste": 0.95, "epoch_post": 20, "ld_post": 0.9}),
    "vgg_small": (1e-3, 128, {
        "groups": (("conv1/", "channelwise"), ("conv", "pixelwise"), ("fc1", "subchannelwise", 16),
                   ("fc2|head", "subchannelwise", 2)),
        "num_bases": 6, "rounds": 5, "epoch_basis": 20, "ld_basis": 0.8, "epoch_coord": 10, "ld_coord": 0.8,
        "epoch_prune": 1, "prune_ratio": 0.4, "top_k": 0.002, "epoch_ste": 50,
        "ld_ste": 0.95, "epoch_post": 20, "ld_post": 0.9}),
    "mnist_channelwise": (1e-3, 128, {
        "groups": (), "num_bases": 6, "rounds": 4, "epoch_basis": 20, "ld_basis": 0.8, "epoch_coord": 10,
        "ld_coord": 0.8, "epoch_prune": 1, "prune_ratio": 0.8, "top_k": 0.005, "epoch_ste": 50,
        "ld_ste": 0.95, "epoch_post": 20, "ld_post": 0.9}),
    "cifar_resnet": (1e-3, 128, {
        "groups": (("conv_init", "channelwise"), ("head", "subchannelwise", 2), ("", "pixelwise")),
        "num_bases": 6, "rounds": 5, "epoch_basis": 20, "ld_basis": 0.8, "epoch_coord": 10, "ld_coord": 0.8,
        "epoch_prune": 1, "prune_ratio": 0.4, "top_k": 0.002, "epoch_ste": 50,
        "ld_ste": 0.95, "epoch_post": 20, "ld_post": 0.9}),
    "resnet18": (2e-4, 256, {
        "groups": (("conv_init", "channelwise"), ("head", "subchannelwise", 2), ("", "pixelwise")),
        "num_bases": 8, "rounds": 5, "epoch_basis": 10, "ld_basis": 0.8, "epoch_coord": 5, "ld_coord": 0.6,
        "epoch_prune": 1, "prune_ratio": 0.15, "top_k": 0.0005, "epoch_ste": 80, "ld_ste": 0.95,
        "epoch_post": 20, "ld_post": 0.9, "post_learning_rate": 5e-6}),
}


def test_presets_as_overrides_equal_the_old_argument_lists():
    from configs.common import ALQ_PRESETS

    assert set(ALQ_PRESETS) == set(OLD_PRESETS)
    for name, (lr, batch, kwargs) in OLD_PRESETS.items():
        preset = ALQ_PRESETS[name]
        assert (preset["learning_rate"], preset["batch_size"]) == (lr, batch)
        assert preset["kwargs"] == kwargs and list(preset["kwargs"]) == list(kwargs)
        assert all(type(preset["kwargs"][k]) is type(v) for k, v in kwargs.items())
        sched, _ = ALQSchedule.split({"learning_rate": lr, **kwargs})
        assert sched == ALQ_DEFAULT.replace(**sched.overrides()) and sched.epochs == _old_epochs(lr, **kwargs)
    assert ALQSchedule.split({"learning_rate": 1e-3, **OLD_PRESETS["lenet5"][2]})[0] == ALQ_DEFAULT


def test_the_training_program_builds_the_schedule_once_from_the_config():
    from configs.common import ALQ_PRESETS, with_alq
    from configs.default import get_config
    from hqjax.train import optim

    c = with_alq(get_config("hq"), "vgg_small")
    c.method_kwargs.rounds = 2
    schedule, rest = optim.alq_settings(c)
    assert schedule == ALQ_DEFAULT.replace(rounds=2, prune_ratio=0.4, learning_rate=c.learning_rate)
    assert rest["groups"] == ALQ_PRESETS["vgg_small"]["kwargs"]["groups"] and rest["seed"] == c.seed
    assert rest["top_k"] == 0.002 and isinstance(rest["selection"], hqjax.Selection)
    assert optim.alq_schedule(c) == schedule and optim.alq_num_epochs(c) == schedule.num_epochs == 132
    c.method_kwargs = ml_collections.ConfigDict({"epoch_basis": 1.5})
    with pytest.raises(ValueError, match="epoch_basis"):
        optim.alq_schedule(c)


def test_alq_takes_a_schedule_or_overrides():
    s = ALQ_DEFAULT.replace(rounds=1, epoch_basis=1, epoch_coord=1, epoch_ste=1, epoch_post=1)
    params = {"Dense_0": {"kernel": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)}}
    a = hqjax.alq(5, s, num_bases=2).init(params)
    b = hqjax.alq(5, rounds=1, epoch_basis=1, epoch_coord=1, epoch_ste=1, epoch_post=1,
                  num_bases=2).init(params)
    c = hqjax.alq(5, ALQ_DEFAULT.replace(rounds=3), rounds=1, epoch_basis=1, epoch_coord=1, epoch_ste=1,
                  epoch_post=1, num_bases=2).init(params)
    for x, y in ((a, b), (a, c)):
        for u, v in zip(jax.tree.leaves(x), jax.tree.leaves(y), strict=True):
            np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match="round"):
        hqjax.alq(5, round=2)
