"""Recipes: HQ, HLA-TQ, PTQ and the TWN / TTQ baselines, each wrapping ANY optax optimizer.

A recipe is an `optax.chain` of the transforms in `hqjax.transforms` around the user's optimizer
``inner``; all quantizer state (phase counter, masks, temperature, TTQ scales, previous signs) lives in
the optimizer state, so checkpointing, sharding and `jax.jit` need nothing extra. Train with::

    loss(hqjax.forward_params(params, opt_state), batch)      # ternary forward, STE gradient to V
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)

Compositions (``Q`` = ``quantize_step``, ``T`` = ``total_steps``; `quantizer` is first, so it sees the
raw gradients; transforms after ``inner`` rewrite its updates):

======  ==========================================================================================
twn     ``chain(quantizer('ternary'), inner)``
ttq     ``chain(quantizer('ttq'), ttq_scales(scale_learning_rate), inner)``
ptq     ``chain(quantizer('sphere', Q, quantile), add_decayed_weights(wd), inner, prune(agp, Q+1))``
hq      ``chain(quantizer('sphere', Q, quantile), add_decayed_weights(wd), inner, prune(agp, Q+1),
        reinitialize(Q))``
hla_tq  ``chain(quantizer('hla', Q, c(t)), ternary_regularizer(ramp), add_decayed_weights(wd), inner)``
======  ==========================================================================================

(plus ``project_to_sphere(radius)`` last when ``radius`` is given). Only TWN and TTQ are the published
algorithms; PTQ, HQ and HLA-TQ are the documented reconstructions of the specification ([recon]: the
papers' full texts were not available), and every default marked [recon] below is a design choice.

Under `optax.inject_hyperparams`, list the structural arguments as static:
``optax.inject_hyperparams(hqjax.hq, static_args=hqjax.static_args(hqjax.hq))(inner=..., ...)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import optax

from hqjax._checks import check_choice, check_fraction, check_int
from hqjax.ops.prune import agp_schedule
from hqjax.schedules import ScalarOrSchedule, as_schedule, check_schedule, geometric, ramp
from hqjax.selection import Selection
from hqjax.transforms.alq import ALQ_DEFAULT, ALQSchedule, GroupRule, alq_optimizer
from hqjax.transforms.decay import add_decayed_weights
from hqjax.transforms.prune import prune
from hqjax.transforms.quantizer import quantizer
from hqjax.transforms.regularizer import ternary_regularizer
from hqjax.transforms.reinit import reinitialize
from hqjax.transforms.sphere import project_to_sphere
from hqjax.transforms.ttq import ttq_scales

__all__ = ["METHODS", "alq", "get_method", "hla_tq", "hq", "ptq", "static_args", "ttq", "twn"]

ZEROS = ("frozen", "quantile")
"""How PTQ/HQ choose the zeros of the ternary phase (the ``zeros`` argument)."""

Recipe = Callable[..., optax.GradientTransformationExtraArgs]
_STATIC = (
    "total_steps",
    "quantize_step",
    "prune_end",
    "prune_every",
    "update_every",
    "frozen_from",
    "release_from",
    "at_step",
    "axis",
    "factor",
    "min_factor",
)


def _check_inner(inner: Any) -> None:
    if not (hasattr(inner, "init") and hasattr(inner, "update")):
        raise ValueError(
            "`inner` must be an optax GradientTransformation (e.g. optax.sgd(0.1)), "
            f"got {type(inner).__name__}."
        )


def _phases(total_steps: Any, quantize_step: Any, prune_end: Any = None) -> tuple[int, int, int]:
    check_int(total_steps, "total_steps", minimum=1)
    check_int(quantize_step, "quantize_step", allow_none=True)
    check_int(prune_end, "prune_end", minimum=1, allow_none=True)
    q = total_steps // 3 if quantize_step is None else int(quantize_step)
    if q > total_steps:
        raise ValueError(f"`quantize_step`={q} must lie in [0, total_steps={total_steps}].")
    end = max(1, (2 * q) // 3) if prune_end is None else int(prune_end)
    return int(total_steps), q, end


def _sparsity_schedule(
    sparsity: ScalarOrSchedule, *, end_step: int, every: int, check_steps: tuple[int, ...]
) -> Callable[[Any], Any]:
    """A number becomes AGP from 0 at step 0 to `sparsity` at `end_step`; a callable is used as is."""
    if callable(sparsity):
        sched = as_schedule(sparsity)
    else:
        check_fraction(sparsity, "sparsity")
        sched = agp_schedule(sparsity, begin_step=0, end_step=end_step, update_every=every)
    check_schedule(sched, "sparsity", check_steps, low=0.0, high=1.0, high_inclusive=False)
    return sched


def twn(
    inner: optax.GradientTransformation,
    *,
    selection: Selection | None = None,
    axis: int | None = -1,
    factor: float = 0.7,
    quantize_step: int = 0,
    sparsity: float | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Ternary Weight Networks (Li & Liu 2016; spec B2/B3(a)), wrapping any optax optimizer.

    Forward ``ternarize(V, threshold='twn', scale='lsq')`` per unit through the identity STE:
    ``Delta = factor * mean|V|``, ``alpha = mean_{|V| > Delta}|V|``. The last two options are not part
    of TWN; they switch on single components of the other recipes for ablations (two-phase schedule,
    zeros by quantile).

    Args:
      inner: the optax optimizer that steps the latent weights (and all other parameters).
      selection: quantized leaves (default: conv/dense kernels, `hqjax.Selection`).
      axis: unit axis: -1 per output channel (library default, spec section 8 item 1); None per layer
        as in the TWN paper.
      factor: threshold factor (0.7, TWN).
      quantize_step: first ternary step; the forward pass is full precision before it (0: TWN).
      sparsity: None (TWN's threshold) or a fraction in [0, 1): the zeros of each unit are its
        ``round(sparsity * n)`` smallest magnitudes, chosen anew every step.

    Returns:
      An `optax.GradientTransformationExtraArgs`; use with `hqjax.forward_params`.

    Examples:
      >>> tx = twn(optax.sgd(0.1, momentum=0.9))
    """
    _check_inner(inner)
    check_int(quantize_step, "quantize_step")
    q = quantizer(
        "ternary",
        method="twn",
        selection=selection,
        axis=axis,
        factor=factor,
        quantize_step=quantize_step,
        threshold=None if sparsity is None else "quantile",
        sparsity=sparsity,
    )
    return optax.chain(q, inner)


