"""`--lr-grid`: every optimizer at several LRs on the first seed, then its best LR on the rest.

    python -m nbhelpers sweep params/image_classification/digits-cnn_scratch.yaml \\
        --optimizers adam,sgd,lion --seeds 3 --lr-grid x0.1,x0.3,x1,x3,x10

Multipliers (`x0.3`) scale each optimizer's own LR, the one it would get without the grid
(its table LR for the task's family, or --lr / --lr-overrides when given); plain numbers
(`1e-4,3e-4`) are the same LRs for every optimizer. Phase 1 runs every (optimizer, LR) at
the first seed; nbhelpers.lr_selection picks each optimizer's LR on validation; phase 2
runs that LR for the remaining seeds. Every optimizer gets the same number of grid points,
epochs and seeds. Phase 2 is derived from the phase-1 results on disk, so --resume
continues a sweep stopped in either phase.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from nbhelpers.config import RunConfig
from nbhelpers.errors import UserInputError
from nbhelpers.lr_selection import SELECTION_FILE, ArmSelection, LrCandidate, select_arm, write_selection

_EXAMPLE = "multipliers such as x0.1,x0.3,x1,x3,x10 or LRs such as 1e-4,3e-4,1e-3"
# LRs are rounded to this many significant digits: 0.05 * 0.3 is 0.015, not 0.015000000000000001.
_DIGITS = 6


@dataclass(frozen=True)
class LrGrid:
    """The grid as the user gave it: multipliers of each optimizer's LR, or absolute LRs."""

    values: tuple[float, ...]
    relative: bool  # True: multipliers ("x0.3"); False: learning rates

    def text(self) -> str:
        return ",".join(f"x{v:g}" if self.relative else f"{v:g}" for v in self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"values": list(self.values), "relative": self.relative, "text": self.text()}

    def lrs(self, centre: float) -> list[float]:
        """The LRs of one optimizer whose own LR is `centre`, smallest first."""
        values = [centre * v for v in self.values] if self.relative else list(self.values)
        return sorted(float(f"{v:.{_DIGITS}g}") for v in values)


def parse_lr_grid(value: Any, *, source: str = "--lr-grid") -> LrGrid:
    """An LrGrid from "x0.1,x1,x10", "1e-4,3e-4" or a YAML list of either; one clear sentence if not."""
    if isinstance(value, str):
        items: list[Any] = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, (list, tuple)):
        items = [v.strip() if isinstance(v, str) else v for v in value]
    else:
        raise UserInputError(f"{source}: the LR grid must be a comma-separated text or a list of {_EXAMPLE}, "
                             f"got {value!r}")
    if not items:
        raise UserInputError(f"{source}: the LR grid is empty; give {_EXAMPLE}")
    kinds, numbers = set(), []
    for item in items:
        relative = isinstance(item, str) and item[:1] in ("x", "X")
        text = item[1:] if relative else item
        try:
            if isinstance(text, bool):
                raise ValueError
            number = float(text)
        except (TypeError, ValueError):
            raise UserInputError(f"{source}: {item!r} is neither a multiplier (x0.3) nor an LR (3e-4); give "
                                 f"{_EXAMPLE}") from None
        if not math.isfinite(number) or number <= 0:
            raise UserInputError(f"{source}: every value of the LR grid must be a positive number, got {item!r}")
        kinds.add(relative)
        numbers.append(number)
    if len(kinds) > 1:
        raise UserInputError(f"{source}: the LR grid mixes multipliers (x0.3) and LRs (3e-4); give one kind, "
                             f"{_EXAMPLE}")
    if len(set(numbers)) != len(numbers):
        repeated = next(item for item, n in zip(items, numbers) if numbers.count(n) > 1)
        raise UserInputError(f"{source}: the LR grid lists {repeated!r} twice; each value once")
    if len(numbers) < 2:
        raise UserInputError(f"{source}: an LR grid needs at least two values to select from, got {items[0]!r}")
    return LrGrid(tuple(numbers), relative=kinds.pop())


def centre_lr(cfg: RunConfig) -> float:
    """The LR `cfg` would train with without a grid (overrides, then --lr, then the policy's LR)."""
    from nbhelpers.optim import get_spec, parse_lr_overrides
    from nbhelpers.optim.build import resolve_lr
    return resolve_lr(get_spec(cfg.optimizer), task=cfg.task, lr=cfg.lr, lr_policy=cfg.lr_policy,
                      lr_overrides=parse_lr_overrides(cfg.lr_overrides))


