"""Work that is due every N steps, every M epochs and/or at the last step of a run."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Periodic"]


@dataclass(frozen=True)
class Periodic:
    """When periodic work (a log line, an evaluation, layer statistics, a checkpoint) is due.

    ``due(step)`` is asked after step ``step`` (1-based: the number of steps done) and is true when
    `every_steps` divides it, when it ends an epoch whose number `every_epochs` divides, or, with
    `at_end`, when it is the run's last step. 0 turns a rule off.

    Examples:
      >>> p = Periodic(steps_per_epoch=10, total_steps=30, every_epochs=2)
      >>> [s for s in range(1, 31) if p.due(s)]
      [20, 30]
      >>> Periodic(steps_per_epoch=10, total_steps=30, every_steps=7, at_end=False).due(30)
      False
    """

    steps_per_epoch: int
    total_steps: int
    every_steps: int = 0
    every_epochs: int = 0
    at_end: bool = True

    def __post_init__(self) -> None:
        if self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {self.steps_per_epoch}.")
        for name in ("total_steps", "every_steps", "every_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")

    def epoch_end(self, step: int) -> bool:
        """Whether `step` completes an epoch."""
        return step % self.steps_per_epoch == 0

    def due(self, step: int) -> bool:
        """Whether the work is due after `step` steps."""
        if self.every_steps and step % self.every_steps == 0:
            return True
        epoch, rest = divmod(step, self.steps_per_epoch)
        if self.every_epochs and not rest and epoch % self.every_epochs == 0:
            return True
        return self.at_end and step == self.total_steps
