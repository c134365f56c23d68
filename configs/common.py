"""Shared pieces of the run configs: the base config and each method's hyper-parameters.

A config file's ``get_config(method)`` takes the method from the ``--config`` argument, e.g.
``--config configs/cifar10_resnet20.py:ptq``; ``--config.method=...`` switches method afterwards but
keeps the file's method_kwargs, so prefer the ``:method`` form.
"""

from __future__ import annotations

import ml_collections
from ml_collections.config_dict import placeholder

from hqjax.train.methods import method_names
from hqjax.transforms.alq import ALQ_DEFAULT

METHODS = method_names()


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
    # > 0: hold this many training examples out (one fixed choice) and evaluate on them instead of the
    # test split, which the run then never opens: for choosing hyper-parameters
    c.validation_split = 0
    # with validation_split > 0: after training, evaluate the final network once on the test split
    # (`test_accuracy` in the summary); every choice stays made on the validation split
    c.final_test = False
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
    c.layer_stats_every_steps = 0  # > 0: also record the per-layer statistics every this many steps
    c.bn_recalibration_batches = 50  # training batches that re-estimate BatchNorm for the latent eval
    # full-precision pre-training (ALQ starts from a trained network, spec section 1.5): run first, in
    # WORKDIR/pretrain, when the method is 'alq' and epochs > 0; the other fields replace the run's own
    c.pretrain = ml_collections.ConfigDict(
        {
            "epochs": 0,
            "optimizer": "sgd",
            "learning_rate": 0.05,
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 5e-4,
            "lr_schedule": "cosine",
            "warmup_epochs": 0,
        }
    )
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
        # quantize_step and sparsity are not TWN's: they switch on the two-phase schedule and zeros by
        # quantile for the component ablation (0 and None: TWN)
        kw = {"factor": 0.7, "quantize_step": 0, "sparsity": placeholder(float)}
    elif method == "ttq":
        kw = {"factor": 0.05, "scale_learning_rate": 1e-3}
    elif method in ("ptq", "hq"):
        kw = {"sparsity": sparsity, "scaled": scaled, "zeros": "quantile"}
    elif method == "hla_tq":
        kw = {"reg_strength": 0.0, "temperature_start": 2.0, "temperature_end": 50.0, "scaled": scaled,
              "min_factor": 0.0, "sparsity": placeholder(float)}
    return ml_collections.ConfigDict(kw)


def with_method(c: ml_collections.ConfigDict, method: str, *, alq_preset: str | None = None,
                **kwargs) -> ml_collections.ConfigDict:
    """Set ``c.method`` and its hyper-parameters; returns `c`. ALQ takes its settings from
    `alq_preset` (see `with_alq`); the other methods from `method_kwargs(method, **kwargs)`."""
    if method == "alq":
        return with_alq(c, alq_preset)
    c.method = method
    c.method_kwargs = method_kwargs(method, **kwargs)
    return c


# `method_kwargs` of every ALQ preset, in this order: the optimizer's group rules and basis slots, the
# `ALQSchedule` fields (its learning rate is the run's `learning_rate`) and the pruning candidates.
ALQ_PRESET_KEYS = ("groups", "num_bases", "rounds", "epoch_basis", "ld_basis", "epoch_coord", "ld_coord",
                   "epoch_prune", "prune_ratio", "top_k", "epoch_ste", "ld_ste", "epoch_post", "ld_post")


def alq_preset(learning_rate: float, batch_size: int, *, groups: tuple = (), num_bases: int = 6,
               top_k: float = 0.005, **schedule) -> dict:
    """An `ALQ_PRESETS` entry: ``hqjax.transforms.alq.ALQ_DEFAULT`` (the official LeNet-5 / MNIST
    pipeline) with the `schedule` overrides, validated once, written out as ``method_kwargs``
    (``post_learning_rate`` only when set); `num_bases` and `top_k` default to the official LeNet-5 values."""
    sched = ALQ_DEFAULT.replace(learning_rate=learning_rate, **schedule)
    values = {"groups": groups, "num_bases": num_bases, "top_k": top_k}
    kwargs = {k: values[k] if k in values else getattr(sched, k) for k in ALQ_PRESET_KEYS}
    if sched.post_learning_rate is not None:
        kwargs["post_learning_rate"] = sched.post_learning_rate
    return {"learning_rate": learning_rate, "batch_size": batch_size, "kwargs": kwargs}


