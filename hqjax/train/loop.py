"""`train_and_evaluate(config, workdir)`: the whole training program, from one CPU to a pod.

Layout after the Flax ImageNet example: pure step functions (`hqjax.train.steps`), input pipelines
(`hqjax.data`), what a run is built from (`hqjax.train.build`), jit-over-a-mesh or pmap behind one
interface (`hqjax.train.strategy`), evaluation (`hqjax.train.evaluation`), orbax checkpoints
(`hqjax.train.checkpoint`), metrics (`hqjax.train.logs`). Each process reads only its shard of the
data; logging and the progress bar come from process 0; every process takes part in checkpoint saves
and restores.
"""

from __future__ import annotations

import copy
import os
import signal
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import hqjax
from hqjax import data
from hqjax.train import build, parallel
from hqjax.train.checkpoint import Checkpointer, CheckpointWriteError
from hqjax.train.config import validate
from hqjax.train.evaluation import eval_sources, evaluate, latent_accuracy
from hqjax.train.lock import workdir_lock
from hqjax.train.logs import MetricWriter
from hqjax.train.methods import frozen_bn_epochs, get_spec
from hqjax.train.report import final_report, layer_stats
from hqjax.train.steps import TrainState
from hqjax.train.strategy import PMAP_AXIS, make_strategy

__all__ = ["PMAP_AXIS", "eval_sources", "pretrain_config", "train_and_evaluate"]


