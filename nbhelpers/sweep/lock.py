"""One writer per output folder: `<output_dir>/sweep.lock`, holding the writer's pid.

Two sweeps (or runs) into one folder at once would interleave their runs and overwrite
each other's sweep.json. The second one is refused with a sentence naming the first's pid.

The lock is an flock()ed file where the system has flock (Linux, macOS): the kernel drops
it when its holder dies, however it dies, so a lock left by a killed sweep is taken over
without a word. Elsewhere the file's pid decides: a lock whose pid no longer runs is stale
and taken over.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from nbhelpers.errors import UserInputError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "sweep.lock"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to someone else
        return True
    except OSError:
        return False
    return True


class FolderLock:
    """`with FolderLock(folder):` holds the folder's lock, or raises UserInputError."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "FolderLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):  # retried only when another process replaced the file meanwhile
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            if not self._lock(fd):
                holder = _read_pid(fd)
                os.close(fd)
                raise UserInputError(
                    f"another sweep (pid {holder or 'unknown'}) is writing to {self.path.parent}; "
                    "wait for it to end, or use another --output-dir")
            # The holder may have removed the file between our open and our lock: then we hold
            # the lock of a file nobody else will open. Start again on the new file.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
                return self
            os.close(fd)
        raise UserInputError(f"cannot take the lock {self.path}: it keeps changing; is another sweep starting?")

    def _lock(self, fd: int) -> bool:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
        holder = _read_pid(fd)  # no flock: the pid in the file decides
        return holder is None or holder == os.getpid() or not pid_alive(holder)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)  # before unlocking: a waiting process then sees the file gone
        except FileNotFoundError:
            pass
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode(errors="replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
