"""One training run per run directory: an advisory lock on ``workdir/train.lock``.

The lock is an ``fcntl.flock`` on an open file, so the operating system drops it when the process ends
for any reason (a crash, ``SIGKILL``, a preempted machine): a killed run never leaves its directory
locked, and the next run takes the lock without anyone deleting a file. The file itself stays and says
who holds (or last held) it. In a multi-process run only process 0 takes the lock; the other processes
follow it. Where the filesystem has no ``flock`` (some network mounts), the run goes on unlocked with a
warning.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import time
from collections.abc import Iterator

import jax
from absl import logging

LOCK_FILE = "train.lock"


class WorkdirLockedError(RuntimeError):
    """Another training run holds the run directory."""


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 512).decode("utf-8", "replace").strip()
    return text or "a process that has not written its name yet"


@contextlib.contextmanager
def workdir_lock(workdir: str) -> Iterator[None]:
    """Hold the lock of `workdir` (created if missing) for the duration of the ``with`` block.

    Raises:
      WorkdirLockedError: another live run holds it (the message names its pid, host and start time).
      OSError: the directory cannot be created or written.
    """
    if jax.process_index() != 0:
        yield
        return
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkdirLockedError(
                f"The run directory {os.path.abspath(workdir)} is in use by another training run "
                f"({_holder(fd)}). Wait for that run to end or stop it, or pass another --workdir."
            ) from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            logging.warning("Cannot lock %s (%s); a second run on this directory will not be refused.",
                            path, e.strerror)
            yield
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {stamp}\n".encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
