"""The report of a sweep made with `--lr-grid`: the protocol, the selected runs, LR sensitivity.

The sweep wrote `lr_selection.json` (nbhelpers.lr_selection) when its first phase ended.
The report reads it and then shows test numbers only at each optimizer's selected LR: the
grid runs at other LRs were used to choose, so counting them in tables, rankings or the
verdict would report the selection's winner's curse as a result. They appear in one place,
the LR-sensitivity figure. A sweep without an LR grid has no such file and its report is
unchanged.

    protocol = load_lr_protocol(sweep_dir)        # None without --lr-grid
    runs = protocol.selected_runs(runs)           # the rows the tables and the verdict use
    protocol.sentences(); sensitivity_figure(all_runs, protocol)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nbhelpers.lr_selection import ArmSelection, read_selection
from nbhelpers.report.plots import FigureWithCaption, _plain_log_axis, use_log_scale
from nbhelpers.report.style import optimizer_colour
from nbhelpers.report.tables import metric_spec

EDGE_WORDS = {"low": "smallest", "high": "largest"}


@dataclass(frozen=True)
class LrProtocol:
    """What lr_selection.json says: the grid and each optimizer's selection."""

    grid: dict[str, Any]
    arms: tuple[ArmSelection, ...]

    @property
    def grid_text(self) -> str:
        values = self.grid.get("values") or []
        relative = bool(self.grid.get("relative"))
        return ", ".join(f"x{v:g}" if relative else f"{v:g}" for v in values)

    def selected_ids(self) -> set[str]:
        return {run_id for arm in self.arms for run_id in arm.run_ids}

    def edges(self) -> dict[str, str]:
        """run id -> 'low' / 'high' for the reported runs of optimizers selected at the grid's edge."""
        return {run_id: arm.edge for arm in self.arms if arm.edge for run_id in arm.run_ids}

    def selected_runs(self, runs: pd.DataFrame) -> pd.DataFrame:
        """The runs at the selected LRs, with the LR no longer a grid column and `lr_edge` added.

        Rows of one optimizer then group into one table row whatever LR it was given; the
        LR column shows the selected LR and whether it sits at the grid's edge.
        """
        keep = runs[runs["run_id"].astype(str).isin(self.selected_ids())].copy()
        keep = keep.drop(columns=[c for c in ("grid.lr",) if c in keep])
        grid_columns = sorted(c for c in keep.columns if c.startswith("grid."))
        keep["grid_label"] = [", ".join(f"{c[5:]}={row[c]}" for c in grid_columns if _present(row[c]))
                              for _, row in keep.iterrows()]
        keep["lr_edge"] = keep["run_id"].astype(str).map(self.edges()).fillna("")
        keep.attrs.update(runs.attrs)
        return keep.reset_index(drop=True)

    def excluded_count(self, runs: pd.DataFrame) -> int:
        return int((~runs["run_id"].astype(str).isin(self.selected_ids())).sum())

    def sentences(self, runs: pd.DataFrame | None = None) -> str:
        """The protocol in words, for the report's opening paragraph and the notebook."""
        relative = bool(self.grid.get("relative"))
        metric = next((a.primary_metric for a in self.arms if a.primary_metric), "primary metric")
        where = ("times each optimizer's own default LR" if relative else "for every optimizer")
        text = (f"Learning rates were tuned per optimizer with the same budget for each: every optimizer trained "
                f"once (the first seed) at each LR of the grid ({self.grid_text}, {where}); the LR with the best "
                f"validation {metric} was selected (ties go to the smaller LR; a run that diverged or failed is "
                f"never selected), and only that LR ran the remaining seeds. Test numbers are reported at the "
                f"selected LR only")
        if runs is not None:
            excluded = self.excluded_count(runs)
            runs_word = "runs" if excluded != 1 else "run"
            text += f"; the {excluded} {runs_word} at other LRs appear only in the LR-sensitivity figure"
        text += "."
        edge = [f"{a.optimizer} ({EDGE_WORDS[a.edge]} LR)" for a in self.arms if a.edge]
        if edge:
            text += (f" Best LR at the grid's edge, so the best LR may lie outside the grid (widen it before "
                     f"trusting these optimizers' numbers): {', '.join(edge)}.")
        none = [a.optimizer for a in self.arms if a.selected_lr is None]
        if none:
            text += f" No LR ended normally (every grid run diverged or failed) for: {', '.join(none)}."
        return text


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def load_lr_protocol(sweep_dir: str | Path) -> LrProtocol | None:
    """The sweep's LR protocol from lr_selection.json; None for a sweep without --lr-grid.

    A sweep stopped before its first phase ended has an LR grid but no selection yet: the
    report then shows every run, with a warning that nothing was selected.
    """
    found = read_selection(sweep_dir)
    if found is None:
        manifest = Path(sweep_dir) / "sweep.json"
        if manifest.is_file() and '"lr_grid"' in manifest.read_text(encoding="utf-8"):
            warnings.warn("this sweep has an LR grid but no lr_selection.json yet (its first phase has not "
                          "ended): the report shows the runs at every LR", stacklevel=2)
        return None
    grid, arms = found
    return LrProtocol(grid=grid, arms=tuple(arms))


