"""grain loaders: determinism, checkpointable iterators, per-host sharding, eval coverage, errors."""

import json
import os
import subprocess
import sys
import textwrap

import grain
import numpy as np
import pytest

import hqjax.data as hd


@pytest.fixture(scope="module")
def digits():
    return hd.get_dataset("digits", "train")


def id_source(n, size=4):
    """n records whose label is their index (and whose image encodes it), to track every example."""
    images = (np.arange(n, dtype=np.int64) % 256).astype(np.uint8)[:, None, None, None] * np.ones(
        (1, size, size, 1), np.uint8
    )
    return hd.ArraySource(images, np.arange(n), name=f"ids{n}", dataset_info=hd.info("digits"))


def take(iterator, k):
    return [next(iterator) for _ in range(k)]


def assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def loader(src, **kw):
    kw = {
        "batch_size": 64,
        "train": True,
        "seed": 0,
        "augment": "crop_flip",
        "shard_index": 0,
        "shard_count": 1,
    } | kw
    return hd.make_loader(src, **kw)


def test_train_batches(digits):
    batches = list(loader(digits, num_epochs=1))
    assert len(batches) == 1437 // 64 == hd.num_batches(1437, 64, train=True)
    for b in batches:
        assert set(b) == {"image", "label"}
        assert b["image"].shape == (64, 8, 8, 1) and b["image"].dtype == np.float32
        assert b["label"].shape == (64,) and b["label"].dtype == np.int32
    assert isinstance(loader(digits), grain.IterDataset)


def test_same_seed_same_batches_different_seed_differs(digits):
    a = take(iter(loader(digits, seed=5)), 3)
    b = take(iter(loader(digits, seed=5)), 3)
    c = take(iter(loader(digits, seed=6)), 3)
    assert_batches_equal(a, b)
    assert not np.array_equal(a[0]["label"], c[0]["label"])
    assert not np.array_equal(a[0]["image"], c[0]["image"])


def test_each_epoch_is_a_new_permutation():
    src = id_source(64)
    labels = np.concatenate([b["label"] for b in loader(src, batch_size=16, num_epochs=3, augment="none")])
    epochs = labels.reshape(3, 64)  # 4 batches of 16 per epoch: no batch straddles two epochs
    for e in epochs:
        assert sorted(e.tolist()) == list(range(64))  # every example exactly once per epoch
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    assert not np.array_equal(epochs[0], np.arange(64))  # shuffled


def test_augmentation_changes_images_not_labels():
    src = id_source(32, size=8)
    plain = list(loader(src, batch_size=8, num_epochs=1, augment="none", normalize=False))
    augmented = list(loader(src, batch_size=8, num_epochs=1, augment="crop_flip", normalize=False))
    for p, a in zip(plain, augmented, strict=True):
        np.testing.assert_array_equal(p["label"], a["label"])  # same order: shuffle seed is independent
    assert any(not np.array_equal(p["image"], a["image"]) for p, a in zip(plain, augmented, strict=True))


@pytest.mark.parametrize("train", [True, False])
def test_resume_mid_epoch_exactly(digits, train):
    """Save the iterator state after k batches; a fresh loader restored from it continues identically."""
    make = lambda: loader(digits, train=train)  # noqa: E731
    it = iter(make())
    k, more = (30, 20) if train else (10, 13)  # train: 22 batches per epoch, so this crosses an epoch
    take(it, k)
    state = json.loads(json.dumps(it.get_state()))  # the state is plain JSON
    reference = list(it)[:more] if not train else take(it, more)
    resumed = iter(make())
    resumed.set_state(state)
    got = list(resumed) if not train else take(resumed, more)
    assert_batches_equal(got, reference)
    if not train:
        assert len(got) == hd.num_batches(1437, 64, train=False) - k