def check_no_conflict(grid: LrGrid, settings: dict[str, Any], point: dict[str, Any], *, source: str) -> None:
    """Refuse a params file or command line that sets the LR another way too."""
    if "lr" in point:
        raise UserInputError(f"{source}: 'lr' is set by the params file's grid or experiments and by the LR "
                             "grid; give the LRs in one place (lr_grid)")
    if not grid.relative:
        given = {**settings, **point}
        for key in ("lr", "lr_overrides"):
            if given.get(key) not in (None, ""):
                raise UserInputError(f"{source}: an LR grid of absolute values sets every optimizer's LR, so "
                                     f"'{key}' cannot be given with it (use multipliers such as x0.1,x1,x10 to "
                                     "scale each optimizer's own LR)")


def at_lr(cfg: RunConfig, lr: float) -> RunConfig:
    """`cfg` at one LR of the grid: the LR set, overrides cleared (they would beat it), LR in the run id."""
    return cfg.replace(lr=lr, lr_overrides="", grid={**dict(cfg.grid), "lr": lr})


def arm_of(cfg: RunConfig) -> str:
    """The run id without its LR and seed: one optimizer (one configuration) of the protocol."""
    run_id = cfg.replace(grid={k: v for k, v in cfg.grid.items() if k != "lr"}, seed=0).run_id
    return run_id[:-3] if run_id.endswith("-s0") else run_id


def select_from_disk(first: Sequence[RunConfig], later: Sequence[RunConfig]) -> list[ArmSelection]:
    """Each arm's selection from its first-seed runs' summary.json (the test split is never read)."""
    from nbhelpers.training.rundir import RunDir, read_json
    by_arm: dict[str, list[RunConfig]] = defaultdict(list)
    for cfg in first:
        by_arm[arm_of(cfg)].append(cfg)
    later_ids: dict[str, dict[float, list[str]]] = defaultdict(lambda: defaultdict(list))
    for cfg in later:
        later_ids[arm_of(cfg)][cfg.lr].append(cfg.run_id)
    selections = []
    for arm, configs in by_arm.items():
        summaries = [read_json(RunDir(c.run_dir).summary) for c in configs]
        candidates = [LrCandidate(float(c.lr), c.run_id, (s or {}).get("status"), (s or {}).get("best_val"))
                      for c, s in zip(configs, summaries, strict=True)]
        selections.append(select_arm(arm=arm, optimizer=configs[0].optimizer, candidates=candidates,
                                     summaries=summaries, later_run_ids=later_ids[arm]))
    return selections


def phase_two(later: Sequence[RunConfig], selections: Sequence[ArmSelection]) -> list[RunConfig]:
    """The later seeds' runs at each arm's selected LR (none for an arm where every LR failed)."""
    chosen = {s.arm: s.selected_lr for s in selections}
    return [c for c in later if chosen.get(arm_of(c)) is not None and math.isclose(c.lr, chosen[arm_of(c)])]


def forget_selection(output_dir: Path) -> None:
    """Remove an earlier sweep's lr_selection.json: a report must never apply it to these runs.

    A grid sweep writes it again when its first phase ends (at once under --resume)."""
    (Path(output_dir) / SELECTION_FILE).unlink(missing_ok=True)


def run_in_phases(first: Sequence[RunConfig], later: Sequence[RunConfig], grid: LrGrid, output_dir: Path,
                  execute: Callable[[list[RunConfig]], None], *,
                  on_selection: Callable[[list[ArmSelection]], None] | None = None) -> list[ArmSelection]:
    """Phase 1 (`first`), the selection (written to lr_selection.json), phase 2; returns the selections."""
    from nbhelpers.training.rundir import write_json
    execute(list(first))
    selections = select_from_disk(first, later)
    write_selection(Path(output_dir) / SELECTION_FILE, grid=grid.to_dict(), arms=selections, write_json=write_json)
    if on_selection is not None:
        on_selection(selections)
    for s in selections:
        where = f" (at the grid's {s.edge} edge: widen the grid)" if s.edge else ""
        chosen = (f"lr {s.selected_lr:g}{where}" if s.selected_lr is not None
                  else "no LR (every grid point failed or diverged)")
        print(f"{s.arm}: selected {chosen}", flush=True)
    execute(phase_two(later, selections))
    return selections
