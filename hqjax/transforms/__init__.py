"""Optax gradient transformations for ternary quantization, each usable alone inside `optax.chain`.

=========================  ==================================================================
transform                  what it does (state)
=========================  ==================================================================
`quantizer`                phase/temperature scheduling and the static forward configuration
                           read by `hqjax.forward_params` (`QuantizerState`)
`prune`                    magnitude pruning by schedule, pruned weights held at exactly 0
                           (`PruneState`: masks)
`ternary_regularizer`      adds HLA-TQ's ternary-attracting pull ``lambda(t) J_P^T (w - alpha t)``
                           to the gradients (`RegularizerState`)
`reinitialize`             HQ's one-shot ``V <- mean_kept|V| sign(V) M`` at the phase boundary
                           (`ReinitState`)
`project_to_sphere`        keeps the latent weights on a sphere after each step (stateless)
`ttq_scales`               TTQ's learned positive/negative scales (`TTQState`)
`add_decayed_weights`      weight decay on the quantized leaves only (`DecayState`)
`alq_optimizer`            ALQ multi-bit optimizer: binary bases, coordinates, masks and two sets of
                           AMSGrad moments (`ALQState`); `ALQSchedule` (`alq_pipeline`) gives its
                           schedules (package `hqjax.transforms.alq`)
=========================  ==================================================================

Hyper-parameters are numbers or ``step -> value`` schedules (see `hqjax.schedules`), so
`optax.inject_hyperparams` works. Per-leaf state (masks, signs, scales) is a tree shaped like the params
with ``None`` on the leaves that are not quantized. The recipes in `hqjax.methods` are compositions of
these pieces.
"""

from hqjax.transforms.alq import (
    ALQ_MODES,
    ALQConfig,
    ALQLayer,
    ALQPipeline,
    ALQSchedule,
    ALQState,
    alq_bn_frozen,
    alq_layers,
    alq_optimizer,
    alq_params,
    alq_pipeline,
    alq_reconstruction,
    find_alq_state,
)
from hqjax.transforms.decay import DecayState, add_decayed_weights
from hqjax.transforms.prune import PruneState, prune
from hqjax.transforms.quantizer import FORWARDS, QuantizerConfig, QuantizerState, quantizer
from hqjax.transforms.regularizer import RegularizerState, ternary_regularizer
from hqjax.transforms.reinit import REINIT_RULES, ReinitState, reinitialize
from hqjax.transforms.sphere import project_to_sphere
from hqjax.transforms.ttq import TTQState, ttq_codes, ttq_scales

__all__ = [
    "ALQ_MODES",
    "ALQConfig",
    "ALQLayer",
    "ALQPipeline",
    "ALQSchedule",
    "ALQState",
    "alq_bn_frozen",
    "alq_layers",
    "alq_optimizer",
    "alq_params",
    "alq_pipeline",
    "alq_reconstruction",
    "find_alq_state",
    "FORWARDS",
    "REINIT_RULES",
    "DecayState",
    "PruneState",
    "QuantizerConfig",
    "QuantizerState",
    "RegularizerState",
    "ReinitState",
    "TTQState",
    "add_decayed_weights",
    "project_to_sphere",
    "prune",
    "quantizer",
    "reinitialize",
    "ternary_regularizer",
    "ttq_codes",
    "ttq_scales",
]
