"""Evaluation of a run: the evaluation split, accuracy over a loader, the latent network's accuracy."""

from __future__ import annotations

from typing import Any

import jax

from hqjax import data
from hqjax.train.strategy import MeshStrategy

__all__ = ["eval_sources", "evaluate", "latent_accuracy", "test_source"]


def eval_sources(config: Any) -> tuple[Any, Any]:
    """The run's ``(train, evaluation)`` sources.

    With ``config.validation_split = N > 0`` the last are N examples held out of the training split
    (`hqjax.data.split_validation`, one fixed choice for every run) and the test split is never opened:
    every accuracy the run reports is a validation accuracy. With 0 (default) it is the test split.
    """
    train = data.get_dataset(config.dataset, "train", data_dir=config.data_dir or None)
    if config.validation_split:
        return data.split_validation(train, config.validation_split)
    return train, test_source(config)


def test_source(config: Any) -> Any:
    """The test split of ``config.dataset`` (a validation run reads it only for ``config.final_test``)."""
    return data.get_dataset(config.dataset, "test", data_dir=config.data_dir or None)


def evaluate(eval_step: Any, state: Any, loader: Any, strategy: MeshStrategy) -> dict[str, float]:
    """Accuracy and loss over a whole eval loader (masked padding excluded); `eval_step` and `state` as
    `strategy` compiled and placed them."""
    totals = {"correct": 0.0, "loss_sum": 0.0, "count": 0.0}
    for batch in loader:
        out = strategy.metrics(eval_step(state, strategy.batch(batch)))
        for k in totals:
            totals[k] += float(out[k])
    n = max(totals["count"], 1.0)
    return {"accuracy": totals["correct"] / n, "loss": totals["loss_sum"] / n, "count": totals["count"]}


def latent_accuracy(
    config, model, state, latent_forward, train_source, test_loader, mesh, local_batch
) -> float:
    """Test accuracy of the full-precision latent network (`hqjax.latent_params`).

    The running BatchNorm statistics of a run belong to the weights it trained with (ternary ones in
    the last phase), so they are re-estimated for the latent weights first: the training-mode forward
    pass over ``config.bn_recalibration_batches`` training batches (no augmentation, a separate seed;
    the run's own data iterator is untouched) updates a copy of the statistics.
    """
    stats_step = jax.jit(
        lambda params, opt_state, stats, x: model.apply(
            {"params": latent_forward(params, opt_state), "batch_stats": stats}, x, train=True,
            mutable=["batch_stats"],
        )[1]["batch_stats"]
    )
    loader = data.train_loader(
        train_source, batch_size=local_batch, seed=config.seed + 1, augment=False, dataset=config.dataset,
        host_sharding="interleaved",
    )
    strategy = MeshStrategy(mesh)  # the global (replicated) state, whichever strategy trained it
    stats = state.batch_stats
    for _, batch in zip(range(config.bn_recalibration_batches), loader, strict=False):
        stats = stats_step(state.params, state.opt_state, stats, strategy.batch(batch)["image"])
    eval_step = strategy.eval_step(model, latent_forward)
    return evaluate(eval_step, state._replace(batch_stats=stats), test_loader, strategy)["accuracy"]
