"""`python -m hqjax`: a short tour of the pure ops on a random conv kernel.

Projects a 3x3x64x128 kernel onto the unit sphere per output filter, prunes it to 70 % sparsity by
magnitude, ternarizes it three ways and prints how close each ternary kernel is to the
full-precision one (the cosine HQ maximises), then differentiates through an STE under jit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from hqjax import ops


def main() -> None:
    key = jax.random.key(0)
    v = jax.random.normal(key, (3, 3, 64, 128))
    w = ops.project_to_sphere(v, axis=-1)
    mask = ops.magnitude_mask(w, 0.7, axis=-1)
    print(f"kernel {v.shape}, unit axis -1 ({v.shape[-1]} output filters)")
    print(f"{'rule':<28}{'sparsity':>10}{'mean cos(w, t)':>16}")
    rules = {
        "TWN 0.7*mean|w|": dict(threshold="twn"),
        "exact-cosine threshold": dict(threshold="exact_cosine"),
        "pruning mask (PTQ/HQ)": dict(threshold="mask", mask=mask, scale="unit"),
    }
    for name, kwargs in rules.items():
        parts = ops.ternary_parts(w, **kwargs)
        sparsity = float(jnp.mean(parts.codes == 0))
        cos = float(jnp.mean(ops.cosine_to_ternary(w, parts.codes, axis=-1)))
        print(f"{name:<28}{sparsity:>10.3f}{cos:>16.4f}")

    @jax.jit
    def grad_norm(v: jax.Array) -> jax.Array:
        loss = lambda v: jnp.sum(ops.normalized_ste(v, mask, axis=-1) ** 2 * jnp.arange(128.0))
        return jnp.linalg.norm(jax.grad(loss)(v))

    print(f"normalisation-aware STE gradient norm under jit: {float(grad_norm(v)):.4f}")
    print(f"devices: {jax.devices()}")


if __name__ == "__main__":
    main()