class _StopRequest:
    """Turns SIGTERM/SIGINT into a flag the loop checks, so it can save before exiting.

    With several processes all of them must stop at the same step: SIGTERM is left to jax's preemption
    service, which agrees on that step (`Checkpointer.reached_preemption`), SIGINT is passed on to it as
    a SIGTERM, and the flag stays False.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if jax.process_count() > 1:
            handlers = {signal.SIGINT: self._to_sigterm}
        else:
            handlers = {signal.SIGTERM: self._handle, signal.SIGINT: self._handle}
        for sig, handler in handlers.items():
            try:
                self._previous[sig] = signal.signal(sig, handler)
            except ValueError:  # not in the main thread
                pass
        return self

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        self.requested = True

    @staticmethod
    def _to_sigterm(signum, frame) -> None:  # noqa: ARG004
        os.kill(os.getpid(), signal.SIGTERM)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def pretrain_config(config: Any) -> Any:
    """The full-precision run an ALQ run starts from: `config` with method 'fp', ``pretrain.epochs``
    epochs and the optimizer settings of ``config.pretrain``."""
    pre = config.pretrain
    c = copy.deepcopy(config)
    with c.unlocked():
        c.method = "fp"
        c.method_kwargs = ml_collections.ConfigDict()
        c.num_epochs = pre.epochs
        c.max_steps = 0
        for field in ("optimizer", "learning_rate", "momentum", "nesterov", "weight_decay", "lr_schedule",
                      "warmup_epochs"):
            c[field] = pre[field]
        c.pretrain.epochs = 0
    return c


def _pretrained(config: Any, workdir: str) -> tuple[Any, Any]:
    """Train (or resume, or reload when finished) the full-precision run in ``workdir/pretrain``;
    returns its final ``(params, batch_stats)``."""
    if jax.process_index() == 0:
        print(f"Full-precision pre-training ({config.pretrain.epochs} epochs) in "
              f"{os.path.join(workdir, 'pretrain')}", flush=True)
    _, state = _train(pretrain_config(config), os.path.join(workdir, "pretrain"))
    return jax.device_get((state.params, state.batch_stats))


@jax.jit
def all_finite(tree: Any) -> jax.Array:
    """True when every floating-point leaf of `tree` is finite (one reduction on the device)."""
    leaves = [jnp.isfinite(x).all() for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def train_and_evaluate(config: Any, workdir: str) -> dict[str, Any]:
    """Train and evaluate a model as `config` says; checkpoints and metrics go to `workdir`.

    Resumes from the newest checkpoint in `workdir` if there is one (refusing one written for a
    different model, method or dataset). An ALQ run with ``pretrain.epochs > 0`` first trains (or
    resumes) its full-precision starting point in ``workdir/pretrain``.

    Only one run at a time may use `workdir`: a second one raises `WorkdirLockedError` before it
    trains (see `hqjax.train.lock`; a killed run does not leave the directory locked).

    Returns:
      The final summary: accuracies (latent and ternary), sparsity, bits, sizes, timings.
    """
    validate(config)
    with workdir_lock(workdir):
        return _train(config, workdir)[0]


def _train(config: Any, workdir: str) -> tuple[dict[str, Any], TrainState]:
    """`train_and_evaluate`, also returning the final train state (on the host)."""
    validate(config)
    info = data.info(config.dataset)
    num_devices = config.num_devices or jax.device_count()
    mesh = parallel.make_mesh(num_devices)
    parallel.check_batch_size(config.batch_size, mesh)
    parallel.check_batch_size(config.eval_batch_size, mesh)
    strategy = make_strategy(config, mesh, num_devices)
    local_batch = config.batch_size // jax.process_count()
    local_eval_batch = config.eval_batch_size // jax.process_count()

    train_source, test_source = eval_sources(config)
    steps_per_epoch = build.steps_per_epoch(config, len(train_source))
    total_steps = steps_per_epoch * config.num_epochs

    # under pmap, BatchNorm statistics over the whole batch, as under jit: reduced across the pmap axis
    model = build.build_model(config, pmap_axis=strategy.axis_name)
    base_model = build.build_model(config)
    tx = build.build_optimizer(config, steps_per_epoch)
    spec = get_spec(config.method)
    train_forward, ternary_forward, latent_forward = spec.forwards()

    checkpointer = Checkpointer(
        workdir, max_to_keep=max(config.keep_checkpoints, 1), async_save=config.async_checkpoints
    )
    pretrained = None
    if spec.pretrains and config.pretrain.epochs and checkpointer.latest_step() is None:
        pretrained = _pretrained(config, workdir)
    state = build.init_state(config, model, tx, info.image_shape, mesh, pretrained)
    # Each process reads its slice of every global batch; the batches do not depend on the process count.
    train_loader = data.make_loader(
        train_source, batch_size=local_batch, train=True, seed=config.seed,
        augment=config.augment, dataset=config.dataset, host_sharding="interleaved",
    )
    train_iter = iter(train_loader)
    restored = checkpointer.restore(state, config.to_dict())
    if restored is not None:
        resumed_step, state, iter_state = restored
        train_iter.set_state(iter_state)
        if jax.process_index() == 0:
            print(f"Resuming from the checkpoint of step {resumed_step} in {checkpointer.directory}",
                  flush=True)
    start_step = int(state.step)

    # ALQ's pruning epochs run BatchNorm in inference mode (spec 1.4 d): a second compiled step
    frozen_epochs = frozen_bn_epochs(config, steps_per_epoch, state.batch_stats)
    train_step = strategy.train_step(model, tx, train_forward)
    frozen_step = strategy.train_step(model, tx, train_forward, bn_frozen=True) if frozen_epochs else None
    eval_step = strategy.eval_step(model, ternary_forward)
    run_state = strategy.place(state)

    def host_state():
        """The train state replicated over the mesh (one global array tree, readable on every process)."""
        return strategy.global_state(run_state)

    def eval_loader():
        return data.make_loader(
            test_source, batch_size=local_eval_batch, train=False, seed=config.seed,
            dataset=config.dataset,
        )

    summarize = jax.jit(hqjax.summarize) if spec.quantized else None
    writer = MetricWriter(workdir, tensorboard=config.tensorboard)
    is_main = jax.process_index() == 0
    bar = None
    if config.progress_bar and is_main:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=start_step, desc=f"{config.method} {config.model}",
                   dynamic_ncols=True)

    saved_steps: set[int] = set()
    pending: list[Any] = []  # metrics of the steps since the last log line, still on the device
    checked = 0  # how many of them are known to have a finite loss

    def check_finite(upto: int) -> None:
        """Stop on the first non-finite loss among ``pending[checked:upto]``, naming its step."""
        nonlocal checked
        for i in range(checked, max(upto, checked)):
            loss = np.asarray(jax.device_get(pending[i]["loss"]))
            if not np.isfinite(loss).all():
                bad = done - len(pending) + i + 1
                raise FloatingPointError(
                    f"The training loss became {loss.ravel()[0]} at step {bad}; the run stops there and "
                    "keeps its last checkpoint (no state of that step or later is saved). Lower "
                    "--config.learning_rate, or check the data, then rerun the same command."
                )
        checked = max(upto, checked)

    def save(step: int) -> None:
        if step not in saved_steps:  # at most one save per step
            check_finite(len(pending))  # never save a state that went non-finite
            state = host_state()
            if not bool(jax.device_get(all_finite((state.params, state.batch_stats)))):
                raise FloatingPointError(
                    f"The weights became non-finite in step {step} (its loss was still finite); the run "
                    "stops there and keeps its last checkpoint. Lower --config.learning_rate, or check "
                    "the data, then rerun the same command."
                )
            checkpointer.save(step, state, train_iter.get_state(), config.to_dict())
            saved_steps.add(step)

    history: list[dict[str, Any]] = []
    t_start = time.time()
    train_time = 0.0
    done = start_step
    stopped_early = False
    stop_at = min(total_steps, config.max_steps) if config.max_steps else total_steps
    try:
        with _StopRequest() as stop:
            for step in range(start_step, stop_at):
                t0 = time.time()
                batch = strategy.batch(next(train_iter))
                step_fn = frozen_step if step // steps_per_epoch in frozen_epochs else train_step
                run_state, metrics = step_fn(run_state, batch)
                pending.append(metrics)
                done = step + 1
                # the loss of the step before this one: finished (or nearly) by now, so reading it keeps
                # one step in flight and stops a diverging run one step after it went non-finite
                check_finite(len(pending) - 1)
                if done % max(config.log_every_steps, 1) == 0 or done == total_steps:
                    check_finite(len(pending))
                    host = [strategy.metrics(m) for m in jax.device_get(pending)]
                    mean = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
                    pending.clear()
                    checked = 0
                    writer.write(done, "train", mean)
                    if bar is not None:
                        bar.set_postfix(loss=f"{mean['loss']:.3f}", acc=f"{mean['accuracy']:.3f}")
                if bar is not None:
                    bar.update(1)
                train_time += time.time() - t0
                epoch_end = done % steps_per_epoch == 0
                every_steps = config.layer_stats_every_steps
                stats_due = bool(every_steps) and done % every_steps == 0
                if epoch_end or done == total_steps:
                    epoch = done // steps_per_epoch
                    ev = evaluate(eval_step, run_state, eval_loader(), strategy)
                    row = {"epoch": epoch, "ternary_accuracy": ev["accuracy"], "ternary_loss": ev["loss"]}
                    writer.write(done, "eval", row)
                    history.append({"step": done, **row})
                    every = config.layer_stats_every_epochs
                    stats_due |= bool(every) and (epoch % every == 0 or done == total_steps)
                if stats_due and spec.quantized:
                    writer.write(done, "layers", layer_stats(host_state(), summarize))
                if epoch_end or done == total_steps:
                    ck_every = config.checkpoint_every_epochs
                    if ck_every and (epoch % ck_every == 0 or done == total_steps):
                        save(done)
                if config.checkpoint_every_steps and done % config.checkpoint_every_steps == 0:
                    save(done)
                if stop.requested or checkpointer.reached_preemption(done) or done == stop_at < total_steps:
                    save(done)
                    stopped_early = done < total_steps
                    break
    except BaseException as e:
        try:
            checkpointer.close()  # the saves already under way finish: the last good checkpoint stays
        except CheckpointWriteError:
            if not isinstance(e, CheckpointWriteError):  # else: the same failed save, reported once
                raise
        raise
    if bar is not None:
        bar.close()
    checkpointer.close()
    final = host_state()
    if not spec.quantized:
        latent = history[-1]["ternary_accuracy"] if history else float("nan")
    else:
        latent = latent_accuracy(
            config, base_model, strategy.latent_state(final), latent_forward, train_source, eval_loader(),
            mesh, local_batch,
        )
    summary = final_report(
        config, final, history, latent_accuracy=latent, summarize=summarize, train_seconds=train_time,
        wall_seconds=time.time() - t_start, stopped_early=stopped_early,
    )
    writer.write(int(host_state().step), "summary", {k: v for k, v in summary.items()
                                                   if isinstance(v, (int, float))})
    writer.close()
    return summary, final
