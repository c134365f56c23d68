"""Meshes, batch sharding and pmap helpers on the 8 forced CPU devices."""

import jax
import numpy as np
import pytest

from hqjax.train import parallel


def test_cpu_device_flags_adds_count_and_keeps_user_setting():
    assert parallel.cpu_device_flags(4, flags="") == "--xla_force_host_platform_device_count=4"
    got = parallel.cpu_device_flags(4, flags="--xla_foo")
    assert got == "--xla_foo --xla_force_host_platform_device_count=4"
    user = "--xla_force_host_platform_device_count=3"
    assert parallel.cpu_device_flags(8, flags=user) == user
    with pytest.raises(ValueError, match="num_devices"):
        parallel.cpu_device_flags(0, flags="")


def test_global_batch_is_sharded_on_data_axis(devices):
    mesh = parallel.make_mesh()
    batch = {"image": np.arange(16 * 3, dtype=np.float32).reshape(16, 3), "label": np.arange(16)}
    g = parallel.global_batch(batch, mesh)
    assert g["image"].sharding.spec == jax.sharding.PartitionSpec("data")
    assert len(g["image"].addressable_shards) == 8
    np.testing.assert_array_equal(np.asarray(g["label"]), batch["label"])
    assert g["image"].addressable_shards[1].data.shape == (2, 3)


def test_batch_size_checks():
    mesh = parallel.make_mesh(8)
    parallel.check_batch_size(64, mesh)
    with pytest.raises(ValueError, match="multiple of the device count 8"):
        parallel.check_batch_size(60, mesh)
    with pytest.raises(ValueError, match="num_devices"):
        parallel.make_mesh(9)


def test_pmap_helpers_round_trip():
    tree = {"w": np.ones((2, 3), np.float32), "s": np.float32(2.0)}
    rep = parallel.pmap_replicate(tree, 4)
    assert rep["w"].shape == (4, 2, 3) and rep["s"].shape == (4,)
    np.testing.assert_array_equal(np.asarray(parallel.pmap_unreplicate(rep)["w"]), tree["w"])
    split = parallel.pmap_split({"x": np.arange(8)}, 4)
    assert split["x"].shape == (4, 2)
    with pytest.raises(ValueError, match="does not split"):
        parallel.pmap_split({"x": np.arange(6)}, 4)
