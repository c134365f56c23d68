"""Alias of `hqjax.transforms.alq.schedule` (ALQ's pipeline and step schedules), kept importable."""

from hqjax.transforms.alq.schedule import *  # noqa: F403
from hqjax.transforms.alq.schedule import __all__  # noqa: F401
