"""ALQ's training pipeline as one frozen dataclass, and its step schedules (mode, lr, pruning rate).

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

`ALQSchedule` holds these settings, is validated once when built, and is what every reader (the
optimizer, the training program's run length and BatchNorm-frozen epochs, the config presets) uses;
`alq_pipeline` is ``ALQSchedule(**kwargs).pipeline(steps_per_epoch)``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hqjax._checks import check_int

__all__ = [
    "ALQ_DEFAULT",
    "ALQ_MODES",
    "BASIS",
    "COORDINATE",
    "PRUNE",
    "STE",
    "ALQPipeline",
    "ALQSchedule",
    "alq_pipeline",
]

COORDINATE, BASIS, STE, PRUNE = 0, 1, 2, 3
ALQ_MODES = ("coordinate", "basis", "ste", "prune")

Epoch = tuple[str, float, int]


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
    epochs: tuple[Epoch, ...]

    @property
    def total_steps(self) -> int:
        return self.num_epochs * self.steps_per_epoch


def _count(value: Any, name: str, minimum: int = 0) -> int:
    check_int(value, name, minimum=minimum)
    return int(value)


def _factor(value: Any, name: str, *, high: float = math.inf) -> float:
    """`value` as a float in ``(0, high]`` (ValueError naming `name` otherwise)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number, got {value!r}.") from None
    if not (math.isfinite(v) and 0.0 < v <= high):
        raise ValueError(f"`{name}` must be in (0.0, {high}], got {value!r}.")
    return v


_COUNTS = ("rounds", "epoch_basis", "epoch_coord", "epoch_prune", "epoch_ste", "epoch_post")
_DECAYS = ("ld_basis", "ld_coord", "ld_ste", "ld_post")