def test_resume_through_orbax(digits, tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    it = iter(loader(digits, seed=3))
    take(it, 7)
    manager = ocp.CheckpointManager(
        tmp_path / "ckpt", item_handlers={"data": grain.checkpoint.CheckpointHandler()}
    )
    manager.save(7, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
    manager.wait_until_finished()
    manager.close()
    reference = take(it, 5)
    restored = iter(loader(digits, seed=3))
    manager = ocp.CheckpointManager(
        tmp_path / "ckpt", item_handlers={"data": grain.checkpoint.CheckpointHandler()}
    )
    manager.restore(7, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(restored)))
    manager.close()
    assert (tmp_path / "ckpt" / "7" / "data" / "process_0-of-1.json").is_file()
    assert_batches_equal(take(restored, 5), reference)


@pytest.mark.parametrize("n", [96, 101])
def test_train_shards_disjoint_and_covering(n):
    src = id_source(n)
    shards = [
        np.concatenate(
            [b["label"] for b in loader(src, batch_size=8, num_epochs=1, shard_index=i, shard_count=2)]
        )
        for i in range(2)
    ]
    per_shard = n // 2
    assert [len(s) for s in shards] == [per_shard // 8 * 8] * 2  # equal work on every host
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
    # each host reads only its own contiguous half of the records
    assert set(shards[0].tolist()) <= set(range(per_shard)) and set(shards[1].tolist()) <= set(
        range(per_shard, n)
    )
    if n == 96:
        assert sorted(np.concatenate(shards).tolist()) == list(range(n))


def test_shards_draw_different_augmentations():
    """Same image everywhere: if both hosts drew the same crops and flips, their batches would be equal."""
    image = np.arange(64, dtype=np.uint8).reshape(1, 8, 8, 1)
    same = hd.ArraySource(np.tile(image, (32, 1, 1, 1)), np.zeros(32))
    kw = {"batch_size": 16, "num_epochs": 1, "shard_count": 2, "dataset": "digits"}
    a, b = (next(iter(loader(same, shard_index=i, **kw)))["image"] for i in range(2))
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("n, shard_count, batch", [(37, 3, 4), (360, 2, 128), (5, 4, 2), (16, 2, 8)])
def test_eval_covers_every_example_once(n, shard_count, batch):
    src = id_source(n)
    seen, steps = [], set()
    for i in range(shard_count):
        batches = list(loader(src, train=False, batch_size=batch, shard_index=i, shard_count=shard_count))
        steps.add(len(batches))
        for b in batches:
            assert b["image"].shape == (batch, 4, 4, 1) and b["mask"].dtype == bool
            seen.extend(b["label"][b["mask"]].tolist())
    assert steps == {hd.num_batches(n, batch, train=False, shard_count=shard_count)}  # same on every host
    assert sorted(seen) == list(range(n))


def test_eval_order_and_padding():
    batches = list(hd.make_loader(id_source(10), batch_size=4, train=False, shard_index=0, shard_count=1))
    assert [b["mask"].tolist() for b in batches] == [[True] * 4, [True] * 4, [True, True, False, False]]
    assert np.concatenate([b["label"] for b in batches])[:10].tolist() == list(range(10))


def test_eval_is_deterministic_and_unaugmented(digits):
    test = hd.get_dataset("digits", "test")
    a = list(hd.make_loader(test, batch_size=100, train=False, seed=0, augment="crop_flip", normalize=False))
    b = list(hd.make_loader(test, batch_size=100, train=False, seed=9))
    np.testing.assert_array_equal(np.concatenate([x["image"] for x in a])[:360], test.images / 16.0)
    np.testing.assert_array_equal(a[0]["label"], b[0]["label"])


def test_dataset_and_augment_arguments():
    src = hd.ArraySource(np.zeros((8, 8, 8, 1), np.uint8), np.zeros(8))
    with pytest.raises(ValueError, match="pass dataset="):
        hd.make_loader(src, batch_size=4, train=True)
    for augment in (False, True, None, "none", "crop_flip_reflect", "inception"):
        b = next(iter(hd.make_loader(src, batch_size=4, train=True, dataset="digits", augment=augment)))
        assert b["image"].shape == (4, 8, 8, 1)
    with pytest.raises(ValueError, match="Unknown augment='flip'.*'crop_flip'"):
        hd.make_loader(src, batch_size=4, train=True, dataset="digits", augment="flip")


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"batch_size": -8}, "batch_size must be >= 1"),
        ({"batch_size": 8.0}, "batch_size must be an int"),
        ({"batch_size": 2000}, "exceeds the 1437 training examples"),
        ({"batch_size": 600, "shard_count": 3}, "exceeds the 479 training examples of each of the 3 shards"),
        ({"batch_size": 30, "local_device_count": 8}, "divisible by local_device_count=8"),
        ({"shard_index": 2, "shard_count": 2}, r"shard_index must be in \[0, 2\)"),
        ({"shard_count": 0}, "shard_count must be >= 1"),
        ({"seed": -1}, r"seed must be in \[0, 4294967296\)"),
        ({"num_epochs": 0}, "num_epochs must be >= 1"),
    ],
)
def test_bad_arguments(digits, kw, match):
    with pytest.raises(ValueError, match=match):
        loader(digits, **kw)


def test_local_batch_size():
    assert hd.local_batch_size(256, process_count=4, local_device_count=8) == 64
    with pytest.raises(ValueError, match="divisible by the number of devices .* multiple of 8"):
        hd.local_batch_size(100, process_count=1, local_device_count=8)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        hd.local_batch_size(0, process_count=1, local_device_count=1)


def test_workers_need_parsed_flags():
    """worker_count > 0 before absl flags are parsed raises. Runs in a fresh subprocess, where no other
    test can have parsed the flags."""
    code = textwrap.dedent(
        """
        import pytest
        from absl import flags
        import hqjax.data as hd
        assert not flags.FLAGS.is_parsed()
        digits = hd.get_dataset("digits", "train")
        kw = dict(batch_size=64, train=True, seed=0, augment="crop_flip", shard_index=0, shard_count=1)
        with pytest.raises(RuntimeError, match="absl.app.run"):
            hd.make_loader(digits, worker_count=2, **kw)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert out.returncode == 0, out.stderr


@pytest.mark.slow
def test_worker_processes_match_and_resume():
    """worker_count=2 (spawned processes): covers the data and resumes exactly. Runs in a subprocess."""
    code = textwrap.dedent(
        """
        import json, numpy as np
        from absl import flags
        import hqjax.data as hd
        if __name__ == "__main__":
            flags.FLAGS.mark_as_parsed()
            src = hd.get_dataset("digits", "train")
            kw = dict(batch_size=32, train=True, seed=0, num_epochs=1, worker_count=2, augment="crop_flip")
            make = lambda: hd.make_loader(src, shard_index=0, shard_count=1, **kw)
            it = iter(make())
            first = [next(it) for _ in range(5)]
            state = it.get_state()
            rest = list(it)
            resumed = iter(make())
            resumed.set_state(state)
            again = list(resumed)
            same = len(again) == len(rest)
            same = same and all(np.array_equal(a["image"], b["image"]) for a, b in zip(again, rest))
            print(json.dumps({"n": len(first + rest), "resumed": same}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["n"] == 1437 // 32 and result["resumed"]
