"""Shared pieces of the run configs: the base config and each method's hyper-parameters.

A config file's ``get_config(method)`` takes the method from the ``--config`` argument, e.g.
``--config configs/cifar10_resnet20.py:ptq``; ``--config.method=...`` switches method afterwards but
keeps the file's method_kwargs, so prefer the ``:method`` form.
"""

from __future__ import annotations

import ml_collections

METHODS = ("fp", "twn", "ttq", "ptq", "hq", "hla_tq")


def base_config() -> ml_collections.ConfigDict:
    """Every field a run config has, with the defaults of the embedded digits run."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    # data
    c.dataset = "digits"
    c.data_dir = ""  # tfds data_dir, or the directory of IDX files for 'mnist_idx'
    c.augment = False  # True: the dataset's standard augmentation (CIFAR pad-crop-flip, ImageNet RRC-flip)
    # model
    c.model = "resnet20"
    c.num_classes = 10
    c.model_kwargs = ml_collections.ConfigDict()
    c.compute_dtype = "float32"  # 'bfloat16': convolutions in bf16, params float32
    # quantization method
    c.method = "hq"
    c.method_kwargs = ml_collections.ConfigDict()
    c.quantize_first = True  # ternarize the first conv (spec section 8 item 8)
    c.quantize_last = True  # ternarize the classifier
    c.first_layer = "conv_init"  # regex naming the first layer's parameters ('' = natural path order)
    c.last_layer = "head"  # regex naming the classifier's parameters
    # optimisation (spec section 8 item 11: SGD momentum 0.9 nesterov, cosine lr)
    c.optimizer = "sgd"  # 'sgd' | 'adamw' | 'adam'
    c.learning_rate = 0.1
    c.momentum = 0.9
    c.nesterov = True
    c.weight_decay = 5e-4
    c.lr_schedule = "cosine"  # 'cosine' | 'constant'
    c.warmup_epochs = 1
    c.num_epochs = 40
    c.max_steps = 0  # > 0: stop (with a checkpoint) after this many steps; schedules still span num_epochs
    c.batch_size = 128
    c.eval_batch_size = 256
    # parallelism
    c.parallel = "jit"  # 'jit' (mesh sharding) | 'pmap'
    c.num_devices = 0  # 0: all devices
    # checkpoints and logging
    c.checkpoint_every_epochs = 10
    c.checkpoint_every_steps = 0  # > 0: also save every this many steps
    c.keep_checkpoints = 2
    c.async_checkpoints = True
    c.log_every_steps = 20
    c.progress_bar = True
    c.tensorboard = True
    c.layer_stats_every_epochs = 5
    c.bn_recalibration_batches = 50  # training batches that re-estimate BatchNorm for the latent eval
    return c


def method_kwargs(method: str, *, sparsity: float = 0.5, scaled: str = "head") -> ml_collections.ConfigDict:
    """Hyper-parameters of `method` (spec section 8 defaults; [recon] where the papers are silent).

    The phase boundary of the two-phase methods defaults to a third of training (item 11) and AGP
    pruning ends at two thirds of phase A (item 4); the layers matched by `scaled` (default: the
    classifier) keep one FP scale per output instead of the unit sphere, as no BatchNorm follows them
    (item 3).
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    kw: dict = {}
    if method == "twn":
        kw = {"factor": 0.7}
    elif method == "ttq":
        kw = {"factor": 0.05, "scale_learning_rate": 1e-3}
    elif method in ("ptq", "hq"):
        kw = {"sparsity": sparsity, "scaled": scaled}
    elif method == "hla_tq":
        kw = {"reg_strength": 0.1, "temperature_start": 2.0, "temperature_end": 50.0, "scaled": scaled}
    return ml_collections.ConfigDict(kw)


def with_method(c: ml_collections.ConfigDict, method: str, **kwargs) -> ml_collections.ConfigDict:
    """Set ``c.method`` and its hyper-parameters; returns `c`."""
    c.method = method
    c.method_kwargs = method_kwargs(method, **kwargs)
    return c
