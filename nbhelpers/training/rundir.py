"""Reading and writing one run directory (docs/run_directory.md), atomically.

Every write goes to a temporary file in the same folder and is then renamed over the
target with os.replace, so a run killed at any instant leaves the old file or the new
one, never half of one. A kill can leave the temporary file behind (`.<name>.<random>.tmp`):
`clean_temporary()` removes them when the next writer of the folder starts.

Files get the permissions the user's umask gives a new file (mkstemp alone would make
them 0600, unreadable to a group that shares the results).

last.pt is read with `load_checkpoint()`: torch.load(weights_only=True), so a crafted
checkpoint cannot run code on --resume. It holds only tensors, numbers, strings and
containers of them (see trainer.rng_state for the one place that needed care), plus the
settings it was trained with (`checkpoint_settings`), which a resume compares with its own.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch

from nbhelpers.errors import StorageError, UserInputError

FINAL_STATUSES = ("completed", "early_stopped", "diverged", "failed")
# Settings that do not change what a run computes: where it writes, where data are cached,
# whether it resumes or shows progress bars, the target (only time-to-target reads it) and
# the experiment's number in its params file (a label; it moves when experiments are added).
SETTINGS_NOT_COMPARED = ("output_dir", "data_dir", "resume", "progress", "target", "experiment")

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask (read from /proc where possible: os.umask() must set it to read it)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _storage_error(path: Path, err: OSError) -> StorageError:
    reason = err.strerror or str(err) or type(err).__name__
    hint = " (free some space and run again with --resume)" if err.errno == errno.ENOSPC else ""
    return StorageError(err.errno or 0, f"cannot write {path}: {reason}{hint}")


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _storage_error(path, err) from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError) and not isinstance(err, StorageError):
            raise _storage_error(path, err) from None
        raise


def clean_temporary(folder: Path) -> list[Path]:
    """Remove the temporary files that killed writers left in `folder`; returns them.

    Call it only where no other process writes into `folder` at the same time (a run's
    own directory when the run starts; a sweep folder under the sweep's lock).
    """
    removed = []
    for leftover in Path(folder).glob(".*.tmp"):
        try:
            leftover.unlink()
            removed.append(leftover)
        except OSError:
            pass
    return removed


def _clean(value: Any) -> Any:
    """JSON has no NaN/Infinity: write them as null so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_text(path: Path, text: str) -> None:
    _atomic_write(Path(path), lambda h: h.write(text), "w")


def write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(Path(path), lambda h: h.write(data), "wb")


def write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(_clean(data), indent=2, sort_keys=False) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_text(path, "".join(json.dumps(_clean(row)) + "\n" for row in rows))


def save_torch(path: Path, obj: Any) -> None:
    _atomic_write(Path(path), lambda h: torch.save(obj, h), "wb")


def load_checkpoint(path: Path, *, map_location: Any = "cpu", mmap: bool = False) -> Any:
    """A checkpoint (last.pt, best_model.pt) read with weights_only=True: data, never code.

    What our checkpoints hold loads under torch's default allow-list; older last.pt files
    also hold NumPy's RNG state as an array, so NumPy's array reconstruction is allowed too.
    A file that needs anything else is refused in one sentence.
    """
    import numpy as np
    core = getattr(np, "_core", None) or np.core
    allowed = [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise
    except Exception as err:  # pickle.UnpicklingError, RuntimeError of a truncated file, ...
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserInputError(
            f"{path} cannot be loaded safely ({first[:160]}); delete it, or run without --resume "
            "to start the run again") from None


def checkpoint_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a checkpoint records: every config value that changes what the run computes."""
    settings = {k: v for k, v in config.items() if k not in SETTINGS_NOT_COMPARED}
    return json.loads(json.dumps(_clean(settings), sort_keys=True, default=str))


def settings_mismatch(saved: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """The names of the settings that differ between a checkpoint and this run ("" if none).

    A checkpoint without recorded settings (written before they were recorded) is accepted.
    """
    if saved is None:
        return []
    now = checkpoint_settings(current)
    return sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))


def describe_mismatch(saved: Mapping[str, Any], current: Mapping[str, Any], keys: list[str]) -> str:
    now = checkpoint_settings(current)
    return ", ".join(f"{k} ({json.dumps(saved.get(k))} in last.pt, {json.dumps(now.get(k))} now)"
                     for k in keys)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def read_jsonl(path: Path) -> list[dict]:
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


class RunDir:
    """Paths of one run directory, and its writers."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    history = property(lambda self: self.path / "history.jsonl")
    summary = property(lambda self: self.path / "summary.json")
    details = property(lambda self: self.path / "details.txt")
    best_model = property(lambda self: self.path / "best_model.pt")
    last = property(lambda self: self.path / "last.pt")

    def predictions(self, split: str) -> Path:
        """predictions_val.jsonl (best epoch) or predictions_test.jsonl (best checkpoint)."""
        return self.path / f"predictions_{split}.jsonl"

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def status(self) -> str | None:
        summary = read_json(self.summary)
        return summary.get("status") if summary else None

    def clean_temporary(self) -> list[Path]:
        """Remove temporary files that a killed write left in this run directory."""
        return clean_temporary(self.path) if self.path.is_dir() else []

    def clear_results(self) -> None:
        """Remove what an earlier attempt left (a fresh start must not mix with it)."""
        if not self.path.is_dir():
            return
        stale = [self.history, self.summary, self.details, self.best_model, self.last]
        stale += list(self.path.glob("predictions_*.jsonl"))
        for path in stale:
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def is_finished(self) -> bool:
        """Runs with a final outcome (completed, stopped early, diverged) are skipped by --resume.

        A diverged run would diverge again from its last checkpoint; a failed or interrupted
        one is run again (continuing from last.pt when it has one).
        """
        return self.status() in ("completed", "early_stopped", "diverged")
