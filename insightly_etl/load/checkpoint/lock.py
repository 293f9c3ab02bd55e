"""One run at a time on a checkpoint.

A run holds an exclusive lock on `CHECKPOINT.lock` (flock) for as long as it has the checkpoint
open, so a second run on the same file refuses at once instead of sending every row again. The
operating system drops the lock when the process ends, however it ends, so a run killed with -9
never leaves a lock that blocks the next one.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from insightly_etl.errors import CheckpointInUse
from insightly_etl.files import utc_now


class RunLock:
    """An exclusive, non-blocking lock beside the checkpoint, released by the OS at exit."""

    def __init__(self, checkpoint: Path) -> None:
        self.path = checkpoint.with_name(checkpoint.name + ".lock")
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self.fd, 200).decode("utf-8", "replace").split(" ", 1)
            os.close(self.fd)
            pid, since = [*holder, "?", "?"][:2] if holder[0] else ["?", "?"]
            raise CheckpointInUse(
                f"{checkpoint} is in use by process {pid} since {since.strip()} UTC",
                hint="Two runs on one checkpoint would send every row twice: wait for that run "
                "to finish or stop it (Ctrl-C), then run again.",
            ) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()} {utc_now()}\n".encode())

    def release(self) -> None:
        os.ftruncate(self.fd, 0)
        os.close(self.fd)  # closing drops the lock; the empty file stays (deleting it would race)
