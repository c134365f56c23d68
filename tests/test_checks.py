"""`hqjax._checks`, the package's one validation module: jax-free, and messages that name the argument,
the value and what is allowed."""

import ast
import doctest
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hqjax
from hqjax import _checks, schedules
from hqjax._checks import (
    check_choice,
    check_fraction,
    check_int,
    check_positive,
    is_concrete,
    normalize_axis,
    reduce_axes,
)

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hqjax", "_checks.py")


def test_the_module_imports_neither_jax_nor_numpy():
    """By its syntax tree (any import, also inside a function) and by loading the file on its own in a
    fresh interpreter (``import hqjax._checks`` would first run ``hqjax/__init__``, which loads jax)."""
    with open(PATH, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"jax", "jaxlib", "numpy", "hqjax", "flax", "optax"}, imported
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('checks', {PATH!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "assert m.check_int(3, 'n', minimum=1) == 3 and m.is_concrete(1.0)\n"
        "m.check_fraction(0.5, 's'); m.check_positive([1.0, 2.0], 'r'); m.check_choice('a', 'ab', 'x')\n"
        "assert m.reduce_axes(3, -1) == (0, 1)\n"
        "loaded = sorted(k for k in sys.modules if k.split('.')[0] in ('jax', 'numpy'))\n"
        "assert not loaded, loaded\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_docstring_examples():
    result = doctest.testmod(_checks, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_check_int_returns_a_python_int_in_range():
    assert check_int(np.int64(4), "n") == 4 and type(check_int(np.int64(4), "n")) is int
    assert check_int(None, "n", allow_none=True) is None
    assert check_int(5, "n", minimum=5, maximum=5) == 5
    assert check_int(4, "n", below=5) == 4


@pytest.mark.parametrize(
    "value, kw, match",
    [
        (True, {}, r"^`n` must be an int >= 0, got True\."),
        (2.0, {"minimum": 1}, r"^`n` must be an int >= 1, got 2\.0\."),
        (jnp.int32(3), {}, "must be an int"),
        (None, {}, "got None"),
        (0, {"minimum": 1}, r"^`n` must be >= 1, got 0\."),
        (17, {"minimum": 1, "maximum": 16}, r"`n` must be in \[1, 16\], got 17"),
        (2, {"below": 2}, r"`n` must be in \[0, 2\), got 2"),
        (0, {"minimum": 1, "quote": False, "hint": None}, r"^n must be >= 1, got 0\.$"),
    ],
)
def test_check_int_errors_name_the_argument_value_and_range(value, kw, match):
    with pytest.raises(ValueError, match=match):
        check_int(value, "n", **kw)


def test_check_int_hint():
    with pytest.raises(ValueError, match="static_args"):  # the default: recipes under inject_hyperparams
        check_int(jnp.int32(30), "total_steps", minimum=1)
    with pytest.raises(ValueError, match=r"got 0\. Pass a Python int\.$"):
        check_int(0, "n", minimum=1, hint="Pass a Python int.")
    with pytest.raises(TypeError):
        check_int(1, "n", maximum=3, below=3)


def test_fraction_positive_and_choice():
    check_fraction(np.array([0.0, 0.5]), "s")
    check_fraction(1.0, "s", allow_one=True)
    for bad in (1.0, -0.1, float("nan"), [0.2, 1.5]):
        with pytest.raises(ValueError, match=r"`s` must lie in \[0, 1\)"):
            check_fraction(bad, "s")
    check_positive(jnp.array([1.0, 2.0]), "r")
    check_positive(0.0, "r", allow_zero=True)
    for bad in (0.0, -1.0, float("inf"), float("nan"), np.array([1.0, -1.0])):
        with pytest.raises(ValueError, match="`r` must be finite and > 0"):
            check_positive(bad, "r")
    with pytest.raises(ValueError, match="`r` must be a finite scalar > 0"):
        check_positive([1.0, 2.0], "r", scalar=True)
    with pytest.raises(ValueError, match="`r` must be a number"):
        check_positive("x", "r")
    assert check_choice("mean", ("peak", "mean"), "normalization") == "mean"
    with pytest.raises(ValueError, match="Unknown normalization='max'; valid values are 'peak', 'mean'"):
        check_choice("max", ("peak", "mean"), "normalization")


def test_traced_values_are_skipped():
    def f(x):
        assert not is_concrete(x)
        check_fraction(x, "s")  # cannot be read under jit: no error
        check_positive(x, "r")
        return x

    jax.jit(f)(jnp.float32(2.0))
    assert is_concrete(jnp.float32(2.0)) and is_concrete(3)


def test_axes():
    assert normalize_axis(np.int64(-1), 3) == 2 and normalize_axis(None, 3) is None
    assert reduce_axes(3, -1) == (0, 1) and reduce_axes(2, None) == (0, 1)
    with pytest.raises(ValueError, match="`axis`=3 is out of range"):
        normalize_axis(3, 3)
    with pytest.raises(ValueError, match="`axis` must be an int or None"):
        normalize_axis(1.0, 3)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: hqjax.k_bit_relu(17), r"^`bits` must be in \[1, 16\], got 17\.$"),
        (lambda: hqjax.k_bit_relu(2.0), r"`bits` must be an int in \[1, 16\]"),
        (lambda: hqjax.k_bit_relu(2, clip=float("inf")), "`clip` must be finite and > 0"),
        (lambda: hqjax.ops.threshold_loss_aware(jnp.ones((2, 2)), jnp.ones((2, 2)), iters=0),
         "`iters` must be >= 1, got 0"),
        (lambda: hqjax.ops.agp_schedule(0.5, end_step=10.0), "`end_step` must be an int >= 0, got 10.0"),
        (lambda: hqjax.ops.agp_schedule(0.5, end_step=10, update_every=0), "`update_every` must be >= 1"),
        (lambda: hqjax.ops.sketch(jnp.ones((2, 3)), 0), r"`num_bases` must be >= 1, got 0\. It is static"),
        (lambda: hqjax.ops.group_shape((6, 4), "subchannelwise", 1.5), "`subc` must be an int >= 1"),
        (lambda: hqjax.ops.alq_storage_bits(10, 2.0, 3, alpha_bits=-1), "`alpha_bits` must be >= 0"),
        (lambda: schedules.ramp(1.0, end_step=-1), "`end_step` must be >= 0, got -1"),
        (lambda: schedules.ramp(1.0, end_step=4, stop_step=2.5), "`stop_step` must be an int >= 0"),
        (lambda: schedules.geometric(0.0, 1.0, begin_step=0, end_step=1),
         "`initial` must be a finite scalar > 0"),
        (lambda: schedules.geometric(2.0, np.ones(2), begin_step=0, end_step=1),
         "`final` must be a finite scalar > 0"),
    ],
)
def test_the_ops_and_schedules_use_them(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_numpy_integers_are_accepted_as_python_ints():
    steps = {"begin_step": np.int64(0), "end_step": np.int32(10), "update_every": np.int8(2)}
    sched = hqjax.ops.agp_schedule(0.5, **steps)
    assert float(sched(10)) == pytest.approx(0.5)
    assert float(schedules.ramp(1.0, end_step=np.int64(4))(2)) == pytest.approx(0.5)
    assert hqjax.k_bit_relu(np.int64(1))(jnp.array([0.7])).tolist() == [1.0]