def ttq(
    inner: optax.GradientTransformation,
    *,
    scale_learning_rate: ScalarOrSchedule = 1e-3,
    selection: Selection | None = None,
    axis: int | None = -1,
    factor: float = 0.05,
) -> optax.GradientTransformationExtraArgs:
    """Trained Ternary Quantization (Zhu et al. 2017; spec B2/B3(c)), wrapping any optax optimizer.

    Codes ``sign(V) 1[|V| > factor * max|V|]`` per unit; the positive and negative scales ``W_p, W_n``
    are learned in the optimizer state by `hqjax.transforms.ttq_scales` (Adam with
    `scale_learning_rate`, initialised at the mean magnitude of each sign's weights), and the latent
    gradient is TTQ's scaled one (``W_p g`` on positive codes, ``g`` on zeros, ``W_n g`` on negative).

    Args:
      inner: the optax optimizer.
      scale_learning_rate: learning rate of the scales' Adam (number or schedule). Default 1e-3 is ours
        (the paper trains scales with the model's optimizer). Give it the decay of the model's own
        schedule (`train.py` does): scales that still move once the weights have settled leave the
        BatchNorm running statistics behind, and the evaluated network with them.
      selection: quantized leaves.
      axis: unit axis (-1 per output channel, library default; None per layer as in the paper).
      factor: threshold factor (0.05, TTQ).

    Examples:
      >>> tx = ttq(optax.adam(1e-3))
    """
    _check_inner(inner)
    return optax.chain(
        quantizer("ttq", method="ttq", selection=selection, axis=axis, factor=factor),
        ttq_scales(scale_learning_rate, selection=selection, axis=axis, factor=factor),
        inner,
    )


