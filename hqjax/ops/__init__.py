"""Pure quantization ops: functions on arrays, no state, jit- and vmap-able.

Modules: `sphere` (B1, B4), `prune` (B6), `ternary` (B2, B3), `ste` (B5, section 7.2), `soft`
(HLA-TQ section 5.2), `alq` (ALQ section 1) and `activation` (optional k-bit activations, section 1.7).
Block and section numbers refer to the algorithm specification.
"""

from hqjax.ops.activation import k_bit_relu, quantize_activation
from hqjax.ops.alq import (
    ALQ_STRUCTURES,
    alq_storage_bits,
    average_bits,
    diag_to_alpha,
    fix_signs,
    from_groups,
    grad_to_alpha,
    group_shape,
    importance,
    nearest_codes,
    reconstruct,
    sketch,
    to_groups,
    wls_refit,
)
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
    "ALQ_STRUCTURES",
    "SCALE_RULES",
    "THRESHOLD_RULES",
    "Ternary",
    "agp_schedule",
    "k_bit_relu",
    "quantize_activation",
    "agp_sparsity",
    "alq_storage_bits",
    "average_bits",
    "cosine_similarity",
    "cosine_to_ternary",
    "diag_to_alpha",
    "fix_signs",
    "from_groups",
    "global_magnitude_masks",
    "grad_to_alpha",
    "group_shape",
    "identity_ste",
    "importance",
    "magnitude_mask",
    "masked_ste",
    "nearest_codes",
    "normalized_ste",
    "num_pruned",
    "project_to_sphere",
    "reconstruct",
    "rescale_factor",
    "rescaled_ste",
    "scale_curvature",
    "scale_lsq",
    "scale_unit",
    "sketch",
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
    "to_groups",
    "unit_norm",
    "wls_refit",
]