# The official ALQ settings per network (spec sections 1.1 and 1.5), as overrides of the official
# LeNet-5 / MNIST pipeline. Group rules are (path regex, structure[, subc]); the first matching rule wins.
_CIFAR10 = {"rounds": 5, "prune_ratio": 0.4, "top_k": 0.002}  # the official CIFAR-10 (VGG-small) schedule
_RESNET_GROUPS = (("conv_init", "channelwise"), ("head", "subchannelwise", 2), ("", "pixelwise"))
ALQ_PRESETS: dict[str, dict] = {
    "lenet5": alq_preset(1e-3, 128, groups=(("conv1|conv2", "kernelwise"), ("fc1", "subchannelwise", 2),
                                            ("head", "subchannelwise", 1))),
    "vgg_small": alq_preset(1e-3, 128, groups=(("conv1/", "channelwise"), ("conv", "pixelwise"),
                                               ("fc1", "subchannelwise", 16),
                                               ("fc2|head", "subchannelwise", 2)), **_CIFAR10),
    # The official MNIST schedule with one group per output filter of every layer: the fallback for
    # models without a preset, and the choice of the small digits / MNIST ResNet runs [recon].
    "mnist_channelwise": alq_preset(1e-3, 128),
    # CIFAR-10 ResNet-20/56: no official setting exists; the ImageNet ResNet's groups (first conv
    # channelwise, the head subchannelwise, every other conv pixelwise) with the official CIFAR-10
    # schedule of VGG-small (I_max 6, 5 rounds, pr 0.4, top_k 0.002, lr 1e-3, batch 128) [recon].
    "cifar_resnet": alq_preset(1e-3, 128, groups=_RESNET_GROUPS, **_CIFAR10),
    # ImageNet ResNets (official for ResNet-18/34; ResNet-50 takes the same settings [recon])
    "resnet18": alq_preset(2e-4, 256, groups=_RESNET_GROUPS, num_bases=8, rounds=5, epoch_basis=10,
                           epoch_coord=5, ld_coord=0.6, prune_ratio=0.15, top_k=0.0005, epoch_ste=80,
                           post_learning_rate=5e-6),
}


# Models whose settings are another preset's (no official setting of their own).
ALQ_PRESET_OF_MODEL: dict[str, str] = {
    "resnet20": "cifar_resnet", "resnet56": "cifar_resnet", "resnet34": "resnet18", "resnet50": "resnet18",
}


def with_pretrain(c: ml_collections.ConfigDict, epochs: int, **recipe) -> ml_collections.ConfigDict:
    """For an ALQ config, train its full-precision starting point first: `epochs` epochs with the
    ``c.pretrain`` fields given in `recipe` (e.g. ``learning_rate=0.1``); other methods are unchanged."""
    unknown = sorted(set(recipe) - set(c.pretrain))
    if unknown:
        raise ValueError(f"Unknown pretrain field(s) {unknown}; choose from {sorted(c.pretrain)}.")
    if c.method == "alq":
        c.pretrain.epochs = epochs
        c.pretrain.update(recipe)
    return c


def alq_preset_name(model: str) -> str:
    """The `ALQ_PRESETS` key `with_alq` uses for `model` when no preset is named."""
    return model if model in ALQ_PRESETS else ALQ_PRESET_OF_MODEL.get(model, "mnist_channelwise")


def with_alq(c: ml_collections.ConfigDict, preset: str | None = None) -> ml_collections.ConfigDict:
    """Switch `c` to ALQ with the settings of `preset` (a key of `ALQ_PRESETS`).

    `preset` defaults to ``c.model``'s own preset, else the one `ALQ_PRESET_OF_MODEL` names for it
    (CIFAR ResNet-20/56: "cifar_resnet"; ResNet-34/50: "resnet18"), else "mnist_channelwise".
    ``num_epochs`` becomes the pipeline's length; set ``pretrain.epochs`` for the full-precision
    network ALQ starts from.
    """
    from hqjax.train.optim import alq_num_epochs

    preset = preset or alq_preset_name(c.model)
    if preset not in ALQ_PRESETS:
        raise ValueError(f"Unknown ALQ preset {preset!r}; choose one of {', '.join(ALQ_PRESETS)}.")
    settings = ALQ_PRESETS[preset]
    c.method = "alq"
    c.method_kwargs = ml_collections.ConfigDict(dict(settings["kwargs"]))
    c.learning_rate = settings["learning_rate"]
    c.batch_size = settings["batch_size"]
    c.num_epochs = alq_num_epochs(c)
    c.warmup_epochs = 0
    c.weight_decay = 0.0
    c.quantize_first = True
    c.quantize_last = True
    return c
