"""Choosing each optimizer's learning rate from a grid, on validation only.

The LR-grid protocol (docs/design.md, "A fair learning-rate protocol"): every optimizer
trains once (the first seed) at every LR of the grid; per optimizer the LR with the best
validation primary metric is selected; the remaining seeds then run at that LR alone.

Kept apart from nbhelpers.sweep (which imports the trainer's world) so that the report,
which reads only run directories, can use the same rule and the same file.

    select_lr([LrCandidate(1e-3, "m-adam-lr0.001-s0", "completed", 0.95), ...],
              higher_is_better=True)  -> the 1e-3 candidate

Rules, and why:
- only runs that ended normally (completed, early_stopped) can be selected: a diverged
  run's best value comes from before it broke, and the later seeds would break too;
- the test split is never read: summary.json's `best_val` decides;
- equal validation values (accuracy on a few hundred examples ties often) go to the
  smaller LR, the one further from divergence for the seeds still to run.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

SELECTION_FILE = "lr_selection.json"
SELECTABLE_STATUSES = ("completed", "early_stopped")
# Two validation values this close (relative) are the same value written twice.
_TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class LrCandidate:
    """One grid point of one optimizer: its LR and how its first-seed run ended."""

    lr: float
    run_id: str
    status: str | None
    best_val: float | None

    @property
    def selectable(self) -> bool:
        return self.status in SELECTABLE_STATUSES and _finite(self.best_val)


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def select_lr(candidates: Iterable[LrCandidate], *, higher_is_better: bool) -> LrCandidate | None:
    """The candidate with the best validation value (ties: the smaller LR); None if none ended normally."""
    eligible = [c for c in candidates if c.selectable]
    if not eligible:
        return None
    sign = 1.0 if higher_is_better else -1.0
    best = max(sign * float(c.best_val) for c in eligible)
    tolerance = _TIE_TOLERANCE * max(1.0, abs(best))
    tied = [c for c in eligible if sign * float(c.best_val) >= best - tolerance]
    return min(tied, key=lambda c: c.lr)


def grid_edge(lr: float | None, grid_lrs: Sequence[float]) -> str | None:
    """'low' or 'high' when `lr` is the grid's smallest or largest value, else None.

    A best LR at the edge means the grid may not contain the optimum: the reader should
    widen it before trusting the comparison.
    """
    if lr is None or len(grid_lrs) < 2:
        return None
    if math.isclose(lr, min(grid_lrs), rel_tol=1e-9):
        return "low"
    if math.isclose(lr, max(grid_lrs), rel_tol=1e-9):
        return "high"
    return None


@dataclass(frozen=True)
class ArmSelection:
    """The selection for one optimizer (one configuration of the sweep, LR and seed aside)."""

    arm: str                          # run id without LR and seed: "cnn_scratch-adam"
    optimizer: str
    primary_metric: str | None
    higher_is_better: bool
    candidates: tuple[LrCandidate, ...]
    selected_lr: float | None         # None: no grid point ended normally
    edge: str | None                  # "low", "high" or None
    run_ids: tuple[str, ...] = ()     # the runs reported: the selected first-seed run + later seeds

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["candidates"] = [asdict(c) for c in self.candidates]
        data["run_ids"] = list(self.run_ids)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ArmSelection":
        candidates = tuple(LrCandidate(float(c["lr"]), str(c["run_id"]), c.get("status"), c.get("best_val"))
                           for c in data.get("candidates", []))
        selected = data.get("selected_lr")
        return cls(arm=str(data["arm"]), optimizer=str(data.get("optimizer", "")),
                   primary_metric=data.get("primary_metric"), higher_is_better=bool(data.get("higher_is_better", True)),
                   candidates=candidates, selected_lr=None if selected is None else float(selected),
                   edge=data.get("edge"), run_ids=tuple(str(r) for r in data.get("run_ids", [])))

    @property
    def grid_lrs(self) -> list[float]:
        return sorted(c.lr for c in self.candidates)


def select_arm(*, arm: str, optimizer: str, candidates: Sequence[LrCandidate], summaries: Sequence[Mapping | None],
               later_run_ids: Mapping[float, Sequence[str]] | None = None) -> ArmSelection:
    """Select one optimizer's LR from its first-seed runs' summary.json contents (None: no summary)."""
    direction = [s for s in summaries if s and s.get("higher_is_better") is not None]
    higher = bool(direction[0]["higher_is_better"]) if direction else True
    metric = next((s.get("primary_metric") for s in summaries if s and s.get("primary_metric")), None)
    chosen = select_lr(candidates, higher_is_better=higher)
    lrs = [c.lr for c in candidates]
    run_ids: tuple[str, ...] = ()
    if chosen is not None:
        later = (later_run_ids or {}).get(chosen.lr, ())
        run_ids = (chosen.run_id, *later)
    return ArmSelection(arm=arm, optimizer=optimizer, primary_metric=metric, higher_is_better=higher,
                        candidates=tuple(candidates), selected_lr=chosen.lr if chosen else None,
                        edge=grid_edge(chosen.lr if chosen else None, lrs), run_ids=run_ids)


def write_selection(path: Path, *, grid: Mapping[str, Any], arms: Sequence[ArmSelection], write_json) -> None:
    """lr_selection.json: the grid as given and every optimizer's selection (write_json writes atomically)."""
    write_json(path, {"protocol": "lr_grid", "grid": dict(grid), "selection_split": "val",
                      "tie_rule": "smaller LR", "arms": [a.to_dict() for a in arms]})


def read_selection(sweep_dir: str | Path) -> tuple[dict[str, Any], list[ArmSelection]] | None:
    """(grid, selections) from `<sweep_dir>/lr_selection.json`; None when the sweep had no LR grid."""
    path = Path(sweep_dir) / SELECTION_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return dict(data.get("grid") or {}), [ArmSelection.from_dict(a) for a in data.get("arms", [])]