def _sphere_recipe(
    method: str,
    inner: optax.GradientTransformation,
    *,
    total_steps: int,
    sparsity: ScalarOrSchedule,
    quantize_step: int | None,
    prune_end: int | None,
    prune_every: int,
    weight_decay: ScalarOrSchedule,
    threshold: str,
    reinit: str | None,
    selection: Selection | None,
    axis: int | None,
    scaled: str | tuple[str, ...] | None,
    radius: float | None,
    zeros: str = "quantile",
) -> optax.GradientTransformationExtraArgs:
    _check_inner(inner)
    check_choice(zeros, ZEROS, "zeros")
    if zeros == "quantile" and threshold != "mask":
        raise ValueError(
            f"threshold={threshold!r} picks the zeros inside the AGP mask frozen at the boundary; pass "
            "zeros='frozen' with it (zeros='quantile', the default, chooses the zero set itself and "
            "needs threshold='mask')."
        )
    total, q, end = _phases(total_steps, quantize_step, prune_end)
    check_int(prune_every, "prune_every", minimum=1)
    steps = tuple(sorted({0, max(q - 1, 0), q, total}))
    if not callable(sparsity) and end > max(q, 1):
        raise ValueError(
            f"`prune_end`={end} must not exceed `quantize_step`={q}: masks are frozen in the ternary phase."
        )
    sched = _sparsity_schedule(sparsity, end_step=end, every=prune_every, check_steps=steps)
    parts = [
        quantizer(
            "sphere",
            method=method,
            selection=selection,
            axis=axis,
            quantize_step=q,
            threshold="quantile" if zeros == "quantile" else threshold,
            sparsity=sched if zeros == "quantile" else None,
            scaled=scaled,
            check_steps=steps,
        ),
        add_decayed_weights(weight_decay, selection=selection),
        inner,
        prune(
            sched,
            selection=selection,
            axis=axis,
            update_every=prune_every,
            frozen_from=q + 1,
            release_from=q + 1 if zeros == "quantile" else None,
            check_steps=steps,
        ),
    ]
    if reinit is not None:
        parts.append(reinitialize(q, rule=reinit, selection=selection, axis=axis))
    if radius is not None:
        parts.append(project_to_sphere(radius, selection=selection, axis=axis))
    return optax.chain(*parts)


def ptq(
    inner: optax.GradientTransformation,
    *,
    total_steps: int,
    sparsity: ScalarOrSchedule = 0.5,
    quantize_step: int | None = None,
    prune_end: int | None = None,
    prune_every: int = 1,
    weight_decay: ScalarOrSchedule = 1e-4,
    selection: Selection | None = None,
    axis: int | None = -1,
    scaled: str | tuple[str, ...] | None = None,
    radius: float | None = None,
    zeros: str = "quantile",
) -> optax.GradientTransformationExtraArgs:
    """Pruning Ternary Quantization [recon] (spec section 3.2), wrapping any optax optimizer.

    Phase A (steps ``< quantize_step``): forward ``P(V*M)`` per unit on the unit sphere (exact Jacobian),
    masks ``M`` by AGP magnitude pruning to `sparsity`, pruned ``V`` held at exactly 0, weight decay on
    the quantized ``V``. Phase B: ternary forward on the sphere through the normalisation-aware
    ("refined") STE, every unit with exactly ``round(sparsity * n)`` zeros (see `zeros` for which).

    Args:
      inner: the optax optimizer (spec default: SGD momentum 0.9, nesterov, cosine lr).
      total_steps: training length (sets the default phase boundary).
      sparsity: final fraction of zeros in [0, 1), or a schedule ``step -> sparsity``. Default 0.5
        ([recon]: spec section 8 item 4, 0.5-0.7 for accuracy-oriented runs).
      quantize_step: first step of phase B; default ``total_steps // 3`` ([recon], item 11).
      prune_end: step where AGP reaches `sparsity`; default 2/3 of phase A ([recon], item 4).
      prune_every: steps between mask updates (AGP ``dt``); default 1.
      weight_decay: coupled weight decay on the quantized latent weights; default 1e-4 ([recon], item 10;
        5e-4 for CIFAR from scratch).
      selection: quantized leaves (default conv/dense kernels; first and last layer included, item 8).
      axis: unit axis (-1 per output channel, item 1; None per layer).
      scaled: regex rules for layers without BatchNorm after them that keep one FP scale per unit
        (least-squares) instead of the unit sphere (item 3); default none.
      radius: if given, also project the latent weights onto a sphere of this radius after every step.
      zeros: the zero set of phase B. ``'quantile'`` (default, [recon]): pruning ends at the boundary
        and every step takes the ``sparsity``-quantile of ``|V|`` per unit as zeros, so pruned weights
        may regrow (same zero count per unit, ``P(T(V))`` forward through the Jacobian of ``P``).
        ``'frozen'``: the AGP mask of the boundary for the rest of training, pruned weights held at 0
        (the default before the component ablation of ``docs/results.md``, where it cost 0.3 pp of
        validation accuracy for PTQ and 0.5 pp for HQ on MNIST ResNet-20; kept to rerun it).

    Examples:
      >>> tx = ptq(optax.sgd(0.1, momentum=0.9, nesterov=True), total_steps=300, sparsity=0.5)
    """
    return _sphere_recipe(
        "ptq",
        inner,
        total_steps=total_steps,
        sparsity=sparsity,
        quantize_step=quantize_step,
        prune_end=prune_end,
        prune_every=prune_every,
        weight_decay=weight_decay,
        threshold="mask",
        reinit=None,
        selection=selection,
        axis=axis,
        scaled=scaled,
        radius=radius,
        zeros=zeros,
    )


