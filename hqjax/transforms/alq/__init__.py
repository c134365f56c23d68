"""ALQ (Qu, Zhou, Cheng, Thiele, CVPR 2020): adaptive loss-aware multi-bit quantization.

=================  ==========================================================================
module             what it holds
=================  ==========================================================================
`schedule`         the pipeline as one frozen dataclass (`ALQSchedule`, `ALQ_DEFAULT`) and its
                   step schedules (`ALQPipeline`, `alq_pipeline`); the mode numbers
`state`            the optimizer state pytree (`ALQState`, `ALQLayer`, `ALQConfig`) and its
                   readers (`alq_layers`, `alq_reconstruction`, `alq_params`, `alq_bn_frozen`)
`steps`            the pure per-mode step functions (sketch, coordinate, basis, ste, prune)
`optimizer`        `alq_optimizer`, the optax transformation that composes them
=================  ==========================================================================

ALGORITHMS.md sections 1.1-1.6 and 6.
"""

from hqjax.transforms.alq.optimizer import alq_optimizer
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
from hqjax.transforms.alq.state import (
    ALQConfig,
    ALQLayer,
    ALQState,
    GroupRule,
    alq_bn_frozen,
    alq_layers,
    alq_params,
    alq_reconstruction,
    find_alq_state,
)

__all__ = [
    "ALQ_DEFAULT",
    "ALQ_MODES",
    "BASIS",
    "COORDINATE",
    "PRUNE",
    "STE",
    "ALQConfig",
    "ALQLayer",
    "ALQPipeline",
    "ALQSchedule",
    "ALQState",
    "GroupRule",
    "alq_bn_frozen",
    "alq_layers",
    "alq_optimizer",
    "alq_params",
    "alq_pipeline",
    "alq_reconstruction",
    "find_alq_state",
]
