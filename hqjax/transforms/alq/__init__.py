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

from hqjax.transforms.alq import optimizer, schedule, state
from hqjax.transforms.alq.optimizer import *  # noqa: F403
from hqjax.transforms.alq.schedule import *  # noqa: F403
from hqjax.transforms.alq.state import *  # noqa: F403

__all__ = sorted([*schedule.__all__, *state.__all__, *optimizer.__all__])
