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
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

import hqjax
from hqjax import data
from hqjax.train import build, parallel
from hqjax.train.checkpoint import Checkpointer, CheckpointWriteError
from hqjax.train.config import validate
from hqjax.train.evaluation import eval_sources, evaluate, latent_accuracy, test_source
from hqjax.train.lock import workdir_lock
from hqjax.train.logs import MetricWriter
from hqjax.train.methods import MethodSpec, frozen_bn_epochs, get_spec
from hqjax.train.periodic import Periodic
from hqjax.train.report import final_report, layer_stats
from hqjax.train.steps import TrainState
from hqjax.train.strategy import PMAP_AXIS, MeshStrategy, make_strategy

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
    epochs and the optimizer settings of ``config.pretrain``; the test split is never read for it
    (``final_test`` applies to the quantized network only)."""
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
        c.final_test = False
    return c


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
    """`train_and_evaluate`, also returning the final train state (on the host): the pre-training
    stage (when the method has one and nothing is checkpointed yet), then the run itself."""
    validate(config)
    # before anything is written: a bad batch size or a missing dataset is refused here
    mesh, strategy = _parallel(config)
    sources = eval_sources(config)
    checkpointer = Checkpointer(
        workdir, max_to_keep=max(config.keep_checkpoints, 1), async_save=config.async_checkpoints
    )
    pretrained = _pretrain_stage(config, workdir, checkpointer)
    run = _Run.build(config, workdir, checkpointer, pretrained, mesh, strategy, sources)
    try:
        outcome = _step_loop(run)
    except BaseException as e:
        try:
            checkpointer.close()  # the saves already under way finish: the last good checkpoint stays
        except CheckpointWriteError:
            if not isinstance(e, CheckpointWriteError):  # else: the same failed save, reported once
                raise
        raise
    return _finish(run, outcome)


def _pretrain_stage(config: Any, workdir: str, checkpointer: Checkpointer) -> tuple[Any, Any] | None:
    """The first stage of a method that starts from a full-precision network (ALQ): train (or resume,
    or reload when finished) that run in ``workdir/pretrain`` and return its final
    ``(params, batch_stats)``; None when the method does not pre-train or the run has a checkpoint."""
    if not (get_spec(config.method).pretrains and config.pretrain.epochs):
        return None
    if checkpointer.latest_step() is not None:
        return None
    if jax.process_index() == 0:
        print(f"Full-precision pre-training ({config.pretrain.epochs} epochs) in "
              f"{os.path.join(workdir, 'pretrain')}", flush=True)
    _, state = _train(pretrain_config(config), os.path.join(workdir, "pretrain"))
    return jax.device_get((state.params, state.batch_stats))


@dataclass
class _Run:
    """What one training run is made of, built once by `_Run.build`: data, compiled steps, the state
    (restored when a checkpoint exists), writers and the schedule of periodic work."""

    config: Any
    spec: MethodSpec
    strategy: MeshStrategy
    mesh: Mesh
    steps_per_epoch: int
    total_steps: int
    train_source: Any
    eval_source: Any  # the split every evaluation reads: validation, or test without a validation split
    checkpointer: Checkpointer
    train_iter: Any
    state: Any  # the run state, as the strategy placed it
    steps: dict[str, Any]  # 'train', 'frozen' (BatchNorm in inference mode; None when unused), 'eval'
    frozen_epochs: frozenset[int]
    summarize: Any
    writer: MetricWriter
    local_batch: int
    local_eval_batch: int
    start_step: int
    due: dict[str, Periodic]  # when to 'log', 'eval', write layer 'stats', save a 'checkpoint'

    @classmethod
    def build(cls, config: Any, workdir: str, checkpointer: Checkpointer, pretrained: tuple[Any, Any] | None,
              mesh: Mesh, strategy: MeshStrategy, sources: tuple[Any, Any]) -> _Run:
        info = data.info(config.dataset)
        train_source, eval_source = sources
        steps_per_epoch = build.steps_per_epoch(config, len(train_source))
        # under pmap, BatchNorm statistics over the whole batch, as under jit: reduced across the pmap axis
        model = build.build_model(config, pmap_axis=strategy.axis_name)
        tx = build.build_optimizer(config, steps_per_epoch)
        spec = get_spec(config.method)
        state = build.init_state(config, model, tx, info.image_shape, mesh, pretrained)
        local_batch = config.batch_size // jax.process_count()
        # Each process reads its slice of every global batch; the batches do not depend on the process count.
        train_iter = iter(data.train_loader(
            train_source, batch_size=local_batch, seed=config.seed, augment=config.augment,
            dataset=config.dataset, host_sharding="interleaved",
        ))
        state = _restore(checkpointer, state, train_iter, config)
        # ALQ's pruning epochs run BatchNorm in inference mode (spec 1.4 d): a second compiled step
        frozen_epochs = frozenset(frozen_bn_epochs(config, steps_per_epoch, state.batch_stats))
        steps = _compile_steps(strategy, model, tx, spec, bool(frozen_epochs))
        total_steps = steps_per_epoch * config.num_epochs
        return cls(
            config=config, spec=spec, strategy=strategy, mesh=mesh, steps_per_epoch=steps_per_epoch,
            total_steps=total_steps, train_source=train_source,
            eval_source=eval_source, checkpointer=checkpointer,
            train_iter=train_iter, state=strategy.place(state), steps=steps, frozen_epochs=frozen_epochs,
            summarize=jax.jit(hqjax.summarize) if spec.quantized else None,
            writer=MetricWriter(workdir, tensorboard=config.tensorboard), local_batch=local_batch,
            local_eval_batch=config.eval_batch_size // jax.process_count(), start_step=int(state.step),
            due=_schedule(config, steps_per_epoch, total_steps),
        )

    def host_state(self) -> TrainState:
        """The train state replicated over the mesh (one global array tree, readable on every process)."""
        return self.strategy.global_state(self.state)

    def eval_loader(self, source: Any = None) -> Any:
        """Batches of `source` (default: the run's evaluation split) for `evaluate`."""
        source = self.eval_source if source is None else source
        return data.eval_loader(source, batch_size=self.local_eval_batch, dataset=self.config.dataset)

    def eval_row(self, done: int) -> dict[str, Any]:
        """Accuracy and loss of the current network on the evaluation split, after step `done`."""
        ev = evaluate(self.steps["eval"], self.state, self.eval_loader(), self.strategy)
        return {"epoch": done // self.steps_per_epoch, "ternary_accuracy": ev["accuracy"],
                "ternary_loss": ev["loss"]}

    def step(self, step: int, batch: Any) -> dict[str, Any]:
        """Run training step ``step + 1`` on `batch` (BatchNorm frozen in the frozen epochs)."""
        kind = "frozen" if step // self.steps_per_epoch in self.frozen_epochs else "train"
        self.state, metrics = self.steps[kind](self.state, batch)
        return metrics


def _parallel(config: Any) -> tuple[Mesh, MeshStrategy]:
    """The run's device mesh and parallel strategy; refuses batch sizes the mesh cannot split."""
    num_devices = config.num_devices or jax.device_count()
    mesh = parallel.make_mesh(num_devices)
    parallel.check_batch_size(config.batch_size, mesh)
    parallel.check_batch_size(config.eval_batch_size, mesh)
    return mesh, make_strategy(config, mesh, num_devices)


def _restore(checkpointer: Checkpointer, state: TrainState, train_iter: Any, config: Any) -> TrainState:
    """`state`, or the newest checkpoint's state (the data iterator set to its position)."""
    restored = checkpointer.restore(state, config.to_dict())
    if restored is None:
        return state
    resumed_step, state, iter_state = restored
    train_iter.set_state(iter_state)
    if jax.process_index() == 0:
        print(f"Resuming from the checkpoint of step {resumed_step} in {checkpointer.directory}", flush=True)
    return state


def _schedule(config: Any, steps_per_epoch: int, total_steps: int) -> dict[str, Periodic]:
    """When the periodic work of a run is due (the ``*_every_*`` settings; 0 turns one off)."""
    c = config

    def every(steps: int = 0, epochs: int = 0, at_end: bool = True) -> Periodic:
        return Periodic(steps_per_epoch, total_steps, steps, epochs, at_end)

    return {
        "log": every(max(c.log_every_steps, 1)),
        "eval": every(epochs=1),
        "stats": every(c.layer_stats_every_steps, c.layer_stats_every_epochs,
                       bool(c.layer_stats_every_epochs)),
        "checkpoint": every(c.checkpoint_every_steps, c.checkpoint_every_epochs,
                            bool(c.checkpoint_every_epochs)),
    }


def _compile_steps(strategy: MeshStrategy, model: Any, tx: Any, spec: MethodSpec,
                   frozen: bool) -> dict[str, Any]:
    train_forward, ternary_forward, _ = spec.forwards()
    return {
        "train": strategy.train_step(model, tx, train_forward),
        "frozen": strategy.train_step(model, tx, train_forward, bn_frozen=True) if frozen else None,
        "eval": strategy.eval_step(model, ternary_forward),
    }


class _Pending:
    """The metrics of the steps since the last log line, still on the device; raises on the first
    non-finite loss among them, naming its step."""

    def __init__(self) -> None:
        self.metrics: list[Any] = []
        self.checked = 0  # how many of them are known to have a finite loss
        self.done = 0  # the step the last one belongs to

    def add(self, metrics: Any, done: int) -> None:
        self.metrics.append(metrics)
        self.done = done

    def check(self, upto: int | None = None) -> None:
        """Stop on the first non-finite loss among ``metrics[checked:upto]`` (default: all)."""
        upto = len(self.metrics) if upto is None else upto
        for i in range(self.checked, max(upto, self.checked)):
            loss = np.asarray(jax.device_get(self.metrics[i]["loss"]))
            if not np.isfinite(loss).all():
                bad = self.done - len(self.metrics) + i + 1
                raise FloatingPointError(
                    f"The training loss became {loss.ravel()[0]} at step {bad}; the run stops there and "
                    "keeps its last checkpoint (no state of that step or later is saved). Lower "
                    "--config.learning_rate, or check the data, then rerun the same command."
                )
        self.checked = max(upto, self.checked)

    def mean(self, strategy: MeshStrategy) -> dict[str, float]:
        """The mean of every metric over the pending steps (all checked first); clears them."""
        self.check()
        host = [strategy.metrics(m) for m in jax.device_get(self.metrics)]
        self.metrics.clear()
        self.checked = 0
        return {k: float(np.mean([m[k] for m in host])) for k in host[0]}


class _Saver:
    """Checkpoint saves: at most one per step, never of a state that went non-finite."""

    def __init__(self, run: _Run, pending: _Pending) -> None:
        self.run, self.pending, self.saved = run, pending, set()

    def __call__(self, step: int) -> None:
        if step in self.saved:
            return
        self.pending.check()
        state = self.run.host_state()
        if not bool(jax.device_get(all_finite((state.params, state.batch_stats)))):
            raise FloatingPointError(
                f"The weights became non-finite in step {step} (its loss was still finite); the run "
                "stops there and keeps its last checkpoint. Lower --config.learning_rate, or check "
                "the data, then rerun the same command."
            )
        self.run.checkpointer.save(step, state, self.run.train_iter.get_state(), self.run.config.to_dict())
        self.saved.add(step)


@dataclass
class _Outcome:
    """What the step loop leaves for the final report."""

    history: list[dict[str, Any]]
    train_seconds: float
    wall_start: float
    stopped_early: bool


def _progress_bar(run: _Run, start_step: int) -> Any:
    if not (run.config.progress_bar and jax.process_index() == 0):
        return None
    from tqdm import tqdm

    return tqdm(total=run.total_steps, initial=start_step, desc=f"{run.config.method} {run.config.model}",
                dynamic_ncols=True)


def _step_loop(run: _Run) -> _Outcome:
    """Train from the state's step to the end (or ``max_steps``), with the periodic work after each
    step: log lines, evaluation, layer statistics, checkpoints; saves and stops early on a signal or
    a preemption notice."""
    c, start_step = run.config, run.start_step
    pending, bar = _Pending(), _progress_bar(run, start_step)
    save = _Saver(run, pending)
    outcome = _Outcome(history=[], train_seconds=0.0, wall_start=time.time(), stopped_early=False)
    stop_at = min(run.total_steps, c.max_steps) if c.max_steps else run.total_steps
    with _StopRequest() as stop:
        for step in range(start_step, stop_at):
            t0 = time.time()
            done = step + 1
            pending.add(run.step(step, run.strategy.batch(next(run.train_iter))), done)
            # the loss of the step before this one: finished (or nearly) by now, so reading it keeps
            # one step in flight and stops a diverging run one step after it went non-finite
            pending.check(len(pending.metrics) - 1)
            if run.due["log"].due(done):
                mean = pending.mean(run.strategy)
                run.writer.write(done, "train", mean)
                if bar is not None:
                    bar.set_postfix(loss=f"{mean['loss']:.3f}", acc=f"{mean['accuracy']:.3f}")
            if bar is not None:
                bar.update(1)
            outcome.train_seconds += time.time() - t0
            _after_step(run, done, outcome.history, save)
            preempted = run.checkpointer.reached_preemption(done)
            if stop.requested or preempted or done == stop_at < run.total_steps:
                save(done)
                outcome.stopped_early = done < run.total_steps
                break
    if bar is not None:
        bar.close()
    return outcome


def _after_step(run: _Run, done: int, history: list[dict[str, Any]], save: _Saver) -> None:
    """The evaluation, layer statistics and checkpoint due after step `done`."""
    if run.due["eval"].due(done):
        row = run.eval_row(done)
        run.writer.write(done, "eval", row)
        history.append({"step": done, **row})
    if run.spec.quantized and run.due["stats"].due(done):
        run.writer.write(done, "layers", layer_stats(run.host_state(), run.summarize))
    if run.due["checkpoint"].due(done):
        save(done)


def _finish(run: _Run, outcome: _Outcome) -> tuple[dict[str, Any], TrainState]:
    """Close the checkpointer, measure the latent network, write and return the summary and the final
    (host) state."""
    run.checkpointer.close()
    final = run.host_state()
    # nothing evaluated in this process (e.g. a finished run resumed): the restored network, once
    history = outcome.history or [{"step": int(final.step), **run.eval_row(int(final.step))}]
    if not run.spec.quantized:
        latent = history[-1]["ternary_accuracy"]
    else:
        _, _, latent_forward = run.spec.forwards()
        latent = latent_accuracy(
            run.config, build.build_model(run.config), run.strategy.latent_state(final), latent_forward,
            run.train_source, run.eval_loader(), run.mesh, run.local_batch,
        )
    test = None
    if run.config.get("final_test") and not outcome.stopped_early:  # the test split, read once
        test = evaluate(run.steps["eval"], run.state, run.eval_loader(test_source(run.config)), run.strategy)
    summary = final_report(
        run.config, final, history, latent_accuracy=latent, summarize=run.summarize,
        train_seconds=outcome.train_seconds, wall_seconds=time.time() - outcome.wall_start,
        stopped_early=outcome.stopped_early, test=test,
    )
    numbers = {k: v for k, v in summary.items() if isinstance(v, (int, float))}
    run.writer.write(int(final.step), "summary", numbers)
    run.writer.close()
    return summary, final
