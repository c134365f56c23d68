"""Test configuration: every test session sees 8 CPU devices.

`XLA_FLAGS` must be set before jax initialises its backend, so this module sets it at import time,
before any test module imports jax. A user-supplied device count is kept.
"""

import os

_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def devices() -> list[jax.Device]:
    """The 8 forced CPU devices."""
    devs = jax.devices()
    assert len(devs) == 8, f"expected 8 forced CPU devices, got {devs}"
    return devs
