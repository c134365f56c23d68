"""Device meshes, shardings and global batches for data-parallel training.

Default mode (DESIGN.md, "Parallelism"): `jax.jit` over a 1-D mesh ``('data',)`` of all devices, params
and optimizer state replicated (``P()``), the batch sharded on ``'data'``; XLA inserts the gradient
all-reduce and BatchNorm statistics are those of the global batch. The ``pmap`` mode replicates the
state with a leading device axis and averages gradients and BatchNorm statistics with ``lax.pmean``,
which gives the same model.

On a CPU-only machine the cores are only used when the batch is split over several virtual CPU devices
(``--xla_force_host_platform_device_count``): `cpu_device_flags` computes that flag, which must be in
``XLA_FLAGS`` before jax initialises its backend.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def cpu_device_flags(num_devices: int | None = None, flags: str | None = None) -> str:
    """``XLA_FLAGS`` with a forced host device count added (kept if the user already set one).

    Args:
      num_devices: virtual CPU devices; None means one per core (``os.cpu_count()``).
      flags: the current ``XLA_FLAGS`` (default: read from the environment).

    Returns:
      The flags string to put in ``XLA_FLAGS`` before jax is imported.
    """
    flags = os.environ.get("XLA_FLAGS", "") if flags is None else flags
    if "xla_force_host_platform_device_count" in flags:
        return flags
    n = num_devices if num_devices is not None else (os.cpu_count() or 1)
    if n < 1:
        raise ValueError(f"`num_devices` must be >= 1, got {n}.")
    return f"{flags} --xla_force_host_platform_device_count={n}".strip()


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D ``('data',)`` mesh over the first `num_devices` devices (all devices by default).

    With several processes the mesh spans every device of every process; each process's slice of a
    batch (`global_batch`) lands on its own devices.
    """
    devices = jax.devices()
    n = len(devices) if num_devices is None else num_devices
    if not 1 <= n <= len(devices):
        raise ValueError(f"`num_devices`={n} must be in [1, {len(devices)}] (the devices jax sees).")
    if jax.process_count() > 1 and n != len(devices):
        raise ValueError(
            f"`num_devices`={n}: a run of {jax.process_count()} processes uses all {len(devices)} devices "
            "(every process holds a slice of each batch); leave num_devices at 0."
        )
    return jax.make_mesh(
        (n,), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,), devices=devices[:n]
    )


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding that keeps a full copy of an array on every device of `mesh`."""
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Sharding that splits the leading (batch) axis over the ``'data'`` axis of `mesh`."""
    return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(global_batch: int, mesh: Mesh) -> None:
    """Raise unless the global batch splits evenly over the devices and processes."""
    n = mesh.devices.size
    if global_batch <= 0 or global_batch % n:
        raise ValueError(
            f"batch_size={global_batch} must be a positive multiple of the device count {n}; "
            f"use e.g. --config.batch_size={max(n, (global_batch // n) * n or n)}."
        )
    if global_batch % jax.process_count():
        raise ValueError(
            f"batch_size={global_batch} must be divisible by the process count {jax.process_count()}."
        )


def global_batch(local: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assemble this process's slice of a batch into global arrays sharded on ``'data'``.

    Each process passes only the examples it read (its shard of the data); the global batch size is
    ``local_batch * jax.process_count()``.
    """
    sharding = batch_sharded(mesh)
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local.items()
    }


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Place every leaf of `tree` on all devices of `mesh` (replicated).

    With several processes, every process passes the same values; host arrays are copied to this
    process's devices without the cross-process comparison `jax.device_put` makes for each leaf.
    """
    sharding = replicated(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(x):
        if isinstance(x, jax.Array):
            return jax.device_put(x, sharding)
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree)


def pmap_replicate(tree: Any, num_devices: int) -> Any:
    """Stack `num_devices` copies of every leaf along a new leading axis (for ``jax.pmap``)."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (num_devices, *jnp.shape(x))), tree)


def pmap_unreplicate(tree: Any) -> Any:
    """The first local device's copy of a ``pmap``-replicated tree, as NumPy arrays.

    Reads that device's buffer directly: indexing (``x[0]``) would run a computation over all local
    devices, which with several processes can interleave with the other processes' collectives and hang.
    """

    def first(x):
        if isinstance(x, jax.Array):
            return np.asarray(x.addressable_data(0))[0]
        return x[0]

    return jax.tree.map(first, tree)


def pmap_split(batch: dict[str, np.ndarray], num_devices: int) -> dict[str, np.ndarray]:
    """Reshape a local batch ``(B, ...)`` into ``(num_devices, B // num_devices, ...)`` for ``pmap``."""
    out = {}
    for k, v in batch.items():
        v = np.asarray(v)
        if v.shape[0] % num_devices:
            raise ValueError(
                f"local batch of {v.shape[0]} does not split over {num_devices} devices for pmap."
            )
        out[k] = v.reshape(num_devices, v.shape[0] // num_devices, *v.shape[1:])
    return out
