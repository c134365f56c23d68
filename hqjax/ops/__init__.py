"""Pure quantization ops: functions on arrays, no state, jit- and vmap-able.

Modules: `sphere` (B1, B4), `prune` (B6), `ternary` (B2, B3), `ste` (B5, section 7.2) and `soft`
(HLA-TQ section 5.2). Block and section numbers refer to the algorithm specification.
"""

from hqjax.ops.prune import (
    agp_schedule,
    agp_sparsity,
    global_magnitude_masks,
    magnitude_mask,
    num_pruned,
)
from hqjax.ops.soft import (
    rescale_factor,
    soft_ternarize,
    soft_ternarize_grad,
    ternary_pull,
    ternary_regularizer,
)
from hqjax.ops.sphere import cosine_similarity, cosine_to_ternary, project_to_sphere, unit_norm
from hqjax.ops.ste import identity_ste, masked_ste, normalized_ste, rescaled_ste
from hqjax.ops.ternary import (
    SCALE_RULES,
    THRESHOLD_RULES,
    Ternary,
    scale_curvature,
    scale_lsq,
    scale_unit,
    ternarize,
    ternary_parts,
    ternary_project,
    threshold_exact_cosine,
    threshold_loss_aware,
    threshold_quantile,
    threshold_ttq,
    threshold_twn,
)

__all__ = [
    "SCALE_RULES",
    "THRESHOLD_RULES",
    "Ternary",
    "agp_schedule",
    "agp_sparsity",
    "cosine_similarity",
    "cosine_to_ternary",
    "global_magnitude_masks",
    "identity_ste",
    "magnitude_mask",
    "masked_ste",
    "normalized_ste",
    "num_pruned",
    "project_to_sphere",
    "rescale_factor",
    "rescaled_ste",
    "scale_curvature",
    "scale_lsq",
    "scale_unit",
    "soft_ternarize",
    "soft_ternarize_grad",
    "ternarize",
    "ternary_parts",
    "ternary_project",
    "ternary_pull",
    "ternary_regularizer",
    "threshold_exact_cosine",
    "threshold_loss_aware",
    "threshold_quantile",
    "threshold_ttq",
    "threshold_twn",
    "unit_norm",
]
