"""The dtypes the ops compute and return in (shared by the op modules)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def compute_dtype(x: jax.Array) -> jnp.dtype:
    """float32 for half-precision (or integer) inputs, the input dtype otherwise."""
    dt = jnp.result_type(x)
    if not jnp.issubdtype(dt, jnp.floating) or jnp.finfo(dt).bits < 32:
        return jnp.dtype(jnp.float32)
    return dt


def output_dtype(x: jax.Array) -> jnp.dtype:
    """The dtype a weight-valued result is returned in: the input's floating dtype, else float32."""
    dt = jnp.result_type(x)
    return dt if jnp.issubdtype(dt, jnp.floating) else jnp.dtype(jnp.float32)
