"""`train_loader` and `eval_loader`: the same batches as `make_loader`, only their own arguments, and
errors that name the bad argument."""

import inspect

import numpy as np
import pytest

import hqjax.data as hd

SHARED = {"batch_size", "shard_index", "shard_count", "dataset", "normalize", "local_device_count",
          "read_threads", "worker_count", "worker_buffer_size"}
TRAIN_ONLY = {"seed", "num_epochs", "augment", "host_sharding"}


@pytest.fixture(scope="module")
def digits():
    return hd.get_dataset("digits", "train")


def first(loader, k):
    it = iter(loader)
    return [b for _, b in zip(range(k), it, strict=False)]


def assert_identical(a, b):
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            assert x[key].dtype == y[key].dtype and x[key].shape == y[key].shape
            assert x[key].tobytes() == y[key].tobytes(), key


@pytest.mark.parametrize("host_sharding", ["contiguous", "interleaved"])
@pytest.mark.parametrize("shard_index, shard_count", [(0, 1), (1, 2), (2, 3)])
def test_train_loader_gives_the_make_loader_batches(digits, host_sharding, shard_index, shard_count):
    kw = {"batch_size": 24, "seed": 7, "shard_index": shard_index, "shard_count": shard_count,
          "augment": "crop_flip", "num_epochs": 2, "host_sharding": host_sharding}
    k = 1437 // shard_count // 24 + 3  # crosses the first epoch boundary
    old, new = hd.make_loader(digits, train=True, **kw), hd.train_loader(digits, **kw)
    assert_identical(first(old, k), first(new, k))


@pytest.mark.parametrize("host_sharding", ["contiguous", "interleaved"])
@pytest.mark.parametrize("shard_index, shard_count", [(0, 1), (1, 2), (2, 3)])
def test_eval_loader_gives_the_make_loader_batches(host_sharding, shard_index, shard_count):
    test = hd.get_dataset("digits", "test")
    kw = {"batch_size": 50, "shard_index": shard_index, "shard_count": shard_count, "normalize": False}
    ignored = {"seed": 3, "augment": "crop_flip", "host_sharding": host_sharding}  # unused for evaluation
    old = list(hd.make_loader(test, train=False, **ignored, **kw))
    new = list(hd.eval_loader(test, **kw))
    assert_identical(old, new)
    assert len(new) == hd.num_batches(360, 50, train=False, shard_count=shard_count)
    assert all(b.keys() == {"image", "label", "mask"} for b in new)


def test_each_loader_takes_only_its_own_arguments(digits):
    params = lambda f: set(inspect.signature(f).parameters) - {"source"}  # noqa: E731
    assert params(hd.train_loader) == SHARED | TRAIN_ONLY
    assert params(hd.eval_loader) == SHARED
    assert params(hd.make_loader) == SHARED | TRAIN_ONLY | {"train"}
    for name in sorted(TRAIN_ONLY):
        with pytest.raises(TypeError, match=name):
            hd.eval_loader(digits, batch_size=8, **{name: None})
    assert all(inspect.getdoc(f).count(section) == 1 for f in (hd.train_loader, hd.eval_loader)
               for section in ("Args:", "Returns:", "Raises:", "Examples:"))


BAD_SHARED = [
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"batch_size": 8.0}, "batch_size must be an int"),
    ({"batch_size": True}, "batch_size must be an int"),
    ({"shard_index": 2, "shard_count": 2}, r"shard_index must be in \[0, 2\)"),
    ({"shard_index": -1}, r"shard_index must be in \[0, 1\)"),
    ({"shard_count": 0}, "shard_count must be >= 1"),
    ({"batch_size": 30, "local_device_count": 8}, "divisible by local_device_count=8"),
    ({"local_device_count": 0}, "local_device_count must be >= 1"),
    ({"worker_count": -1}, "worker_count must be >= 0"),
    ({"read_threads": -2}, "read_threads must be >= 0"),
    ({"dataset": "nope"}, "Unknown dataset"),
]
BAD_TRAIN = [
    ({"seed": -1}, r"seed must be in \[0, 4294967296\)"),
    ({"seed": 2**32}, r"seed must be in \[0, 4294967296\)"),
    ({"seed": 1.5}, "seed must be an int"),
    ({"num_epochs": 0}, "num_epochs must be >= 1"),
    ({"augment": "flip"}, "Unknown augment='flip'.*'crop_flip'"),
    ({"host_sharding": "striped"}, "Unknown host_sharding='striped'.*'interleaved'"),
    ({"batch_size": 2000}, "exceeds the 1437 training examples"),
    ({"batch_size": 600, "shard_count": 3}, "exceeds the 479 training examples of each of the 3 shards"),
    ({"batch_size": 500, "shard_count": 3, "host_sharding": "interleaved"},
     r"global batch of 1500 \(3 hosts x 500\) exceeds the 1437"),
]


@pytest.mark.parametrize("kw, match", BAD_SHARED + BAD_TRAIN)
def test_train_loader_argument_errors(digits, kw, match):
    with pytest.raises(ValueError, match=match):
        hd.train_loader(digits, **({"batch_size": 32, "shard_index": 0, "shard_count": 1} | kw))


@pytest.mark.parametrize("kw, match", BAD_SHARED)
def test_eval_loader_argument_errors(digits, kw, match):
    with pytest.raises(ValueError, match=match):
        hd.eval_loader(digits, **({"batch_size": 32, "shard_index": 0, "shard_count": 1} | kw))


def test_eval_batches_may_exceed_a_shard_and_make_loader_still_checks_training_arguments(digits):
    batches = list(hd.eval_loader(digits, batch_size=2000, shard_index=0, shard_count=1))
    assert len(batches) == 1 and int(batches[0]["mask"].sum()) == 1437
    for kw, match in BAD_TRAIN[:2] + BAD_TRAIN[3:4] + BAD_TRAIN[5:6]:
        with pytest.raises(ValueError, match=match):
            hd.make_loader(digits, batch_size=32, train=False, **kw)
    hd.make_loader(digits, batch_size=32, train=False, augment="flip")  # ignored for evaluation, as before


def test_sources_without_metadata_or_records():
    bare = hd.ArraySource(np.zeros((8, 8, 8, 1), np.uint8), np.zeros(8))
    empty = hd.ArraySource(np.zeros((0, 8, 8, 1), np.uint8), np.zeros(0), dataset_info=hd.info("digits"))
    for make in (hd.train_loader, hd.eval_loader):
        with pytest.raises(ValueError, match="pass dataset="):
            make(bare, batch_size=4)
        with pytest.raises(ValueError, match="is empty"):
            make(empty, batch_size=4)
        assert next(iter(make(bare, batch_size=4, dataset="digits")))["image"].shape == (4, 8, 8, 1)
