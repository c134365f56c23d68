"""ALQ's training pipeline as step schedules: mode, learning rate and pruning rate per step.

ALGORITHMS.md section 1.5 (and 6, "SCHEDULE"), after the official code::

    for r in 1..R:                                   # iterative rounds
        lr <- base;  E_b x [lr *= ld_b; one epoch of basis steps]
                     E_c x [lr *= ld_c; one epoch of coordinate steps]
                     E_p x [one epoch of pruning steps]        (lr unchanged)
    post-training:
        lr <- base;  E_ste x [lr *= ld_ste; one epoch of STE basis steps]
        (lr <- post_lr when given: the official ResNet script uses 5e-6)
                     E_post x [lr *= ld_post; one epoch of coordinate steps]

Over one pruning epoch about ``prune_ratio * N_live`` coordinates are removed, spread evenly over its
steps (smooth bitwidth reduction): the per-step rate is ``prune_ratio / (E_p * steps_per_epoch)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ALQ_MODES", "BASIS", "COORDINATE", "PRUNE", "STE", "ALQPipeline", "alq_pipeline"]

COORDINATE, BASIS, STE, PRUNE = 0, 1, 2, 3
ALQ_MODES = ("coordinate", "basis", "ste", "prune")


class ALQPipeline(NamedTuple):
    """The schedules of an ALQ run (all pure functions of the 0-based step; steps past the end keep
    the last epoch's values).

    Attributes:
      mode: ``step -> int32`` step type (0 coordinate, 1 basis, 2 ste, 3 prune).
      learning_rate: ``step -> float32`` learning rate.
      prune_rate: ``step -> float32`` fraction of the live coordinates to prune at this step (0 outside
        pruning epochs).
      steps_per_epoch: steps of one epoch.
      num_epochs: epochs of the whole pipeline.
      epochs: per epoch ``(mode name, learning rate, round)``; round 0 is post-training.
    """

    mode: Callable[[Any], jax.Array]
    learning_rate: Callable[[Any], jax.Array]
    prune_rate: Callable[[Any], jax.Array]
    steps_per_epoch: int
    num_epochs: int
    epochs: tuple[tuple[str, float, int], ...]

    @property
    def total_steps(self) -> int:
        return self.num_epochs * self.steps_per_epoch


def _check_count(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}.")
    return int(value)


def _check_factor(value: Any, name: str, *, low: float = 0.0, high: float = math.inf) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number, got {value!r}.") from None
    if not (math.isfinite(v) and low < v <= high):
        raise ValueError(f"`{name}` must be in ({low}, {high}], got {value!r}.")
    return v


def alq_pipeline(
    steps_per_epoch: int,
    *,
    learning_rate: float = 1e-3,
    rounds: int = 4,
    epoch_basis: int = 20,
    ld_basis: float = 0.8,
    epoch_coord: int = 10,
    ld_coord: float = 0.8,
    epoch_prune: int = 1,
    prune_ratio: float = 0.8,
    epoch_ste: int = 50,
    ld_ste: float = 0.95,
    epoch_post: int = 20,
    ld_post: float = 0.9,
    post_learning_rate: float | None = None,
) -> ALQPipeline:
    """Build ALQ's schedules (ALGORITHMS.md 1.5). Defaults: LeNet-5 / MNIST of the official code.

    Args:
      steps_per_epoch: optimizer steps per epoch.
      learning_rate: base learning rate, restored at the start of every round and of post-training.
      rounds: outer iterations R (one pruning phase each).
      epoch_basis, ld_basis: basis-step epochs per round and their per-epoch lr decay.
      epoch_coord, ld_coord: coordinate-step epochs per round and their per-epoch lr decay.
      epoch_prune: pruning epochs per round.
      prune_ratio: ``pr``: over a round's pruning epochs about a fraction ``1 - exp(-pr)`` of the live
        coordinates is removed (``pr * N_live / (E_p * steps_per_epoch)`` per step).
      epoch_ste, ld_ste: post-training STE basis-step epochs and their decay.
      epoch_post, ld_post: final coordinate-step epochs and their decay.
      post_learning_rate: learning rate restored before the final coordinate epochs (None: keep the
        decayed STE rate; the official ResNet script uses 5e-6).

    Examples:
      >>> p = alq_pipeline(10, rounds=1, epoch_basis=2, epoch_coord=1, epoch_ste=1, epoch_post=1)
      >>> p.num_epochs, [m for m, _, _ in p.epochs]
      (6, ['basis', 'basis', 'coordinate', 'prune', 'ste', 'coordinate'])
      >>> int(p.mode(35)), round(float(p.learning_rate(0)), 6), round(float(p.prune_rate(30)), 3)
      (3, 0.0008, 0.08)
    """
    spe = _check_count(steps_per_epoch, "steps_per_epoch", 1)
    base = _check_factor(learning_rate, "learning_rate")
    rounds = _check_count(rounds, "rounds")
    counts = {
        n: _check_count(v, n)
        for n, v in dict(epoch_basis=epoch_basis, epoch_coord=epoch_coord, epoch_prune=epoch_prune,
                         epoch_ste=epoch_ste, epoch_post=epoch_post).items()
    }
    decays = {
        n: _check_factor(v, n, high=1.0)
        for n, v in dict(ld_basis=ld_basis, ld_coord=ld_coord, ld_ste=ld_ste, ld_post=ld_post).items()
    }
    pr = float(prune_ratio)
    if not (math.isfinite(pr) and pr >= 0.0):
        raise ValueError(f"`prune_ratio` must be a finite number >= 0, got {prune_ratio!r}.")
    post_lr = None if post_learning_rate is None else _check_factor(post_learning_rate, "post_learning_rate")

    epochs: list[tuple[str, float, int]] = []
    for r in range(1, rounds + 1):
        lr = base
        for _ in range(counts["epoch_basis"]):
            lr *= decays["ld_basis"]
            epochs.append(("basis", lr, r))
        for _ in range(counts["epoch_coord"]):
            lr *= decays["ld_coord"]
            epochs.append(("coordinate", lr, r))
        epochs.extend(("prune", lr, r) for _ in range(counts["epoch_prune"]))
    lr = base
    for _ in range(counts["epoch_ste"]):
        lr *= decays["ld_ste"]
        epochs.append(("ste", lr, 0))
    if post_lr is not None:
        lr = post_lr
    for _ in range(counts["epoch_post"]):
        lr *= decays["ld_post"]
        epochs.append(("coordinate", lr, 0))
    if not epochs:
        raise ValueError("The ALQ pipeline has no epoch: give `rounds` or post-training epochs > 0.")

    modes = np.array([ALQ_MODES.index(m) for m, _, _ in epochs], np.int32)
    lrs = np.array([lr for _, lr, _ in epochs], np.float32)
    per_step = pr / (counts["epoch_prune"] * spe) if counts["epoch_prune"] else 0.0
    rates = np.where(modes == PRUNE, per_step, 0.0).astype(np.float32)
    last = len(epochs) - 1

    def epoch_of(step: Any) -> jax.Array:
        return jnp.clip(jnp.asarray(step, jnp.int32) // spe, 0, last)

    return ALQPipeline(
        mode=lambda step: jnp.asarray(modes)[epoch_of(step)],
        learning_rate=lambda step: jnp.asarray(lrs)[epoch_of(step)],
        prune_rate=lambda step: jnp.asarray(rates)[epoch_of(step)],
        steps_per_epoch=spe,
        num_epochs=len(epochs),
        epochs=tuple(epochs),
    )
