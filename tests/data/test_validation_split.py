"""The validation split: held out of the training split, disjoint from it, fixed, and the test split
is never opened when it is used."""

import ml_collections
import numpy as np
import pytest

import hqjax.data as hd
from hqjax.train import config as train_config
from hqjax.train.loop import eval_sources
from tests.data.test_idx import write_split


def _toy(n=50):
    images = np.arange(n * 4, dtype=np.uint8).reshape(n, 2, 2, 1)
    return hd.ArraySource(images, np.arange(n) % 10, name="toy")


def test_split_is_disjoint_covers_the_source_and_is_fixed():
    src = _toy()
    train, val = hd.split_validation(src, 12)
    t, v = set(train.indices.tolist()), set(val.indices.tolist())
    assert len(val) == 12 and len(train) == 38
    assert not t & v and t | v == set(range(50))
    again = hd.split_validation(src, 12)  # the same images for every run and seed
    np.testing.assert_array_equal(again[1].indices, val.indices)
    assert not np.array_equal(val.indices, np.arange(12))  # a random choice, not the first images
    for i in (0, 5, 11):  # views: each example is the source's own
        np.testing.assert_array_equal(val[i]["image"], src[int(val.indices[i])]["image"])


@pytest.mark.parametrize("size", [0, 50, -3, 2.5, True])
def test_bad_sizes_say_what_is_possible(size):
    with pytest.raises(ValueError, match=r"choose an integer in \[1, 49\]"):
        hd.split_validation(_toy(), size)


def _config(data_dir, validation_split):
    c = ml_collections.ConfigDict({"dataset": "mnist_idx", "data_dir": str(data_dir),
                                   "validation_split": validation_split})
    return c


def test_validation_runs_never_open_the_test_split(tmp_path):
    """A directory with the training files only: a validation run finds everything it needs (the
    test split is not read), a test-split run fails on the missing file."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 40, dtype=np.uint8)
    write_split(tmp_path, "train", images, labels)
    train, val = eval_sources(_config(tmp_path, 10))
    assert len(train) == 30 and len(val) == 10
    seen = {int(train[i]["label"]) for i in range(30)}, {int(val[i]["label"]) for i in range(10)}
    assert seen[0] and seen[1]
    ids = np.concatenate([train.indices, val.indices])
    assert sorted(ids.tolist()) == list(range(40))  # every example is a training example, once
    with pytest.raises(Exception, match="t10k"):
        eval_sources(_config(tmp_path, 0))


@pytest.mark.parametrize("value", [-1, -10000])
def test_config_rejects_bad_validation_split(value):
    from configs.default import get_config

    c = get_config("twn")
    c.validation_split = value
    with pytest.raises(ValueError, match="validation_split"):
        train_config.validate(c)
