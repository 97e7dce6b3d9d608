"""Reading and writing one run directory (docs/run_directory.md), atomically.

Every write goes to a temporary file in the same folder and is then renamed over the
target with os.replace, so a run killed at any instant leaves the old file or the new
one, never half of one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

FINAL_STATUSES = ("completed", "early_stopped", "diverged", "failed")


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


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


def write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(_clean(data), indent=2, sort_keys=False) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_text(path, "".join(json.dumps(_clean(row)) + "\n" for row in rows))


def save_torch(path: Path, obj: Any) -> None:
    _atomic_write(Path(path), lambda h: torch.save(obj, h), "wb")


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

    def is_finished(self) -> bool:
        """Runs with a final outcome (completed, stopped early, diverged) are skipped by --resume.

        A diverged run would diverge again from its last checkpoint; a failed or interrupted
        one is run again (continuing from last.pt when it has one).
        """
        return self.status() in ("completed", "early_stopped", "diverged")