def hq(
    inner: optax.GradientTransformation,
    *,
    total_steps: int,
    sparsity: ScalarOrSchedule = 0.5,
    quantize_step: int | None = None,
    prune_end: int | None = None,
    prune_every: int = 1,
    weight_decay: ScalarOrSchedule = 1e-4,
    reinit: str = "sign",
    threshold: str = "mask",
    selection: Selection | None = None,
    axis: int | None = -1,
    scaled: str | tuple[str, ...] | None = None,
    radius: float | None = None,
    zeros: str = "quantile",
) -> optax.GradientTransformationExtraArgs:
    """Hyperspherical Quantization [recon] (spec section 4.2), wrapping any optax optimizer.

    PTQ (see `ptq`) plus reinitialisation at the phase boundary: the update that produces the weights of
    step ``quantize_step`` lands them on ``mean_kept|V| * sign(V) * M`` per unit, so the cosine between
    latent and ternary weights is 1 when ternary training starts ([recon], item 6).

    Args:
      inner, total_steps, sparsity, quantize_step, prune_end, prune_every, weight_decay, selection,
        axis, scaled, radius, zeros: as in `ptq` (same defaults).
      reinit: ``'sign'`` (default) or ``'none'``.
      threshold: ternary zero set in phase B: ``'mask'`` (default: the pruning mask, item 2) or
        ``'exact_cosine'`` (the cosine-maximising threshold inside the mask, with ``zeros='frozen'``;
        sparsity may then exceed the target).

    Examples:
      >>> tx = hq(optax.adamw(1e-3), total_steps=300, sparsity=0.7)
    """
    return _sphere_recipe(
        "hq",
        inner,
        total_steps=total_steps,
        sparsity=sparsity,
        quantize_step=quantize_step,
        prune_end=prune_end,
        prune_every=prune_every,
        weight_decay=weight_decay,
        threshold=threshold,
        reinit=reinit,
        selection=selection,
        axis=axis,
        scaled=scaled,
        radius=radius,
        zeros=zeros,
    )


