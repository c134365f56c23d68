"""Step schedules for the quantizer transforms: plain ``step -> scalar`` callables.

Every schedule here is a pure function of the optimizer step (an int or a traced integer scalar) and
returns a float32 scalar, so it runs under `jax.jit` and any optax schedule can be used in its place.
Hyper-parameters may be Python numbers or (traced) jax scalars, which is what `optax.inject_hyperparams`
passes when it rebuilds a recipe inside ``update``.

- `as_schedule`: a number or a callable, as a schedule.
- `agp`: deprecated alias of `hqjax.ops.agp_schedule` (the cubic gradual-pruning sparsity, B6).
- `ramp`: linear ramp ``0 -> value`` (HLA-TQ's regularizer weight ``lambda(t)``, spec section 5.2).
- `geometric`: geometric interpolation ``initial -> final`` (HLA-TQ's temperature constant ``c(t)``,
  spec section 8 item 14).
- `check_schedule`: evaluate a schedule at a few steps and raise `ValueError` when a value leaves its
  domain, so bad schedules fail at construction, before any step runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hqjax._checks import check_int, check_positive, is_concrete
from hqjax.ops.prune import agp_schedule

Schedule = Callable[[Any], jax.Array]
ScalarOrSchedule = float | jax.Array | Schedule

__all__ = [
    "Schedule",
    "ScalarOrSchedule",
    "agp",
    "as_schedule",
    "check_schedule",
    "geometric",
    "ramp",
]


def as_schedule(value: ScalarOrSchedule) -> Schedule:
    """Return `value` as a ``step -> float32 scalar`` callable (a number becomes a constant).

    Examples:
      >>> float(as_schedule(0.5)(10)), float(as_schedule(lambda t: t / 10)(5))
      (0.5, 0.5)
    """
    if callable(value):
        return lambda step: jnp.asarray(value(step), jnp.float32)
    return lambda step: jnp.asarray(value, jnp.float32)


def agp(final_sparsity: Any, **kwargs: Any) -> Schedule:
    """Deprecated alias of `hqjax.ops.agp_schedule` (the library's one AGP schedule; the same keyword
    arguments: `begin_step`, `end_step`, `initial_sparsity`, `update_every`); warns.

    Examples:
      >>> import warnings
      >>> with warnings.catch_warnings():
      ...     warnings.simplefilter("ignore", DeprecationWarning)
      ...     s = agp(0.5, end_step=10)
      >>> float(s(0)), float(s(10)), float(s(1000))
      (0.0, 0.5, 0.5)
    """
    warnings.warn("hqjax.schedules.agp is deprecated; use hqjax.ops.agp_schedule (same arguments).",
                  DeprecationWarning, stacklevel=2)
    return agp_schedule(final_sparsity, **kwargs)


def ramp(value: Any, *, begin_step: int = 0, end_step: int, stop_step: int | None = None) -> Schedule:
    """Linear ramp from 0 at `begin_step` to `value` at `end_step`, held, and 0 again from `stop_step`.

    HLA-TQ's regularizer weight ``lambda(t)`` (spec section 5.2: "linear ramp from 0 to lambda_max over
    phase R") is ``ramp(reg_strength, end_step=Q, stop_step=Q)``.

    Examples:
      >>> r = ramp(1.0, end_step=4, stop_step=4)
      >>> [float(r(t)) for t in range(6)]
      [0.0, 0.25, 0.5, 0.75, 0.0, 0.0]
    """
    begin_step = check_int(begin_step, "begin_step", hint=None)
    end_step = check_int(end_step, "end_step", hint=None)
    if end_step <= begin_step:
        raise ValueError(f"`end_step`={end_step} must be greater than `begin_step`={begin_step}.")
    stop_step = check_int(stop_step, "stop_step", allow_none=True, hint=None)

    def schedule(step: Any) -> jax.Array:
        t = jnp.asarray(step, jnp.float32)
        frac = jnp.clip((t - begin_step) / (end_step - begin_step), 0.0, 1.0)
        out = jnp.asarray(value, jnp.float32) * frac
        if stop_step is not None:
            out = jnp.where(t >= stop_step, 0.0, out)
        return out

    return schedule


def geometric(initial: Any, final: Any, *, begin_step: int, end_step: int) -> Schedule:
    """Geometric interpolation ``initial * (final / initial) ** frac`` between two steps.

    ``frac`` rises linearly from 0 at `begin_step` to 1 at `end_step` (clipped outside). HLA-TQ's
    temperature constant ``c(t)`` rises from 2 to 50 over phase Q this way (spec section 8 item 14;
    the per-unit temperature is ``tau = c / Delta``).

    Examples:
      >>> g = geometric(2.0, 50.0, begin_step=10, end_step=20)
      >>> round(float(g(0)), 3), round(float(g(15)), 3), round(float(g(99)), 3)
      (2.0, 10.0, 50.0)
    """
    begin_step = check_int(begin_step, "begin_step", hint=None)
    end_step = check_int(end_step, "end_step", hint=None)
    check_positive(initial, "initial", scalar=True)
    check_positive(final, "final", scalar=True)
    span = max(end_step - begin_step, 1)

    def schedule(step: Any) -> jax.Array:
        t = jnp.asarray(step, jnp.float32)
        frac = jnp.clip((t - begin_step) / span, 0.0, 1.0)
        lo = jnp.log(jnp.asarray(initial, jnp.float32))
        hi = jnp.log(jnp.asarray(final, jnp.float32))
        return jnp.exp(lo + frac * (hi - lo))

    return schedule


def check_schedule(
    schedule: Schedule,
    name: str,
    steps: Iterable[int],
    *,
    low: float,
    high: float,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Evaluate `schedule` at `steps` and raise `ValueError` if a value is not finite or in range.

    Values that are traced (e.g. a schedule closing over an `optax.inject_hyperparams` value inside
    ``update``) are skipped: they were checked when ``init`` ran eagerly.

    Args:
      schedule: ``step -> scalar``.
      name: argument name for the message.
      steps: the steps to evaluate (e.g. ``0``, the phase boundary and ``total_steps``).
      low, high: the domain bounds.
      low_inclusive, high_inclusive: whether the bounds belong to the domain.

    Examples:
      >>> check_schedule(lambda t: 0.1 * t, "sparsity", [0, 20], low=0.0, high=1.0, high_inclusive=False)
      Traceback (most recent call last):
      ...
      ValueError: schedule `sparsity` returned 2.0 at step 20, outside its domain [0.0, 1.0). ...
    """
    for step in steps:
        value = schedule(step)
        if not is_concrete(value):
            continue
        arr = np.asarray(value, np.float64)
        if arr.size != 1:
            raise ValueError(f"schedule `{name}` must return a scalar, got shape {arr.shape} at step {step}.")
        v = float(arr.reshape(()))
        lo_ok = v >= low if low_inclusive else v > low
        hi_ok = v <= high if high_inclusive else v < high
        if not (np.isfinite(v) and lo_ok and hi_ok):
            lb = "[" if low_inclusive else "("
            rb = "]" if high_inclusive else ")"
            raise ValueError(
                f"schedule `{name}` returned {v} at step {step}, outside its domain {lb}{low}, {high}{rb}. "
                "Fix the schedule (or the number) so every step gives a value in that range."
            )
