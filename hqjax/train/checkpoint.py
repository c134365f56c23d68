"""Orbax checkpoints of a training run: train state, data-iterator state and config.

One `orbax.checkpoint.CheckpointManager` per run directory (``workdir/checkpoints``): asynchronous,
atomic saves (a step directory only appears once complete, so a torn checkpoint is never read back),
keep-N, and a save when the process is asked to stop (preemption). A checkpoint records the config it
was written with; restoring it under a config with a different model, method, dataset or number of
classes is refused with an error that names the differing fields.

Several processes (a multi-host run): every process calls `Checkpointer.save` and
`Checkpointer.restore` at the same step. The train state is one global (replicated) array tree that
orbax writes once; each process's data-iterator state is its own, stored as
``data/process_{i}-of-{n}.json`` and read back by the same process. A checkpoint is only resumed with
the number of processes that wrote it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

# Config fields that define what a checkpoint contains; a resume must agree on all of them.
IDENTITY_FIELDS: tuple[str, ...] = ("model", "method", "dataset", "num_classes", "model_kwargs")


class CheckpointMismatchError(ValueError):
    """The checkpoint in the run directory was written for a different model, method or process count."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, file-size limit, permissions); older ones are intact."""


_TS_OS_ERROR = re.compile(r"os_error_code='?(\d+)")


