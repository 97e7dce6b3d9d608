"""Read a sweep's run directories into pandas.

The report reads only the files described in docs/run_directory.md; it never
imports the trainer. A run directory without summary.json is still being
written (or was killed before its first summary), so it is skipped with a
warning rather than guessed at.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from nbhelpers.errors import UserInputError

# summary.json keys that hold a dict of per-split metrics at the best epoch.
_SPLITS = ("train", "val", "test")


def find_sweep_dir(sweep_dir: str | Path = "", *, search_from: Path | None = None) -> Path:
    """Return `sweep_dir` as an absolute path, or guess the newest sweep when it is empty.

    The guess serves the report notebook opened by hand in JupyterLab: it looks
    in `executed/` beside and above `search_from` (default: the working folder)
    for the most recently changed folder that holds `runs/`.
    """
    if str(sweep_dir).strip():
        return Path(sweep_dir).expanduser().resolve()
    start = (search_from or Path.cwd()).resolve()
    candidates = [
        runs.parent
        for base in (start, start.parent)
        for runs in (base / "executed").glob("*/runs")
        if runs.is_dir()
    ]
    if not candidates:
        raise UserInputError(
            f"no sweep_dir given and no sweep with a runs/ folder under {start / 'executed'}: "
            "set sweep_dir to the folder of one sweep."
        )
    return max(candidates, key=lambda p: (p / "runs").stat().st_mtime).resolve()


def _run_dirs(sweep_dir: Path) -> tuple[list[Path], list[str]]:
    """Run directories that have a summary, and the names of those skipped."""
    sweep_dir = Path(sweep_dir)
    runs_dir = sweep_dir / "runs"
    if not runs_dir.is_dir():
        raise UserInputError(f"no runs found in {sweep_dir}: it has no runs/ folder.")
    candidates = sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    ready = [p for p in candidates if (p / "summary.json").is_file()]
    skipped = [p.name for p in candidates if p not in ready]
    for name in skipped:
        warnings.warn(
            f"skipping run {name}: it has no summary.json yet (still running or interrupted)",
            stacklevel=3,
        )
    if not ready:
        raise UserInputError(
            f"no runs found in {sweep_dir}: none of the {len(candidates)} folders in runs/ "
            "has a summary.json."
        )
    return ready, skipped


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`, or None (with a warning) when it is absent or unreadable."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        warnings.warn(f"cannot read {path}: {exc}", stacklevel=3)
        return None
    return data if isinstance(data, dict) else None


def _number(value: Any) -> Any:
    """JSON null becomes NaN so numeric columns stay numeric."""
    return math.nan if value is None else value


def _flatten_run(run_dir: Path, summary: dict[str, Any], config: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in summary.items():
        if key in _SPLITS or key == "grid":
            continue
        row[key] = value
    if summary.get("stand_in"):  # tables and figures must not pass a stand-in off as the dataset
        row["dataset"] = f"{summary.get('dataset')} (stand-in: {summary['stand_in']})"
    # The folder name is the run_id by contract; using it keeps runs and histories joinable.
    row["run_id"] = run_dir.name
    for split in _SPLITS:
        for metric, value in (summary.get(split) or {}).items():
            row[f"{split}_{metric}"] = _number(value)

    grid = summary.get("grid") or {}
    for key, value in grid.items():
        row[f"grid.{key}"] = value
    # A stable text form of the grid point: seeds of one configuration share it.
    row["grid_label"] = ", ".join(f"{k}={grid[k]}" for k in sorted(grid))

    cfg = (config or {}).get("config") or {}
    for key, value in cfg.items():
        if key == "model_kwargs" and isinstance(value, dict):
            for sub, sub_value in value.items():
                row[f"model_kwargs.{sub}"] = sub_value
        else:
            row[f"config.{key}"] = value
    for key, value in ((config or {}).get("environment") or {}).items():
        row[f"env.{key}"] = value

    # 'layers' is the one architecture knob the table sorts on; a grid value wins
    # over the model's keyword argument because it is what the sweep varied.
    model_kwargs = cfg.get("model_kwargs") if isinstance(cfg.get("model_kwargs"), dict) else {}
    row["layers"] = _number(grid.get("layers", model_kwargs.get("layers")))
    row["run_dir"] = str(run_dir.resolve())
    return row


def load_runs(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per finished or failed run under `<sweep_dir>/runs/`.

    Columns: every top-level key of summary.json; `train_<m>`, `val_<m>`,
    `test_<m>` for the metrics at the best epoch (test from the best
    checkpoint); `grid.<key>` and `grid_label`; `config.<field>` and
    `model_kwargs.<key>` from config.json; `env.<key>`; `layers` (grid value,
    else model_kwargs.layers, else NaN); `run_dir`. Missing numbers are NaN.
    `df.attrs["skipped"]` lists run folders skipped for lack of summary.json.
    """
    sweep_dir = Path(sweep_dir)
    run_dirs, skipped = _run_dirs(sweep_dir)
    rows = []
    for run_dir in run_dirs:
        summary = _read_json(run_dir / "summary.json")
        if summary is None:
            warnings.warn(f"skipping run {run_dir.name}: its summary.json is not a JSON object", stacklevel=2)
            skipped.append(run_dir.name)
            continue
        rows.append(_flatten_run(run_dir, summary, _read_json(run_dir / "config.json")))
    if not rows:
        raise UserInputError(f"no runs found in {sweep_dir}: no summary.json could be read.")
    runs = pd.DataFrame(rows)
    runs.attrs["skipped"] = sorted(skipped)
    runs.attrs["sweep_dir"] = str(sweep_dir.resolve())
    return runs


def _read_history(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)  # accepts NaN and Infinity, as json.dumps writes them
        except ValueError:
            warnings.warn(f"ignoring unreadable line {number} of {path}", stacklevel=3)
            continue
        if isinstance(record, dict):
            records.append({k: _number(v) for k, v in record.items()})
    return records


def load_histories(sweep_dir: str | Path) -> pd.DataFrame:
    """Every epoch of every run in long form: run_id, epoch, wall_s and all history keys.

    Runs with no history (failed before their first epoch) contribute no rows;
    diverged epochs keep their NaN values so plots can show where a run broke.
    """
    run_dirs, _ = _run_dirs(Path(sweep_dir))
    frames = []
    for run_dir in run_dirs:
        records = _read_history(run_dir / "history.jsonl")
        if records:
            frame = pd.DataFrame(records)
            frame.insert(0, "run_id", run_dir.name)
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["run_id", "epoch", "wall_s"])
    history = pd.concat(frames, ignore_index=True, sort=False)
    for column in ("epoch", "wall_s"):
        if column not in history:
            history[column] = math.nan
    leading = ["run_id", "epoch", "wall_s"]
    history = history[leading + [c for c in history.columns if c not in leading]]
    for column in history.columns[1:]:
        history[column] = pd.to_numeric(history[column], errors="coerce")
    return history.sort_values(["run_id", "epoch"], kind="stable").reset_index(drop=True)
