"""Test configuration: every test session sees 8 CPU devices.

`XLA_FLAGS` must be set before jax initialises its backend, so this module sets it at import time,
before any test module imports jax. A user-supplied device count is kept.
"""

import os

_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

# Several tests build the same programs (e.g. a run and its resume); a session-wide persistent
# compilation cache compiles each once. A fresh directory per session keeps runs independent.
_cache_dir = tempfile.mkdtemp(prefix="hqjax-test-xla-cache-")
atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", _cache_dir)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


@pytest.fixture(scope="session")
def devices() -> list[jax.Device]:
    """The 8 forced CPU devices."""
    devs = jax.devices()
    assert len(devs) == 8, f"expected 8 forced CPU devices, got {devs}"
    return devs
