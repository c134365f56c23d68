"""How a run spreads over devices: one interface for `jax.jit` over a mesh and for `jax.pmap`.

The loop asks its strategy to compile the steps, to place the state and each batch, and to bring the
state and metrics back; it never tests which strategy it has.

* `MeshStrategy` (``config.parallel='jit'``): one global array tree, replicated parameters, batches
  sharded over the mesh's data axis (works across processes).
* `PmapStrategy` (``config.parallel='pmap'``): one replica per local device, batches split along a
  leading device axis, BatchNorm statistics and gradients reduced over the pmap axis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax
from flax import linen as nn
from jax.sharding import Mesh

from hqjax.train import parallel
from hqjax.train.steps import TrainState, make_eval_step, make_train_step

__all__ = ["PMAP_AXIS", "MeshStrategy", "PmapStrategy", "make_strategy"]

PMAP_AXIS = "batch"

Forward = Callable[[Any, Any], Any]


class MeshStrategy:
    """`jax.jit` over `mesh`: the run state is the global train state itself.

    Attributes:
      mesh: the device mesh (data axis).
      axis_name: None (no named axis inside the step).
    """

    axis_name: str | None = None

    def __init__(self, mesh: Mesh):
        self.mesh = mesh

    def train_step(self, model: nn.Module, tx: optax.GradientTransformation, forward: Forward,
                   *, bn_frozen: bool = False) -> Callable[[Any, Any], tuple[Any, dict[str, Any]]]:
        """The compiled training step (the state's buffers are donated)."""
        return jax.jit(make_train_step(model, tx, forward, bn_frozen=bn_frozen), donate_argnums=0)

    def eval_step(self, model: nn.Module, forward: Forward) -> Callable[[Any, Any], dict[str, Any]]:
        """The compiled evaluation step."""
        return jax.jit(make_eval_step(model, forward))

    def place(self, state: TrainState) -> Any:
        """The run state of a global train state."""
        return state

    def global_state(self, run_state: Any) -> TrainState:
        """The train state replicated over the mesh (one global array tree, readable on every process)."""
        return run_state

    def batch(self, local: dict[str, Any]) -> Any:
        """This process's slice of a global batch, as the step takes it."""
        return parallel.global_batch(local, self.mesh)

    def metrics(self, value: Any) -> Any:
        """A step's output, fetched to the host, as one value per metric."""
        return value

    def latent_state(self, state: TrainState) -> TrainState:
        """A global train state (`global_state`) placed for the latent network's jitted evaluation."""
        return state


class PmapStrategy(MeshStrategy):
    """`jax.pmap` over this process's `num_devices` devices (axis `PMAP_AXIS`)."""

    axis_name = PMAP_AXIS

    def __init__(self, mesh: Mesh, num_devices: int):
        super().__init__(mesh)
        self.num_devices = num_devices

    def train_step(self, model, tx, forward, *, bn_frozen=False):
        step = make_train_step(model, tx, forward, axis_name=PMAP_AXIS, bn_frozen=bn_frozen)
        return jax.pmap(step, axis_name=PMAP_AXIS)

    def eval_step(self, model, forward):
        return jax.pmap(make_eval_step(model, forward, axis_name=PMAP_AXIS), axis_name=PMAP_AXIS)

    def place(self, state):
        return parallel.pmap_replicate(jax.device_get(state), self.num_devices)

    def global_state(self, run_state):
        return parallel.replicate(jax.device_get(parallel.pmap_unreplicate(run_state)), self.mesh)

    def batch(self, local):
        return parallel.pmap_split(local, self.num_devices)

    def metrics(self, value):
        return parallel.pmap_unreplicate(value)

    def latent_state(self, state):
        return parallel.replicate(state, self.mesh)


def make_strategy(config: Any, mesh: Mesh, num_devices: int) -> MeshStrategy:
    """The strategy ``config.parallel`` names ('jit' or 'pmap'); pmap maps over this process's share of
    the `num_devices` devices."""
    if config.parallel == "pmap":
        return PmapStrategy(mesh, num_devices // jax.process_count())
    return MeshStrategy(mesh)
