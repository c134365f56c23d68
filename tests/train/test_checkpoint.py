"""Orbax checkpoints of a run: round trip, keep-N, config identity checks, unreadable checkpoints."""

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hqjax.train.checkpoint import Checkpointer, CheckpointMismatchError
from hqjax.train.steps import TrainState
from tests.helpers import assert_trees_all_close

CONFIG = {"model": "resnet20", "method": "hq", "dataset": "digits", "num_classes": 10, "model_kwargs": {},
          "learning_rate": 0.1}


def _state(seed=0):
    rng = np.random.default_rng(seed)
    return TrainState(
        step=jnp.asarray(7, jnp.int32),
        params={"conv": {"kernel": jnp.asarray(rng.normal(size=(3, 3, 2, 4)), jnp.float32)}},
        batch_stats={"bn": {"mean": jnp.asarray(rng.normal(size=(4,)), jnp.float32)}},
        opt_state=({"mu": jnp.asarray(rng.normal(size=(3, 3, 2, 4)), jnp.float32)}, jnp.asarray(3)),
        rng=jax.random.PRNGKey(seed),
    )


def test_round_trip_restores_state_iterator_and_step(tmp_path):
    ck = Checkpointer(str(tmp_path), max_to_keep=2)
    assert ck.restore(_state(), CONFIG) is None
    state = _state(1)
    ck.save(7, state, {"position": 123}, CONFIG)
    ck.wait()
    step, restored, data_state = ck.restore(_state(0), CONFIG)
    ck.close()
    assert step == 7 and data_state == {"position": 123}
    assert_trees_all_close(restored, state, rtol=0)


def test_keeps_only_the_newest(tmp_path):
    ck = Checkpointer(str(tmp_path), max_to_keep=2, async_save=False)
    for s in (1, 2, 3):
        ck.save(s, _state(s), {}, CONFIG)
    ck.close()
    assert sorted(int(d) for d in os.listdir(ck.directory) if d.isdigit()) == [2, 3]


@pytest.mark.parametrize("field,value", [("model", "resnet56"), ("method", "ptq"), ("dataset", "mnist")])
def test_checkpoint_of_another_model_or_method_is_refused(tmp_path, field, value):
    ck = Checkpointer(str(tmp_path), async_save=False)
    ck.save(1, _state(), {}, CONFIG)
    other = dict(CONFIG, **{field: value})
    with pytest.raises(CheckpointMismatchError, match=f"{field}: checkpoint has"):
        ck.restore(_state(), other)
    # a non-identity field (learning rate) may change on resume
    assert ck.restore(_state(), dict(CONFIG, learning_rate=0.01)) is not None
    ck.close()


@pytest.mark.parametrize(
    "damage", ["remove_state", "truncate_files", "flip_bytes", "empty_dir", "no_metadata"]
)
def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, damage, caplog):
    ck = Checkpointer(str(tmp_path), async_save=False)
    ck.save(1, _state(1), {"position": 1}, CONFIG)
    ck.save(2, _state(2), {"position": 2}, CONFIG)
    step_dir = os.path.join(ck.directory, "2")
    if damage == "remove_state":
        shutil.rmtree(os.path.join(step_dir, "state"))
    elif damage == "empty_dir":
        shutil.rmtree(step_dir)
        os.makedirs(step_dir)
    elif damage == "no_metadata":
        for name in os.listdir(step_dir):
            if not os.path.isdir(os.path.join(step_dir, name)):
                os.remove(os.path.join(step_dir, name))
        shutil.rmtree(os.path.join(step_dir, "config"))
    elif damage == "flip_bytes":
        for root, _, files in os.walk(os.path.join(step_dir, "state")):
            for f in files:
                path = os.path.join(root, f)
                data = bytearray(open(path, "rb").read())
                for i in range(0, len(data), 7):
                    data[i] ^= 0xFF
                open(path, "wb").write(bytes(data))
    else:
        for root, _, files in os.walk(os.path.join(step_dir, "state")):
            for f in files:
                with open(os.path.join(root, f), "r+b") as fh:
                    fh.truncate(max(os.path.getsize(os.path.join(root, f)) // 2, 0))
    with caplog.at_level("WARNING"):
        step, restored, data_state = ck.restore(_state(0), CONFIG)
    assert step == 1 and data_state == {"position": 1}
    assert_trees_all_close(restored, _state(1), rtol=0)
    assert "The checkpoint of step 2 cannot be read" in caplog.text and "resumed from step 1" in caplog.text
    assert not os.path.exists(step_dir)  # moved aside, not deleted:
    aside = [d for d in os.listdir(ck.directory) if d.startswith("2.unreadable-")]
    assert len(aside) == 1 and aside[0] in caplog.text
    assert os.path.isdir(os.path.join(ck.directory, aside[0]))
    assert damage == "empty_dir" or os.listdir(os.path.join(ck.directory, aside[0]))  # what was there
    # the run goes on past the damaged step: saving step 2 again works and is what a rerun restores
    ck.save(2, _state(3), {"position": 3}, CONFIG)
    ck.wait()
    step, restored, data_state = ck.restore(_state(0), CONFIG)
    assert step == 2 and data_state == {"position": 3}
    assert_trees_all_close(restored, _state(3), rtol=0)
    ck.close()
    fresh = Checkpointer(str(tmp_path), async_save=False)  # the renamed directory is no step
    assert fresh.latest_step() == 2 and sorted(fresh._manager.all_steps()) == [1, 2]
    fresh.close()


def test_no_readable_checkpoint_is_a_clear_error(tmp_path):
    ck = Checkpointer(str(tmp_path), async_save=False)
    ck.save(1, _state(), {}, CONFIG)
    shutil.rmtree(os.path.join(ck.directory, "1", "state"))
    with pytest.raises(ValueError, match="No checkpoint in .* can be read"):
        ck.restore(_state(), CONFIG)
    ck.close()
