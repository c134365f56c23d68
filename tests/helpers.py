"""Small test helpers (in-repo, no heavy test dependencies)."""

from __future__ import annotations

import jax
import numpy as np


def assert_trees_all_close(a, b, *, rtol: float = 1e-6, atol: float = 0.0) -> None:
    """Assert two pytrees have the same structure and element-wise close leaves."""
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb, f"tree structures differ: {ta} vs {tb}"
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=rtol, atol=atol)


def units_np(w: np.ndarray, axis: int | None) -> np.ndarray:
    """Float64 reference: reshape to (units, n) with the unit axis first."""
    w = np.asarray(w, np.float64)
    if axis is None:
        return w.reshape(1, -1)
    return np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
