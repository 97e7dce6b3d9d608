"""Expand a params file (plus command-line flags) into the list of runs of a sweep.

A params file holds RunConfig settings plus four sweep keys:

    optimizers: all            # or a list, or "adam,adamw"
    seeds: 3                   # seeds 0, 1, 2
    grid:                      # cartesian product; keys are settings, "layers", or model_kwargs.X
      layers: [1, 2]
    experiments:               # an explicit list of runs instead (the PTB grid), each a dict of settings
      - {model: lstm_lm, optimizer: adam, layers: 1}
    lr_grid: x0.1,x0.3,x1,x3,x10   # the LR protocol (sweep/lr_grid.py): LR chosen per optimizer on validation

Flags on the command line beat the file. With `experiments`, --optimizers picks the
experiments whose optimizer is listed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from nbhelpers.config import FIELD_NAMES, RunConfig, config_from_dict, load_params, validate_config
from nbhelpers.errors import UserInputError
from nbhelpers.paths import resolve_output_dir
from nbhelpers.sweep.lr_grid import LrGrid, at_lr, centre_lr, check_no_conflict, parse_lr_grid

SWEEP_KEYS = ("optimizers", "seeds", "grid", "experiments", "name", "description", "lr_grid")
NESTED = ("dataset_kwargs", "task_kwargs", "model_kwargs", "optimizer_kwargs", "scheduler_kwargs")


@dataclass(frozen=True)
class Plan:
    """The runs of one sweep and where they go."""

    name: str
    output_dir: Path
    configs: tuple[RunConfig, ...]
    params_file: Path | None = None
    # With an LR grid: `configs` are phase 1 (every LR, first seed); `later` holds every LR's
    # runs for the remaining seeds, of which phase 2 runs those at the selected LRs.
    lr_grid: "LrGrid | None" = None
    later: tuple[RunConfig, ...] = ()

    @property
    def all_configs(self) -> tuple[RunConfig, ...]:
        """Every run the sweep may make (with an LR grid, phase 2's candidates too)."""
        return self.configs + self.later

    @property
    def task(self) -> str:
        return self.configs[0].task


def parse_optimizers(value: Any, *, source: str = "--optimizers") -> list[str]:
    """Canonical optimizer names from "adam,sgd", a list, or "all"; None gives [].

    A value that names no optimizer at all ("" or []) is a mistake, not "use the default".
    """
    from nbhelpers.optim import all_names, get_spec
    if value is None:
        return []
    if not isinstance(value, (str, list, tuple)):
        raise UserInputError(f"{source}: optimizers must be a name, a comma-separated list or a list, "
                             f"got {value!r}")
    names = value if isinstance(value, (list, tuple)) else str(value).split(",")
    names = [str(n).strip() for n in names if str(n).strip()]
    if not names:
        raise UserInputError(f"{source}: no optimizer named (give names such as adam,sgd or 'all')")
    if any(n.lower() == "all" for n in names):
        return all_names()
    canonical = [get_spec(n).name for n in names]
    return list(dict.fromkeys(canonical))  # keep order, drop repeats


def _seed_count(value: Any, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserInputError(f"{source}: 'seeds' is how many seeds to run (0, 1, ... N-1), a whole "
                             f"number >= 1, got {value!r}")
    return value


def _experiments(value: Any, source: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(e, Mapping) for e in value):
        raise UserInputError(f"{source}: 'experiments' must be a list of runs, each a mapping of "
                             f"settings such as {{optimizer: adam, layers: 2}}, got {value!r}")
    if not value:
        raise UserInputError(f"{source}: 'experiments' lists no runs")
    return [dict(e) for e in value]


def apply_setting(values: dict[str, Any], key: str, value: Any, *, source: str) -> None:
    """Set one setting; "layers" and "model_kwargs.X" go into the nested dicts."""
    if key == "layers":
        key = "model_kwargs.layers"
    head, dot, tail = key.partition(".")
    if dot and head in NESTED:
        values[head] = {**values.get(head, {}), tail: value}
    elif key in FIELD_NAMES:
        values[key] = value
    else:
        raise UserInputError(f"{source}: unknown setting {key!r} (settings are RunConfig fields, "
                             f"'layers', or model_kwargs.NAME)")


def _grid_points(grid: Mapping[str, Any] | None, source: str) -> list[dict[str, Any]]:
    if not grid:
        return [{}]
    if not isinstance(grid, Mapping):
        raise UserInputError(f"{source}: 'grid' must map settings to lists of values")
    keys = list(grid)
    lists = [v if isinstance(v, list) else [v] for v in grid.values()]
    return [dict(zip(keys, combo)) for combo in itertools.product(*lists)]


def plan_from_args(params: str | Path | None, overrides: Mapping[str, Any]) -> Plan:
    """All runs for a params file (optional) and the command line's flags."""
    file_values = load_params(params) if params else {}
    source = str(params) if params else "command line"
    settings: dict[str, Any] = {}
    for key, value in file_values.items():
        if key not in SWEEP_KEYS:
            apply_setting(settings, key, value, source=source)
    cli = dict(overrides)
    cli_optimizers = parse_optimizers(cli.pop("optimizers", None))
    for key in ("optimizers", "seeds", "experiments", "grid", "lr_grid"):
        if key in file_values and file_values[key] is None:
            raise UserInputError(f"{source}: '{key}' is empty; give it a value or remove the line")
    cli_seeds = cli.pop("seeds", None)
    lr_grid = None
    if cli.get("lr_grid") is not None:
        lr_grid = parse_lr_grid(cli.pop("lr_grid"), source="--lr-grid")
    elif "lr_grid" in file_values:
        lr_grid = parse_lr_grid(file_values["lr_grid"], source=f"{source}: lr_grid")
    cli.pop("lr_grid", None)
    cli_seed = cli.get("seed")
    for key, value in cli.items():
        apply_setting(settings, key, value, source="command line")

    if cli_seeds:
        seeds = list(range(cli_seeds))
    elif cli_seed is not None:
        seeds = [cli_seed]
    elif "seeds" in file_values:
        seeds = list(range(_seed_count(file_values["seeds"], source)))
    else:
        seeds = [settings.get("seed", 0)]

    if "experiments" in file_values:
        points = _experiments(file_values["experiments"], source)
        if cli_optimizers:
            points = [p for p in points if parse_optimizers(p.get("optimizer", "adamw"))[0] in cli_optimizers]
    else:
        optimizers = cli_optimizers or parse_optimizers(file_values.get("optimizers"), source=source) or [
            settings.get("optimizer", "adamw")]
        points = [{"optimizer": opt, **point} for opt in optimizers
                  for point in _grid_points(file_values.get("grid"), source)]
    if not points:
        raise UserInputError(f"{source}: no runs to do (check --optimizers against the experiments listed)")

    name = str(file_values.get("name") or (Path(params).stem if params else "adhoc"))
    output_dir = resolve_output_dir(settings.get("output_dir") or Path("executed") / name)
    settings["output_dir"] = str(output_dir)
    configs, later = [], []
    for number, point in enumerate(points, start=1):
        values = {k: (dict(v) if isinstance(v, dict) else v) for k, v in settings.items()}
        grid: dict[str, Any] = {}
        if lr_grid is not None:
            check_no_conflict(lr_grid, settings, point, source=source)
        for key, value in point.items():
            apply_setting(values, key, value, source=source)
            if key not in ("optimizer", "model", "task", "dataset"):
                grid[key.split(".")[-1]] = value
        for index, seed in enumerate(seeds):
            # The experiment's number in the params file: the report's "#" column, as in seed 004.
            cfg = validate_config(config_from_dict({**values, "seed": seed, "grid": grid, "experiment": number},
                                                   source=source))
            if lr_grid is None:
                configs.append(cfg)
                continue
            for lr in lr_grid.lrs(centre_lr(cfg)):  # phase 1 is the first seed; phase 2 picks from `later`
                (later if index else configs).append(validate_config(at_lr(cfg, lr)))
    run_ids = [c.run_id for c in configs + later]
    duplicates = sorted({r for r in run_ids if run_ids.count(r) > 1})
    if duplicates:
        raise UserInputError(f"{source}: two runs would share the run id {duplicates[0]!r}; "
                             "give them different settings or seeds")
    return Plan(name=name, output_dir=output_dir, configs=tuple(configs),
                params_file=Path(params) if params else None, lr_grid=lr_grid, later=tuple(later))