def _os_error(e: BaseException) -> OSError | None:
    """The `OSError` behind `e` (itself, or along its chain of causes), if any."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        code = _TS_OS_ERROR.search(str(e))  # tensorstore reports an OS error inside a ValueError
        if code:
            return OSError(int(code.group(1)), os.strerror(int(code.group(1))))
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def data_filename(process_index: int, process_count: int) -> str:
    """The file of one process's data-iterator state inside a checkpoint's ``data`` directory."""
    return f"process_{process_index}-of-{process_count}.json"


_DATA_FILE = re.compile(r"process_(\d+)-of-(\d+)\.json")
_LEGACY_DATA_FILE = "metadata"  # single-process checkpoints written before per-process data files


class Checkpointer:
    """Save and restore ``(state, data_state, config)`` in ``workdir/checkpoints``.

    Args:
      workdir: run directory.
      max_to_keep: number of most recent checkpoints kept.
      async_save: write in a background thread (the training loop goes on meanwhile).
    """

    def __init__(self, workdir: str, *, max_to_keep: int = 3, async_save: bool = True) -> None:
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, enable_async_checkpointing=async_save, create=True
        )
        self._process = (jax.process_index(), jax.process_count())
        self._pending: int | None = None  # the step of the save under way (asynchronous saves)
        # Every process writes its own iterator state (primary_host=None: no single writer).
        every_process = ocp.options.MultiprocessingOptions(primary_host=None)
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=options,
            item_handlers={
                "state": ocp.StandardCheckpointHandler(),
                "data": ocp.JsonCheckpointHandler(
                    data_filename(*self._process), multiprocessing_options=every_process
                ),
                "config": ocp.JsonCheckpointHandler(),
            },
        )

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or None."""
        return self._manager.latest_step()

    def save(self, step: int, state: Any, data_state: Any, config: Mapping[str, Any]) -> None:
        """Save asynchronously (every process must call this; orbax coordinates the writes).

        `data_state` is this process's own data-iterator state (a JSON-serialisable dict).

        Raises:
          CheckpointWriteError: this save, or the asynchronous one before it, could not be written;
            the message names the step and the newest complete checkpoint, which is left intact.
        """
        with self._writing(int(step)):
            self._manager.save(
                int(step),
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state),
                    data=ocp.args.JsonSave({"iterator": data_state}),
                    config=ocp.args.JsonSave(json.loads(json.dumps(dict(config), default=str))),
                ),
                force=True,
            )
        self._pending = int(step)

    @contextlib.contextmanager
    def _writing(self, step: int | None) -> Iterator[None]:
        """Turn an OS error of a save (this one, or the pending asynchronous one that orbax reports now)
        into a `CheckpointWriteError` that says which step failed and which checkpoint is intact."""
        try:
            yield
        except Exception as e:
            cause = _os_error(e)
            if cause is None:
                raise
            failed = self._pending if self._pending is not None else step
            self._pending = None
            complete = self._complete_steps()
            kept = (f"the checkpoint of step {complete[-1]} is intact and the run resumes from it"
                    if complete else "no earlier checkpoint exists, so the run starts over")
            what = f"the checkpoint of step {failed}" if failed is not None else "a checkpoint"
            raise CheckpointWriteError(
                cause.errno,
                f"Could not write {what} in {self.directory}: "
                f"{cause.strerror or cause}. Free disk space (or raise the file-size quota) and rerun the "
                f"same command: {kept}.",
            ) from e

    def _complete_steps(self) -> list[int]:
        """The steps whose checkpoint directory is complete on disk (orbax renames a finished save)."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        return sorted(int(n) for n in names if n.isdigit())

    def reached_preemption(self, step: int) -> bool:
        """True when the cluster asked this job to stop (multi-host preemption notice)."""
        return self._manager.reached_preemption(int(step))

    def wait(self) -> None:
        """Block until pending asynchronous saves are on disk (`CheckpointWriteError` if one failed)."""
        with self._writing(None):
            self._manager.wait_until_finished()
        self._pending = None

    def close(self) -> None:
        """Finish pending saves and release the manager (`CheckpointWriteError` if a save failed)."""
        try:
            self.wait()
        finally:
            self._manager.close()

    def restore(
        self, abstract_state: Any, config: Mapping[str, Any], step: int | None = None
    ) -> tuple[int, Any, Any] | None:
        """Restore the newest readable checkpoint (or the given step), or return None when there is none.

        When the newest checkpoints cannot be read (corrupt, truncated or missing files) and an older one
        can, each unreadable step directory is moved aside, renamed ``<step>.unreadable-<UTC time>``
        (never deleted), and one warning names the unreadable and the restored step: the run goes on from
        the older checkpoint and later saves of those steps do not collide with the damaged directories.

        Args:
          abstract_state: the state's structure with shapes, dtypes and shardings (e.g. from
            ``jax.eval_shape`` or the freshly initialised state).
          config: the current run config; its identity fields must match the checkpoint's.
          step: a specific step (default: the newest readable one; nothing is moved aside then).

        Returns:
          ``(step, state, data_state)``, or None.

        Raises:
          CheckpointMismatchError: the checkpoint is for another model/method/dataset.
          ValueError: no checkpoint can be read (or the requested `step` cannot); nothing is moved.
        """
        steps = sorted(self._manager.all_steps(), reverse=True) if step is None else [step]
        if not steps:
            return None
        failures: list[tuple[int, str]] = []
        for s in steps:
            restored = self._try_restore_step(s, abstract_state, config, failures)
            if restored is None:
                continue
            if failures:
                moved = self._move_aside([f for f, _ in failures])
                logging.warning(
                    "The checkpoint of step %s cannot be read (%s); moved it to %s and resumed from step %d.",
                    ", ".join(str(f) for f, _ in failures), "; ".join(m for _, m in failures),
                    ", ".join(moved), s,
                )
            return restored
        raise ValueError(
            "No checkpoint in "
            + self.directory
            + " can be read: "
            + "; ".join(m for _, m in failures)
            + ". Move the broken step directories away, or use a new --workdir."
        )

    def _try_restore_step(
        self, step: int, abstract_state: Any, config: Mapping[str, Any], failures: list[tuple[int, str]]
    ) -> tuple[int, Any, Any] | None:
        """``(step, state, data_state)``, or None when a process cannot read `step` (why: in `failures`).

        All processes take the same decision: the step's config and this process's data-iterator file
        are read first and the processes agree that all of them could, then the train state is restored
        and they agree again, so a checkpoint one process cannot read (its own data file damaged, say) is
        given up by every process, not resumed by some and skipped by others.
        """
        path = os.path.join(self.directory, str(step))
        reason = None
        try:
            data_state = self._read_metadata(step, config)
        except CheckpointMismatchError:
            raise
        except Exception as e:  # noqa: BLE001 - any read failure: note it, then try an older one
            reason = f"{path}: {type(e).__name__}: {e}"
        if _all_processes(reason is None):
            try:
                abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
                args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
                state = self._manager.restore(step, args=args)["state"]
            except Exception as e:  # noqa: BLE001
                reason = f"{path}: {type(e).__name__}: {e}"
            if _all_processes(reason is None):
                return step, state, data_state
        failures.append((step, reason or f"{path}: another process cannot read its part"))
        return None

    def _move_aside(self, steps: Sequence[int]) -> list[str]:
        """Rename the directories of unreadable `steps` to ``<step>.unreadable-<time>`` (process 0; the
        others wait for it) and reload the manager's view of the directory; returns the new paths."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        moved = [os.path.join(self.directory, f"{s}.unreadable-{stamp}") for s in steps]
        if jax.process_index() == 0:
            for s, target in zip(steps, moved, strict=True):
                os.rename(os.path.join(self.directory, str(s)), target)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("hqjax_checkpoint_move_aside")
        self._manager.reload()
        return moved

    def _read_metadata(self, step: int, config: Mapping[str, Any]) -> Any:
        """Check the saved config of `step` against `config`; return this process's data-iterator state."""
        path = os.path.join(self.directory, str(step))
        saved = self._manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]
        check_compatible(saved, config, path)
        return self._read_data_state(path)

    def _read_data_state(self, path: str) -> Any:
        """This process's data-iterator state in the checkpoint at `path`."""
        data_dir = os.path.join(path, "data")
        index, count = self._process
        names = os.listdir(data_dir) if os.path.isdir(data_dir) else []
        if data_filename(index, count) in names:
            name = data_filename(index, count)
        elif count == 1 and _LEGACY_DATA_FILE in names:
            name = _LEGACY_DATA_FILE
        else:
            written = sorted({int(m.group(2)) for m in map(_DATA_FILE.fullmatch, names) if m})
            if written and count not in written:
                raise CheckpointMismatchError(
                    f"The checkpoint at {path} was written by a run of {written[0]} process(es); this run "
                    f"has {count}. Each process resumes its own data iterator: restart with "
                    f"{written[0]} process(es), or use a new --workdir."
                )
            raise FileNotFoundError(
                f"{os.path.join(data_dir, data_filename(index, count))} (the data-iterator state of "
                f"process {index}) is missing."
            )
        with open(os.path.join(data_dir, name), encoding="utf-8") as f:
            return json.load(f)["iterator"]


def _all_processes(ok: bool) -> bool:
    """Whether `ok` holds on every process of the run (a collective when there are several)."""
    if jax.process_count() == 1:
        return ok
    from jax.experimental import multihost_utils

    return bool(np.all(multihost_utils.process_allgather(np.asarray(ok, np.int32))))


def check_compatible(
    saved: Mapping[str, Any], config: Mapping[str, Any], path: str, fields: Sequence[str] = IDENTITY_FIELDS
) -> None:
    """Raise `CheckpointMismatchError` when `saved` and `config` differ on an identity field."""
    current = json.loads(json.dumps(dict(config), default=str))
    diffs = [
        f"{k}: checkpoint has {saved.get(k)!r}, this run has {current.get(k)!r}"
        for k in fields
        if saved.get(k) != current.get(k)
    ]
    if diffs:
        raise CheckpointMismatchError(
            f"The checkpoint at {path} was written by a different run configuration ("
            + "; ".join(diffs)
            + "). Use a new --workdir for this configuration, or restore the original settings."
        )