def hla_tq(
    inner: optax.GradientTransformation,
    *,
    total_steps: int,
    quantize_step: int | None = None,
    reg_strength: ScalarOrSchedule = 0.0,
    temperature_start: float = 2.0,
    temperature_end: float = 50.0,
    sparsity: ScalarOrSchedule | None = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    normalization: str = "peak",
    min_factor: float = 0.0,
    selection: Selection | None = None,
    axis: int | None = -1,
    scaled: str | tuple[str, ...] | None = None,
    radius: float | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Hyperspherical Loss-Aware Ternary Quantization [recon] (spec section 5.2), any optax optimizer.

    Phase R (steps ``< quantize_step``): forward ``w = P(V)`` (full precision on the sphere); the
    gradient gets ``lambda(t) J_P^T (w - alpha t)`` with ``t, alpha`` from ``ternary_parts(w, 'twn',
    'lsq')`` and ``lambda`` a linear ramp from 0 to `reg_strength` over phase R. Phase Q: forward the hard
    ternary ``alpha T(w)`` per unit through the re-scaled STE, ``dL/dV = J_P^T (r_tau(w) dL/dw_q)``, with
    ``tau = c(t) / Delta`` per unit and ``c`` rising geometrically from `temperature_start` to
    `temperature_end` over phase Q.

    Args:
      inner: the optax optimizer.
      total_steps: training length.
      quantize_step: first step of phase Q; default ``total_steps // 3`` ([recon], item 11).
      reg_strength: final ``lambda`` (number or a full schedule replacing the ramp). Default 0 ([recon],
        item 13: "must be tuned"): chosen on a validation split, where every strength tried cost
        accuracy, growing with it (MNIST ResNet-20, 3 seeds: -0.08 pp at 1e-3, -0.31 at 1e-2, -0.74 at
        0.1, the default before; see the component ablation of ``docs/results.md``). Pass a value to
        switch the regularizer on.
      temperature_start, temperature_end: ``c`` at the start and end of phase Q (2 and 50, item 14).
      sparsity: None (default): TWN threshold ``0.7 mean|w|``. A number or schedule: the zero set is the
        ``sparsity``-quantile of ``|w|`` per unit (AGP from 0 to the number over 2/3 of phase R), so each
        unit has exactly ``round(sparsity * n)`` zeros when no two magnitudes tie ([recon], ours).
      weight_decay: coupled weight decay on the quantized latent weights (1e-4, item 10).
      normalization: ``'peak'`` (``r(+-Delta) ~ 1``, default) or ``'mean'`` (item 14).
      min_factor: floor of the re-scaling factor (0, item 14 option ``r_min``).
      selection, axis, scaled, radius: as in `ptq`.

    Examples:
      >>> tx = hla_tq(optax.sgd(0.1, momentum=0.9), total_steps=300)
    """
    _check_inner(inner)
    total, q, end = _phases(total_steps, quantize_step)
    steps = tuple(sorted({0, max(q - 1, 0), q, total}))
    if callable(reg_strength):
        lam = as_schedule(reg_strength)
    else:
        lam = ramp(reg_strength, end_step=max(q, 1), stop_step=q)
    check_schedule(lam, "reg_strength", steps, low=0.0, high=float("inf"))
    temp = geometric(temperature_start, temperature_end, begin_step=q, end_step=max(total, q + 1))
    sp = None
    if sparsity is not None:
        sp = _sparsity_schedule(sparsity, end_step=end, every=1, check_steps=steps)
    threshold = "twn" if sp is None else "quantile"
    parts = [
        quantizer(
            "hla",
            method="hla_tq",
            selection=selection,
            axis=axis,
            quantize_step=q,
            threshold=threshold,
            scale="lsq",
            scaled=scaled,
            temperature=temp,
            sparsity=sp,
            normalization=normalization,
            min_factor=min_factor,
            check_steps=steps,
        ),
        ternary_regularizer(
            lam,
            selection=selection,
            axis=axis,
            threshold=threshold,
            scale="lsq",
            sparsity=sp,
            scaled=scaled,
            check_steps=steps,
        ),
        add_decayed_weights(weight_decay, selection=selection),
        inner,
    ]
    if radius is not None:
        parts.append(project_to_sphere(radius, selection=selection, axis=axis))
    return optax.chain(*parts)


def alq(
    steps_per_epoch: int,
    schedule: ALQSchedule | None = None,
    *,
    top_k: float = 0.005,
    num_bases: int = 6,
    groups: Sequence[GroupRule] = (),
    selection: Selection | None = None,
    weight_decay: float = 0.0,
    seed: int = 0,
    stochastic_rounding: bool = True,
    reproduce_official_quirks: bool = False,
    fp_optimizer: optax.GradientTransformation | None = None,
    **overrides: Any,
) -> optax.GradientTransformation:
    """ALQ: adaptive loss-aware multi-bit quantization (Qu et al., CVPR 2020; spec sections 1 and 6).

    The official pipeline (1.5): ``rounds`` x [basis epochs, coordinate epochs, pruning epochs], then
    post-training STE basis epochs and coordinate epochs, as step schedules
    (`hqjax.transforms.ALQSchedule.pipeline`) driving `hqjax.transforms.alq_optimizer`. ``tx.init``
    sketches the (pretrained) params into binary bases; train ``pipeline.total_steps`` steps with
    ``hqjax.forward_params(params, opt_state)`` as the network's weights. The default schedule is that of
    the official LeNet-5 / MNIST run (`hqjax.transforms.alq.ALQ_DEFAULT`); the run's length is
    ``schedule.num_epochs * steps_per_epoch``.

    Unlike the ternary recipes ALQ is its own optimizer (AMSGrad moments are its loss model): it wraps
    no ``inner`` optimizer for the quantized weights; the full-precision leaves use ``fp_optimizer``
    (default Adam at the pipeline's learning rate).

    Args:
      steps_per_epoch: optimizer steps per epoch (the schedules are per epoch).
      schedule: the pipeline (default `ALQ_DEFAULT`).
      top_k, num_bases, groups, selection, weight_decay, seed, stochastic_rounding,
        reproduce_official_quirks, fp_optimizer: see `hqjax.transforms.alq_optimizer`.
      **overrides: `ALQSchedule` fields (learning_rate, rounds, epoch_basis, ...) replacing those of
        `schedule`.

    Returns:
      An `optax.GradientTransformation` with `hqjax.transforms.ALQState`.

    Examples:
      >>> tx = alq(100, groups=[("conv", "kernelwise"), ("fc1", "subchannelwise", 2)])
      >>> tx = alq(100, ALQ_DEFAULT.replace(rounds=5, prune_ratio=0.4), top_k=0.002)
    """
    pipe = (ALQ_DEFAULT if schedule is None else schedule).replace(**overrides).pipeline(steps_per_epoch)
    return alq_optimizer(
        pipe.learning_rate,
        pipe.mode,
        pipe.prune_rate,
        top_k=top_k,
        num_bases=num_bases,
        groups=groups,
        selection=selection,
        weight_decay=weight_decay,
        seed=seed,
        stochastic_rounding=stochastic_rounding,
        reproduce_official_quirks=reproduce_official_quirks,
        fp_optimizer=fp_optimizer,
    )


METHODS: dict[str, Recipe] = {"hq": hq, "hla_tq": hla_tq, "ptq": ptq, "twn": twn, "ttq": ttq}


def get_method(name: str, inner: optax.GradientTransformation, **kwargs: Any) -> optax.GradientTransformation:
    """Build a recipe by name: ``get_method('hq', optax.sgd(0.1), total_steps=1000, sparsity=0.7)``.

    Names are case-insensitive and ``-`` equals ``_`` (``'HLA-TQ'`` is ``'hla_tq'``).

    Raises:
      ValueError: unknown name (the message lists the valid ones) or bad arguments.

    Examples:
      >>> get_method('nope', optax.sgd(0.1))
      Traceback (most recent call last):
      ...
      ValueError: Unknown method 'nope'; valid methods are 'hq', 'hla_tq', 'ptq', 'twn', 'ttq'.
    """
    key = str(name).lower().replace("-", "_")
    if key not in METHODS:
        raise ValueError(f"Unknown method {name!r}; valid methods are {', '.join(map(repr, METHODS))}.")
    recipe = METHODS[key]
    allowed = set(inspect.signature(recipe).parameters) - {"inner"}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ValueError(f"Method {key!r} got unknown arguments {unknown}; it accepts {sorted(allowed)}.")
    return recipe(inner, **kwargs)


def static_args(recipe: Callable[..., Any] | str) -> tuple[str, ...]:
    """The structural (integer / static) arguments of a recipe or transform factory, to pass as
    ``static_args`` to `optax.inject_hyperparams`; every other number may be injected or scheduled.

    `optax.inject_hyperparams` turns *every* numeric argument (defaults included) into an array that is
    traced inside ``update``; step counts, the unit axis and the constants stored in the static
    `QuantizerConfig` must stay Python numbers. Note that an injected ``sparsity`` is the *final* target
    of the recipe's AGP schedule.

    Args:
      recipe: a recipe (`hq`, ...), its name, or a factory of `hqjax.transforms` (e.g. `prune`).

    Returns:
      The names, in a fixed order.

    Examples:
      >>> static_args('hq')
      ('total_steps', 'quantize_step', 'prune_end', 'prune_every', 'axis')
      >>> from hqjax.transforms import prune
      >>> tx = optax.inject_hyperparams(prune, static_args=static_args(prune))(sparsity=0.5)
    """
    if isinstance(recipe, str):
        key = recipe.lower().replace("-", "_")
        if key not in METHODS:
            raise ValueError(f"Unknown method {recipe!r}; valid methods are {', '.join(map(repr, METHODS))}.")
        recipe = METHODS[key]
    params = inspect.signature(recipe).parameters
    return tuple(n for n in _STATIC if n in params)