@dataclasses.dataclass(frozen=True)
class ALQSchedule:
    """ALQ's pipeline (ALGORITHMS.md 1.5), validated when built. Defaults: LeNet-5 / MNIST of the
    official code. Build variants with ``ALQ_DEFAULT.replace(rounds=5, ...)``.

    Attributes:
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
      >>> s = ALQ_DEFAULT.replace(rounds=1, epoch_basis=2, epoch_coord=1, epoch_ste=1, epoch_post=1)
      >>> s.num_epochs, [m for m, _, _ in s.epochs]
      (6, ['basis', 'basis', 'coordinate', 'prune', 'ste', 'coordinate'])
    """

    learning_rate: float = 1e-3
    rounds: int = 4
    epoch_basis: int = 20
    ld_basis: float = 0.8
    epoch_coord: int = 10
    ld_coord: float = 0.8
    epoch_prune: int = 1
    prune_ratio: float = 0.8
    epoch_ste: int = 50
    ld_ste: float = 0.95
    epoch_post: int = 20
    ld_post: float = 0.9
    post_learning_rate: float | None = None

    def __post_init__(self) -> None:
        """Check every field once (ValueError naming it) and store it as a Python int / float."""
        fixed: dict[str, Any] = {"learning_rate": _factor(self.learning_rate, "learning_rate")}
        fixed.update({n: _count(getattr(self, n), n) for n in _COUNTS})
        fixed.update({n: _factor(getattr(self, n), n, high=1.0) for n in _DECAYS})
        pr = float(self.prune_ratio)
        if not (math.isfinite(pr) and pr >= 0.0):
            raise ValueError(f"`prune_ratio` must be a finite number >= 0, got {self.prune_ratio!r}.")
        fixed["prune_ratio"] = pr
        post = self.post_learning_rate
        fixed["post_learning_rate"] = None if post is None else _factor(post, "post_learning_rate")
        for name, value in fixed.items():
            object.__setattr__(self, name, value)
        if not self.epochs:
            raise ValueError("The ALQ pipeline has no epoch: give `rounds` or post-training epochs > 0.")

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The field names, in order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **overrides: Any) -> ALQSchedule:
        """This schedule with `overrides` (ValueError naming unknown fields)."""
        unknown = sorted(set(overrides) - set(self.fields()))
        if unknown:
            raise ValueError(
                f"Unknown ALQ schedule field(s) {unknown}; the fields are {list(self.fields())}."
            )
        return dataclasses.replace(self, **overrides)

    def overrides(self, base: ALQSchedule | None = None) -> dict[str, Any]:
        """The fields whose values differ from `base` (default `ALQ_DEFAULT`)."""
        base = ALQ_DEFAULT if base is None else base
        return {n: getattr(self, n) for n in self.fields() if getattr(self, n) != getattr(base, n)}

    @functools.cached_property
    def epochs(self) -> tuple[Epoch, ...]:
        """Per epoch ``(mode name, learning rate, round)``; round 0 is post-training (1.5)."""
        epochs: list[Epoch] = []
        for r in range(1, self.rounds + 1):
            lr = self.learning_rate
            for _ in range(self.epoch_basis):
                lr *= self.ld_basis
                epochs.append(("basis", lr, r))
            for _ in range(self.epoch_coord):
                lr *= self.ld_coord
                epochs.append(("coordinate", lr, r))
            epochs.extend(("prune", lr, r) for _ in range(self.epoch_prune))
        lr = self.learning_rate
        for _ in range(self.epoch_ste):
            lr *= self.ld_ste
            epochs.append(("ste", lr, 0))
        if self.post_learning_rate is not None:
            lr = self.post_learning_rate
        for _ in range(self.epoch_post):
            lr *= self.ld_post
            epochs.append(("coordinate", lr, 0))
        return tuple(epochs)

    @property
    def num_epochs(self) -> int:
        """Epochs of the whole pipeline."""
        return len(self.epochs)

    @property
    def prune_epochs(self) -> frozenset[int]:
        """The 0-based pruning epochs (their BatchNorm runs in inference mode, 1.4 d)."""
        return frozenset(e for e, (mode, _, _) in enumerate(self.epochs) if mode == "prune")

    def pipeline(self, steps_per_epoch: int) -> ALQPipeline:
        """The step schedules of this pipeline at `steps_per_epoch` optimizer steps per epoch."""
        spe = _count(steps_per_epoch, "steps_per_epoch", 1)
        modes = np.array([ALQ_MODES.index(m) for m, _, _ in self.epochs], np.int32)
        lrs = np.array([lr for _, lr, _ in self.epochs], np.float32)
        per_step = self.prune_ratio / (self.epoch_prune * spe) if self.epoch_prune else 0.0
        rates = np.where(modes == PRUNE, per_step, 0.0).astype(np.float32)
        last = len(self.epochs) - 1

        def epoch_of(step: Any) -> jax.Array:
            return jnp.clip(jnp.asarray(step, jnp.int32) // spe, 0, last)

        return ALQPipeline(
            mode=lambda step: jnp.asarray(modes)[epoch_of(step)],
            learning_rate=lambda step: jnp.asarray(lrs)[epoch_of(step)],
            prune_rate=lambda step: jnp.asarray(rates)[epoch_of(step)],
            steps_per_epoch=spe,
            num_epochs=len(self.epochs),
            epochs=self.epochs,
        )

    @classmethod
    def split(cls, kwargs: Mapping[str, Any], base: ALQSchedule | None = None) -> tuple[ALQSchedule, dict]:
        """``(base with the schedule fields of kwargs, the other kwargs)``."""
        base = ALQ_DEFAULT if base is None else base
        names = set(cls.fields())
        schedule = base.replace(**{k: v for k, v in kwargs.items() if k in names})
        return schedule, {k: v for k, v in kwargs.items() if k not in names}


ALQ_DEFAULT = ALQSchedule()
"""The official LeNet-5 / MNIST pipeline: 4 x (20 basis + 10 coordinate + 1 prune) + 50 STE + 20
coordinate epochs (194)."""


def alq_pipeline(steps_per_epoch: int, **schedule: Any) -> ALQPipeline:
    """Build ALQ's schedules (ALGORITHMS.md 1.5): ``ALQSchedule(**schedule).pipeline(steps_per_epoch)``.

    Args:
      steps_per_epoch: optimizer steps per epoch.
      **schedule: fields of `ALQSchedule` (learning_rate, rounds, epoch_basis, ld_basis, ...), each
        defaulting to the official LeNet-5 / MNIST value.

    Examples:
      >>> p = alq_pipeline(10, rounds=1, epoch_basis=2, epoch_coord=1, epoch_ste=1, epoch_post=1)
      >>> p.num_epochs, [m for m, _, _ in p.epochs]
      (6, ['basis', 'basis', 'coordinate', 'prune', 'ste', 'coordinate'])
      >>> int(p.mode(35)), round(float(p.learning_rate(0)), 6), round(float(p.prune_rate(30)), 3)
      (3, 0.0008, 0.08)
    """
    _count(steps_per_epoch, "steps_per_epoch", 1)
    return ALQ_DEFAULT.replace(**schedule).pipeline(steps_per_epoch)