def sensitivity_figure(runs: pd.DataFrame, protocol: LrProtocol) -> FigureWithCaption:
    """Best validation value of the primary metric against LR, one line per optimizer, log x.

    Points come from lr_selection.json (what the selection saw). A ring marks each
    optimizer's selected LR; a triangle pointing out of the grid marks one at the grid's
    edge; a cross marks a grid point that diverged or failed (never selectable).
    """
    metric = next((a.primary_metric for a in protocol.arms if a.primary_metric), "loss")
    spec = metric_spec(runs, metric)
    figure = Figure(figsize=(7.5, 4.8))
    ax = figure.add_subplot()
    optimizers = [a.optimizer for a in protocol.arms]
    shown: list[float] = []
    for arm in protocol.arms:
        label = arm.optimizer if optimizers.count(arm.optimizer) == 1 else arm.arm
        if arm.edge:
            label += f" (best at {EDGE_WORDS[arm.edge]} LR)"
        colour = optimizer_colour(arm.optimizer)
        good = sorted((c.lr, spec.display(c.best_val)) for c in arm.candidates if c.selectable)
        bad = [(c.lr, spec.display(c.best_val)) for c in arm.candidates
               if not c.selectable and c.best_val is not None and np.isfinite(c.best_val)]
        if good:
            ax.plot(*zip(*good), "-o", color=colour, label=label, markersize=4)
            shown += [v for _, v in good]
        if bad:
            ax.plot(*zip(*bad), "x", color=colour, markersize=7, label=None if good else label)
        if arm.selected_lr is not None:
            value = next(spec.display(c.best_val) for c in arm.candidates if math.isclose(c.lr, arm.selected_lr))
            marker = {"low": "<", "high": ">"}.get(arm.edge or "", "o")
            ax.plot([arm.selected_lr], [value], marker, markersize=12, markerfacecolor="none",
                    markeredgecolor=colour, markeredgewidth=2)
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis)
    if use_log_scale(shown, higher_is_better=spec.higher_is_better):
        _plain_log_axis(ax.yaxis)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel(f"best validation {spec.header()}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    figure.tight_layout()
    caption = (f"LR sensitivity: the best validation {spec.header()} "
               f"({'higher' if spec.higher_is_better else 'lower'} is better) of each optimizer's first-seed run at "
               f"every LR of the grid ({protocol.grid_text}), log x. A ring marks the LR selected for the remaining "
               "seeds; a triangle instead of a ring marks a selected LR at the grid's edge (pointing out of the "
               "grid: the best LR may lie beyond it); a cross marks a run that diverged or failed, whose value "
               "(from before it broke) was not eligible. Only validation values were used to select; a flat curve "
               "means the optimizer is forgiving about its LR.")
    return FigureWithCaption("lr_sensitivity.png", figure, caption)
