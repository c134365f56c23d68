"""Alias of `hqjax.transforms.alq.schedule` (ALQ's pipeline and step schedules), kept importable."""

from hqjax.transforms.alq.schedule import (
    ALQ_DEFAULT,
    ALQ_MODES,
    BASIS,
    COORDINATE,
    PRUNE,
    STE,
    ALQPipeline,
    ALQSchedule,
    alq_pipeline,
)

__all__ = ["ALQ_DEFAULT", "ALQ_MODES", "BASIS", "COORDINATE", "PRUNE", "STE", "ALQPipeline", "ALQSchedule",
           "alq_pipeline"]
