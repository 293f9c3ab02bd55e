"""One run at a time on a checkpoint, or on an export's folder.

A run holds an exclusive lock on `CHECKPOINT.lock` (flock) for as long as it has the checkpoint
open, so a second run on the same file refuses at once instead of sending every row again; an
export holds `.insightly-etl.lock` in its folder, so a nightly run that overlaps the last one
refuses instead of writing the same files. The
operating system drops the lock when the process ends, however it ends, so a run killed with -9
never leaves a lock that blocks the next one. POSIX systems lock with `flock`, Windows with
`msvcrt.locking` on the file's first byte (the holder's process id is written after it, where
another process may read it).
"""

from __future__ import annotations

import contextlib
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from insightly_etl.errors import CheckpointError, CheckpointInUse

if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


HOLDER_AT = 1  # the holder's "pid since" starts here: byte 0 is the one Windows locks


CHECKPOINT_HINT = (
    "Two runs on one checkpoint would send every row twice: wait for that run to finish or "
    "stop it (Ctrl-C), then run again."
)


class RunLock:
    """An exclusive, non-blocking lock beside the checkpoint (or at `path`), released by the
    OS at exit."""

    def __init__(
        self, checkpoint: Path, *, path: Path | None = None, hint: str = CHECKPOINT_HINT
    ) -> None:
        self.path = path or checkpoint.with_name(checkpoint.name + ".lock")
        for _ in range(3):  # a lock file removed by its holder after it was opened: again
            if self._take(checkpoint, hint):
                break
        else:
            raise CheckpointInUse(
                f"{checkpoint} is in use (its lock file keeps changing)", hint=hint
            )
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)
        since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        os.write(self.fd, f"#{os.getpid()} {since}\n".encode())

    def _take(self, checkpoint: Path, hint: str) -> bool:
        """Lock the file at `path`: True, or False when it was removed (a discarded
        checkpoint's, by its holder) between opening and locking it, so that the lock held is
        on a file no other run opens."""
        try:  # never through a link: a planted symlink would have its target truncated
            self.fd = os.open(
                self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644
            )
        except OSError:
            if self.path.is_symlink():
                raise CheckpointError(
                    f"{self.path} is a symbolic link; a run's lock is never written through one",
                    hint="Remove it (it is only a lock file), then run again.",
                ) from None
            raise
        if os.fstat(self.fd).st_nlink > 1:
            os.close(self.fd)
            raise CheckpointError(
                f"{self.path} has other names (hard links); a run's lock is never written to a "
                "file that is also something else",
                hint="Remove it (it is only a lock file), then run again.",
            )
        if not _try_lock(self.fd):
            os.lseek(self.fd, HOLDER_AT, os.SEEK_SET)
            holder = os.read(self.fd, 200).decode("utf-8", "replace").split(" ", 1)
            os.close(self.fd)
            pid, since = [*holder, "?", "?"][:2] if holder[0] else ["?", "?"]
            raise CheckpointInUse(
                f"{checkpoint} is in use by process {pid} since {since.strip()} UTC",
                hint=hint,
            )
        try:
            same = os.path.samestat(os.fstat(self.fd), os.lstat(self.path))
        except FileNotFoundError:
            same = False
        if not same:
            os.close(self.fd)
        return same

    def release(self, *, remove: bool = False) -> None:
        """Closing drops the lock. The empty file stays, unless `remove` (the checkpoint it
        guards is gone too): removed while still held, so a run that opened it meanwhile
        finds it gone once it holds it, and takes the new one (_take)."""
        os.ftruncate(self.fd, 0)
        if remove and sys.platform != "win32":
            self.path.unlink(missing_ok=True)
        os.close(self.fd)
        if remove and sys.platform == "win32":  # an open file cannot be removed there: after
            # closing (the race _take closes stays open on Windows; a file left is harmless)
            with contextlib.suppress(OSError):
                self.path.unlink()
