"""Every op runs under jax.jit and on bfloat16 inputs, computing in float32 where precision needs it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hqjax import ops

W = np.random.default_rng(0).normal(size=(3, 3, 8, 4)).astype(np.float32)
MASK = np.abs(W) > 0.4

# name -> (fn(w) -> array or tuple, returns weights in the input dtype?)
OPS = {
    "project_to_sphere": (lambda w: ops.project_to_sphere(w, -1), True),
    "unit_norm": (lambda w: ops.unit_norm(w, -1), False),
    "cosine_to_ternary": (lambda w: ops.cosine_to_ternary(w, ops.ternary_project(w, 0.5), -1), False),
    "magnitude_mask": (lambda w: ops.magnitude_mask(w, 0.6, -1), None),
    "ternarize_twn_lsq": (lambda w: ops.ternarize(w), True),
    "ternarize_exact_unit": (lambda w: ops.ternarize(w, threshold="exact_cosine", scale="unit"), True),
    "ternarize_quantile": (lambda w: ops.ternarize(w, threshold="quantile", sparsity=0.5), True),
    "ternarize_ttq": (lambda w: ops.ternarize(w, threshold="ttq"), True),
    "soft_ternarize": (lambda w: ops.soft_ternarize(w, 0.5, 8.0), True),
    "rescale_factor": (lambda w: ops.rescale_factor(w, 0.5, 8.0), False),
    "ternary_pull": (lambda w: ops.ternary_pull(w), True),
    "ternary_regularizer": (lambda w: ops.ternary_regularizer(w), False),
    "identity_ste": (lambda w: ops.identity_ste(w, ops.ternarize(w)), True),
    "masked_ste": (lambda w: ops.masked_ste(w, ops.ternarize(w), MASK), True),
    "normalized_ste": (lambda w: ops.normalized_ste(w, MASK, -1), True),
    "rescaled_ste": (lambda w: ops.rescaled_ste(w, ops.ternarize(w), 0.5, 8.0), True),
}


@pytest.mark.parametrize("fn,keeps_dtype", OPS.values(), ids=OPS.keys())
def test_op_under_jit_and_bfloat16(fn, keeps_dtype):
    w32 = jnp.asarray(W)
    w16 = w32.astype(jnp.bfloat16)
    ref = fn(w16.astype(jnp.float32))  # float32 computation on the same (bf16-representable) values
    eager = fn(w16)
    jitted = jax.jit(fn)(w16)
    if keeps_dtype is True:
        assert eager.dtype == jnp.bfloat16 and jitted.dtype == jnp.bfloat16
    elif keeps_dtype is False:
        assert eager.dtype == jnp.float32  # statistics are computed and returned in float32
    np.testing.assert_allclose(np.asarray(eager, np.float32), np.asarray(jitted, np.float32),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(eager, np.float32), np.asarray(ref, np.float32),
                               rtol=1e-2, atol=1e-2)
    assert np.all(np.isfinite(np.asarray(eager, np.float32)))


def test_bfloat16_gradients_flow_through_the_stes():
    w16 = jnp.asarray(W).astype(jnp.bfloat16)
    for fn in (OPS["identity_ste"][0], OPS["normalized_ste"][0], OPS["rescaled_ste"][0]):
        g = jax.jit(jax.grad(lambda w, fn=fn: jnp.sum(fn(w).astype(jnp.float32) ** 2)))(w16)
        assert g.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(g, np.float32)))
