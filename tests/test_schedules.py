"""Step schedules: closed forms, traced targets, domain checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hqjax import schedules
from hqjax.ops import agp_schedule, agp_sparsity


def test_agp_matches_the_op_and_accepts_traced_targets():
    sched = agp_schedule(0.7, begin_step=2, end_step=12, update_every=2)
    for t in range(0, 16):
        ref = agp_sparsity(t, 0.7, begin_step=2, end_step=12, update_every=2)
        assert float(sched(t)) == pytest.approx(float(ref))
    traced = jax.jit(lambda s, t: agp_schedule(s, end_step=10)(t))
    assert float(traced(jnp.float32(0.5), 10)) == pytest.approx(0.5)
    traced = jax.jit(lambda s0, s, t: agp_schedule(s, end_step=10, initial_sparsity=s0)(t))
    assert float(traced(jnp.float32(0.1), jnp.float32(0.5), 0)) == pytest.approx(0.1)


def test_schedules_agp_is_a_deprecated_alias():
    with pytest.warns(DeprecationWarning, match="hqjax.ops.agp_schedule"):
        old = schedules.agp(0.7, begin_step=2, end_step=12, update_every=2)
    new = agp_schedule(0.7, begin_step=2, end_step=12, update_every=2)
    assert [float(old(t)) for t in range(16)] == [float(new(t)) for t in range(16)]


def test_ramp_and_stop():
    r = schedules.ramp(2.0, begin_step=2, end_step=6, stop_step=8)
    np.testing.assert_allclose([float(r(t)) for t in range(10)], [0, 0, 0, 0.5, 1, 1.5, 2, 2, 0, 0])


def test_geometric_endpoints_and_midpoint():
    g = schedules.geometric(2.0, 50.0, begin_step=10, end_step=30)
    assert float(g(0)) == pytest.approx(2.0)
    assert float(g(20)) == pytest.approx(10.0, rel=1e-5)
    assert float(g(30)) == pytest.approx(50.0, rel=1e-5)
    assert float(g(100)) == pytest.approx(50.0, rel=1e-5)


@pytest.mark.parametrize(
    "fn, kwargs",
    [
        (lambda: agp_schedule(1.0, end_step=10), {}),
        (lambda: agp_schedule(-0.1, end_step=10), {}),
        (lambda: agp_schedule(0.5, begin_step=5, end_step=5), {}),
        (lambda: schedules.geometric(0.0, 1.0, begin_step=0, end_step=1), {}),
        (lambda: schedules.ramp(1.0, end_step=-1), {}),
    ],
)
def test_bad_schedule_arguments(fn, kwargs):
    with pytest.raises(ValueError):
        fn()


def test_check_schedule_reports_the_step():
    with pytest.raises(ValueError, match="returned 1.5 at step 30"):
        schedules.check_schedule(lambda t: 0.05 * t, "sparsity", [0, 10, 30], low=0.0, high=1.0)
    schedules.check_schedule(lambda t: 0.05 * t, "sparsity", [0, 10], low=0.0, high=1.0)
    with pytest.raises(ValueError, match="not finite|outside"):
        schedules.check_schedule(lambda t: jnp.nan, "x", [0], low=0.0, high=1.0)
