"""A leaderboard across sweeps: ranks, time to target and performance profiles per workload.

A *workload* is one (task, dataset, model), plus the grid values when a sweep varied
something other than the optimizer (the PTB grid's `layers=2` is another model). On each
workload every optimizer gets

- its final primary metric: the test value of the best checkpoint (validation when the
  workload has no test value), mean over seeds with a 95% Student-t interval when there are
  at least two seeds;
- a rank among the optimizers that ran on the workload (1 = best, ties share the average
  rank, the metric's own direction from its MetricSpec; a run without a finite value,
  diverged or failed, ranks last);
- its time to the workload's target (training seconds until the validation primary metric
  first reached the target recorded in summary.json; the median over seeds; never = infinite).

Across workloads: the mean rank (with a percentile bootstrap interval over seeds when seeds
exist) and the performance profile of AlgoPerf (Dahl et al. 2023, "Benchmarking Neural
Network Training Algorithms"): for optimizer s on workload w the ratio
r(s, w) = t(s, w) / min over optimizers of t(., w); the profile rho_s(tau) is the fraction of
workloads with r(s, w) <= tau. An optimizer that never reached a workload's target, or did
not run on it, has t = infinity there, so it never counts. The profile score is AlgoPerf's
benchmark score, the normalised area under the profile:
B_s = 1 / (tau_max - 1) * integral from 1 to tau_max of rho_s(tau) dtau.

Like the rest of report/, this reads only run directories (docs/run_directory.md).
"""

from __future__ import annotations

import html
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from scipy import stats

from nbhelpers.errors import UserInputError
from nbhelpers.metric_spec import MetricSpec
from nbhelpers.report.load import load_runs
from nbhelpers.report.plots import FigureWithCaption
from nbhelpers.report.style import OPTIMIZERS, optimizer_colour
from nbhelpers.report.tables import MISSING, human_duration, metric_spec, primary_metric

TAU_MAX = 4.0        # AlgoPerf's profiles stop at a factor of 4 of the fastest
CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 2000
_KEYS = ["task", "dataset", "model", "grid_label"]


# ----------------------------------------------------------------------------- loading
def find_sweep_dirs(*, search_from: Path | None = None) -> list[Path]:
    """Every folder holding runs/ under `executed/` beside and above `search_from` (default: here).

    Serves the leaderboard notebook opened by hand without `sweep_dirs`.
    """
    start = (search_from or Path.cwd()).resolve()
    found = sorted({runs.parent.resolve() for base in (start, start.parent)
                    for runs in (base / "executed").glob("*/runs") if runs.is_dir()})
    if not found:
        raise UserInputError(f"no sweep_dirs given and no sweep with a runs/ folder under {start / 'executed'}: "
                             "name the sweep folders to compare.")
    return found


def load_sweeps(sweep_dirs) -> pd.DataFrame:
    """The runs of several sweeps (load_runs of each) in one frame, with a `sweep` column (the folder name).

    Raises UserInputError, before reading anything, for a folder that does not exist, and
    for a folder without runs.
    """
    folders = []
    for given in sweep_dirs:
        folder = Path(given).expanduser().resolve()
        if not folder.is_dir():
            raise UserInputError(f"no such sweep folder: {given} (give folders that hold a runs/ folder).")
        if folder not in folders:
            folders.append(folder)
    if not folders:
        raise UserInputError("no sweep folders given: name at least one folder that holds a runs/ folder.")
    frames = []
    from nbhelpers.report.lr_grid import load_lr_protocol
    for folder in folders:
        runs = load_runs(folder)
        protocol = load_lr_protocol(folder)  # an --lr-grid sweep counts at its selected LRs only
        if protocol:
            runs = protocol.selected_runs(runs)
        frames.append(runs.assign(sweep=folder.name))
    runs = pd.concat(frames, ignore_index=True, sort=False)
    runs.attrs["sweeps"] = [f.name for f in folders]
    return runs


# ----------------------------------------------------------------------------- the math
def rank_within(values: pd.Series, *, higher_is_better: bool) -> pd.Series:
    """Ranks of one workload's optimizers: 1 = best, ties share their average rank.

    NaN (no finite result: diverged or failed) ranks after every finite value, tied with
    the other NaNs.
    """
    array = values.to_numpy(dtype=float)
    key = np.where(np.isfinite(array), -array if higher_is_better else array, np.inf)
    return pd.Series(stats.rankdata(key, method="average"), index=values.index)


def time_ratios(times: pd.DataFrame) -> pd.DataFrame:
    """r(s, w) = t(s, w) / min over s of t(., w); rows workloads, columns optimizers.

    NaN times (did not run) and infinite ones (never reached) give an infinite ratio, and
    so does every optimizer of a workload on which none reached the target.
    """
    t = times.astype(float).fillna(np.inf).to_numpy()
    best = t.min(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(np.isfinite(best) & np.isfinite(t), t / best, np.inf)
    ratio = np.where(np.isfinite(t) & (t == best), 1.0, ratio)  # also when the fastest time is 0
    return pd.DataFrame(ratio, index=times.index, columns=times.columns)


def performance_profile(times: pd.DataFrame, taus) -> pd.DataFrame:
    """rho_s(tau) = share of workloads (rows of `times`) with r(s, w) <= tau; rows tau, columns optimizers."""
    ratios = time_ratios(times).to_numpy()
    taus = np.asarray(list(taus), dtype=float)
    if ratios.shape[0] == 0:
        return pd.DataFrame(np.nan, index=pd.Index(taus, name="tau"), columns=times.columns)
    rho = (ratios[None, :, :] <= taus[:, None, None]).mean(axis=1)
    return pd.DataFrame(rho, index=pd.Index(taus, name="tau"), columns=times.columns)


def profile_score(times: pd.DataFrame, *, tau_max: float = TAU_MAX) -> pd.Series:
    """AlgoPerf's benchmark score: the area under rho_s over [1, tau_max], divided by tau_max - 1.

    rho_s is a step function, so the integral is exact: a workload with ratio r <= tau_max
    adds (tau_max - r) / (tau_max - 1) / (number of workloads).
    """
    ratios = time_ratios(times)
    if len(ratios) == 0:
        return pd.Series(np.nan, index=times.columns)
    share = ((tau_max - ratios).clip(lower=0.0) / (tau_max - 1.0)).where(np.isfinite(ratios), 0.0)
    return share.mean(axis=0)


def mean_interval(values) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the finite values; a 95% Student-t interval when n >= 2, else NaN bounds."""
    array = np.asarray([v for v in values if v is not None], dtype=float)
    array = array[np.isfinite(array)]
    n = int(array.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(array.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    sem = float(stats.sem(array))
    if sem == 0.0:
        return mean, mean, mean, n
    low, high = stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=sem)
    return mean, float(low), float(high), n


# ----------------------------------------------------------------------------- the leaderboard
@dataclass(frozen=True)
class Leaderboard:
    """The numbers of a leaderboard; `leaderboard_tables` and the figure functions read them.

    workloads: one row per workload (label, task, dataset, model, grid_label, metric, split,
        higher_is_better, target, target_text, n_runs, sweeps).
    cells: one row per (workload, optimizer) that has runs: n_runs, n_finite, mean, ci_low,
        ci_high, rank, time_s (median over seeds, inf = never), n_reached, time_ratio.
    optimizers: one row per optimizer, best mean rank first: mean_rank, rank_low, rank_high,
        n_workloads, profile_score, fastest (workloads where its ratio is 1).
    times: workloads with a target x optimizers, median seconds to target (inf never, NaN not run).
    seed_times: per seed present in every (workload, optimizer) cell, the same matrix for that seed.
    """

    workloads: pd.DataFrame
    cells: pd.DataFrame
    optimizers: pd.DataFrame
    times: pd.DataFrame
    seed_times: dict = field(default_factory=dict)
    specs: dict = field(default_factory=dict)  # workload label -> MetricSpec of its primary metric
    sweeps: list = field(default_factory=list)

    def spec(self, label: str) -> MetricSpec:
        return self.specs[label]


def workload_label(task: str, dataset: str, model: str, grid_label: str = "") -> str:
    """'digits/mnist_tiny', 'ptb_text_only/lstm_lm [layers=2]' (the task is in the workload table)."""
    return f"{dataset}/{model}" + (f" [{grid_label}]" if grid_label else "")


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A numeric column, all NaN when no run recorded it."""
    if name not in frame:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[name], errors="coerce").astype(float)


def _run_times(group: pd.DataFrame, has_target: bool) -> np.ndarray:
    """Seconds to target per run: inf when never reached (or the run failed)."""
    times = _column(group, "time_to_target_s")
    return np.where(np.isfinite(times), times, np.inf) if has_target else np.full(len(group), np.nan)


def target_text(target: float, spec: MetricSpec) -> str:
    """'val accuracy >= 99.00%', 'val perplexity <= 32.42' as the metric's MetricSpec formats it."""
    unit = "%" if spec.unit == "%" else (f" {spec.unit}" if spec.unit and spec.unit.lower() != spec.label.lower()
                                         else "")
    return f"val {spec.label} {'≥' if spec.higher_is_better else '≤'} {spec.format(target)}{unit}"


def _workload_rows(runs: pd.DataFrame):
    for column, default in (("task", ""), ("dataset", ""), ("model", ""), ("grid_label", ""), ("optimizer", ""),
                            ("seed", math.nan), ("target", math.nan), ("sweep", "")):
        if column not in runs:
            runs[column] = default
    for column in ("task", "dataset", "model", "grid_label", "optimizer"):
        runs[column] = runs[column].map(_text)
    groups = [(dict(zip(_KEYS, key, strict=True)), group) for key, group in runs.groupby(_KEYS, sort=True)]
    labels = [workload_label(**key) for key, _ in groups]
    for (key, group), label in zip(groups, labels, strict=True):
        # Two tasks on one dataset and model name (unlikely, but possible) are told apart by the task.
        yield (f"{key['task']}: {label}" if labels.count(label) > 1 else label), key, group


def _target_of(group: pd.DataFrame, label: str) -> float:
    targets = pd.to_numeric(group["target"], errors="coerce")
    targets = targets[np.isfinite(targets)]
    if targets.empty:
        return math.nan
    if targets.nunique() > 1:
        warnings.warn(f"workload {label}: runs record different targets {sorted(targets.unique())}; "
                      f"using the most common", stacklevel=3)
    return float(targets.mode().iloc[0])


def leaderboard(runs: pd.DataFrame) -> Leaderboard:
    """The leaderboard of `load_sweeps()` output: ranks, intervals, times to target and profiles."""
    runs = runs.copy()
    workloads, cells, specs = [], [], {}
    seeds_per_cell: list[set] = []
    per_seed_time: dict = {}
    for label, key, group in _workload_rows(runs):
        metric, higher = primary_metric(group)
        spec = metric_spec(group, metric)
        specs[label] = spec
        split = "test" if np.isfinite(_column(group, f"test_{metric}")).any() else "val"
        target = _target_of(group, label)
        has_target = math.isfinite(target)
        workloads.append({
            "workload": label, **key, "metric": metric, "split": split, "higher_is_better": bool(higher),
            "target": target, "target_text": target_text(target, spec) if has_target else "",
            "n_runs": len(group), "sweeps": ", ".join(sorted(set(group["sweep"]))),
        })
        rows = []
        for optimizer, runs_of in group.groupby("optimizer", sort=True):
            values = _column(runs_of, f"{split}_{metric}")
            mean, low, high, n_finite = mean_interval(values)
            times = _run_times(runs_of, has_target)
            seeds = [s for s in runs_of["seed"]]
            seeds_per_cell.append(set(seeds))
            for seed, time in zip(seeds, times, strict=True):
                per_seed_time[(seed, label, optimizer)] = time
            rows.append({
                "workload": label, "optimizer": optimizer, "n_runs": len(runs_of), "n_finite": n_finite,
                "seeds": " ".join(_text(s).removesuffix(".0") for s in seeds),
                "mean": mean, "ci_low": low, "ci_high": high,
                "time_s": float(np.median(times)) if has_target else math.nan,
                "n_reached": int(np.isfinite(times).sum()) if has_target else 0,
                "values": values.to_numpy(dtype=float),  # kept for the bootstrap, dropped from the CSV
            })
        ranks = rank_within(pd.Series([r["mean"] for r in rows]), higher_is_better=higher)
        for row, rank in zip(rows, ranks, strict=True):
            row["rank"] = float(rank)
        cells += rows
    workloads = pd.DataFrame(workloads)
    cells = pd.DataFrame(cells)

    with_target = workloads.loc[np.isfinite(workloads["target"]), "workload"].tolist()
    all_optimizers = sorted(cells["optimizer"].unique())
    times = (cells[cells["workload"].isin(with_target)]
             .pivot(index="workload", columns="optimizer", values="time_s")
             .reindex(index=with_target, columns=all_optimizers))
    if len(times):
        cells = cells.join(time_ratios(times).stack().rename("time_ratio"), on=["workload", "optimizer"])
    else:
        cells["time_ratio"] = math.nan

    # Seed bands: only seeds that every cell of a workload with a target has.
    common = set.intersection(*seeds_per_cell) if seeds_per_cell else set()
    seed_times = {}
    if len(common) >= 2 and with_target:
        for seed in sorted(common, key=str):
            frame = times.copy() * np.nan
            for workload in with_target:
                for optimizer in all_optimizers:
                    frame.loc[workload, optimizer] = per_seed_time.get((seed, workload, optimizer), np.nan)
            seed_times[seed] = frame

    optimizers = _optimizer_summary(cells, times, workloads)
    board = Leaderboard(workloads=workloads, cells=cells.drop(columns="values"), optimizers=optimizers, times=times,
                        seed_times=seed_times, specs=specs, sweeps=list(runs.attrs.get("sweeps", [])))
    return board


def _bootstrap_mean_ranks(cells: pd.DataFrame, workloads: pd.DataFrame, optimizers: list[str]) -> pd.DataFrame:
    """2.5% and 97.5% percentiles of the mean rank when each cell's seeds are resampled with replacement.

    A percentile bootstrap over seeds (Efron and Tibshirani 1993): every draw resamples each
    (workload, optimizer)'s seed values, takes their mean, ranks the optimizers on every
    workload, then averages the ranks. Cells with one seed contribute the same value every draw.
    """
    rng = np.random.default_rng(0)
    sums = np.zeros((BOOTSTRAP_SAMPLES, len(optimizers)))
    counts = np.zeros(len(optimizers))
    index = {name: i for i, name in enumerate(optimizers)}
    for workload, group in cells.groupby("workload", sort=False):
        higher = bool(workloads.set_index("workload").loc[workload, "higher_is_better"])
        draws = np.empty((BOOTSTRAP_SAMPLES, len(group)))
        for j, values in enumerate(group["values"]):
            finite = values[np.isfinite(values)]
            if finite.size == 0:
                draws[:, j] = np.nan
            else:
                picks = rng.integers(0, finite.size, size=(BOOTSTRAP_SAMPLES, finite.size))
                draws[:, j] = finite[picks].mean(axis=1)
        key = np.where(np.isfinite(draws), -draws if higher else draws, np.inf)
        ranks = stats.rankdata(key, method="average", axis=1)
        columns = [index[o] for o in group["optimizer"]]
        sums[:, columns] += ranks
        counts[columns] += 1
    means = sums / np.where(counts > 0, counts, np.nan)
    low, high = np.percentile(means, [2.5, 97.5], axis=0)
    return pd.DataFrame({"rank_low": low, "rank_high": high}, index=optimizers)


def _optimizer_summary(cells: pd.DataFrame, times: pd.DataFrame, workloads: pd.DataFrame) -> pd.DataFrame:
    grouped = cells.groupby("optimizer")
    summary = pd.DataFrame({"mean_rank": grouped["rank"].mean(), "n_workloads": grouped["workload"].nunique()})
    if (cells["n_finite"] >= 2).any():
        summary = summary.join(_bootstrap_mean_ranks(cells, workloads, list(summary.index)))
    else:
        summary["rank_low"] = summary["rank_high"] = math.nan
    if len(times):
        summary["profile_score"] = profile_score(times)
        summary["fastest"] = (time_ratios(times) == 1.0).sum(axis=0)
    else:
        summary["profile_score"] = math.nan
        summary["fastest"] = 0
    summary.index.name = "optimizer"
    summary = summary.reset_index().sort_values(["mean_rank", "optimizer"], kind="stable").reset_index(drop=True)
    return summary


# ----------------------------------------------------------------------------- words and tables
def opening_paragraph(board: Leaderboard) -> str:
    """Who leads, by how much, and what the profile says, in plain sentences."""
    n = len(board.workloads)
    top = board.optimizers.iloc[0]
    names = ", ".join(board.workloads["workload"])
    seeds = int(board.cells["n_runs"].max())
    leaders = board.optimizers[np.isclose(board.optimizers["mean_rank"], top["mean_rank"])]["optimizer"].tolist()
    if len(leaders) > 1:
        lead = f"{', '.join(leaders[:-1])} and {leaders[-1]} share the best mean rank"
    else:
        lead = f"{top['optimizer']} has the best mean rank"
    parts = [f"Across {n} workload{'s' if n != 1 else ''} ({names}), {lead} "
             f"({top['mean_rank']:.2f}; {len(board.optimizers)} optimizers, rank 1 = best)."]
    if len(board.optimizers) > len(leaders):
        second = board.optimizers.iloc[len(leaders)]
        parts.append(f"Next is {second['optimizer']} ({second['mean_rank']:.2f}).")
    if math.isfinite(top.get("rank_low", math.nan)):
        parts.append(f"With seeds resampled, {top['optimizer']}'s mean rank lies in "
                     f"[{top['rank_low']:.2f}, {top['rank_high']:.2f}] (95% bootstrap).")
    elif seeds == 1:
        parts.append("Each optimizer ran one seed per workload, so these ranks carry no seed-to-seed uncertainty.")
    n_target = len(board.times)
    if n_target:
        by_score = board.optimizers.sort_values(["profile_score", "mean_rank"], ascending=[False, True])
        best = by_score.iloc[0]
        if best["profile_score"] > 0:
            parts.append(f"On the {n_target} workload{'s' if n_target != 1 else ''} with a target, "
                         f"{best['optimizer']} has the highest profile score ({best['profile_score']:.2f}) "
                         f"and is fastest to the target on {int(best['fastest'])}.")
        else:
            parts.append(f"No optimizer reached the target of any of the {n_target} workloads with one.")
    partial = board.optimizers.loc[board.optimizers["n_workloads"] < n, "optimizer"].tolist()
    if partial:
        parts.append(f"{', '.join(partial)} did not run on every workload: {'its' if len(partial) == 1 else 'their'} "
                     "mean rank is over fewer workloads and compares less fairly.")
    missing = set(board.workloads["workload"]) - set(board.times.index)
    if missing:
        parts.append(f"No target is recorded for {', '.join(sorted(missing))}; "
                     "they are ranked but left out of time to target and the profile.")
    return " ".join(parts)


def _fmt_rank(value) -> str:
    return MISSING if not np.isfinite(value) else f"{value:g}"


def _metric_cell(cell: pd.Series, spec: MetricSpec) -> str:
    if not np.isfinite(cell["mean"]):
        return "no result" if cell["n_runs"] else MISSING
    text = spec.format(cell["mean"])
    if np.isfinite(cell["ci_low"]):
        text += f" [{spec.format(cell['ci_low'])}, {spec.format(cell['ci_high'])}]"
    if cell["n_runs"] > 1:
        text += f" (n={int(cell['n_finite'])})"
    return text


def _time_cell(cell: pd.Series) -> str:
    if cell["n_reached"] == 0:
        return "never"
    text = human_duration(cell["time_s"]) if np.isfinite(cell["time_s"]) else "never"
    if cell["n_runs"] > 1:
        text += f" ({int(cell['n_reached'])}/{int(cell['n_runs'])})"
    return text


@dataclass(frozen=True)
class BoardTable:
    """One table of the leaderboard: formatted cells, bold marks, and a caption that explains it."""

    title: str
    cells: pd.DataFrame
    bold: pd.DataFrame
    caption: str
    text_columns: tuple = ("optimizer",)  # aligned left; the others hold numbers and align right


def leaderboard_tables(board: Leaderboard) -> list[BoardTable]:
    """The three tables: ranks, final metric, time to target (the last only when a workload has a target)."""
    order = list(board.optimizers["optimizer"])
    labels = list(board.workloads["workload"])
    cells = board.cells.set_index(["workload", "optimizer"])
    several_seeds = bool((board.cells["n_runs"] > 1).any())
    summary = board.optimizers.set_index("optimizer")

    def grid(fn, columns, best=None):
        text = pd.DataFrame(MISSING, index=order, columns=columns)
        bold = pd.DataFrame(False, index=order, columns=columns)
        for workload in columns:
            for optimizer in order:
                if (workload, optimizer) in cells.index:
                    cell = cells.loc[(workload, optimizer)]
                    text.loc[optimizer, workload] = fn(workload, cell)
                    bold.loc[optimizer, workload] = bool(best(cell)) if best else False
        return text, bold

    ranks, rank_bold = grid(lambda w, c: _fmt_rank(c["rank"]), labels, best=lambda c: c["rank"] == 1.0)
    head = pd.DataFrame(index=order)
    def mean_rank(o):
        low, high = summary.loc[o, "rank_low"], summary.loc[o, "rank_high"]
        return f"{summary.loc[o, 'mean_rank']:.2f}" + (f" [{low:.2f}, {high:.2f}]" if np.isfinite(low) else "")

    head["mean rank"] = [mean_rank(o) for o in order]
    head["workloads"] = [str(int(summary.loc[o, "n_workloads"])) for o in order]
    if len(board.times):
        head["profile score"] = [f"{summary.loc[o, 'profile_score']:.2f}" for o in order]
    rank_cells = pd.concat([head, ranks], axis=1)
    rank_marks = pd.concat([pd.DataFrame(False, index=order, columns=head.columns), rank_bold], axis=1)
    rank_caption = (
        "Rank of each optimizer on each workload (1 = best final primary metric; ties share the average rank; "
        "a diverged or failed run ranks last; bold = rank 1) and mean rank over the workloads it ran on "
        "(best first). workloads = number of workloads the optimizer ran on."
        + (" [low, high] = 95% percentile bootstrap interval of the mean rank, resampling each workload's seeds."
           if several_seeds else "")
        + (f" profile score = area under the performance profile from 1 to {TAU_MAX:g}, divided by "
           f"{TAU_MAX - 1:g} (AlgoPerf's benchmark score; 1 = fastest on every workload, 0 = never within "
           f"{TAU_MAX:g}x of the fastest)." if len(board.times) else "")
    )
    tables = [BoardTable("Ranks", rank_cells.rename_axis("optimizer").reset_index(),
                         rank_marks.rename_axis("optimizer").reset_index().assign(optimizer=False), rank_caption)]

    wl = board.workloads.set_index("workload")
    arrow = {True: "↑", False: "↓"}
    headers = {w: f"{w}: {wl.loc[w, 'split']} {board.spec(w).header()} {arrow[bool(wl.loc[w, 'higher_is_better'])]}"
               for w in labels}
    metrics, metric_bold = grid(lambda w, c: _metric_cell(c, board.spec(w)), labels, best=lambda c: c["rank"] == 1.0)
    metric_caption = (
        "Final primary metric of each optimizer on each workload: the test value of the checkpoint with the best "
        "validation value (validation when a workload has no test split), as the task declares the metric "
        "(↑ higher is better, ↓ lower is better)."
        + (" With several seeds: mean [95% Student-t interval] (n = seeds with a finite value)." if several_seeds
           else " One seed per cell: no interval.")
        + f" Bold = rank 1. no result = the runs diverged or failed; {MISSING} = did not run."
    )
    tables.append(BoardTable("Final metric", _with_optimizer(metrics.rename(columns=headers)),
                             _with_optimizer(metric_bold.rename(columns=headers), False), metric_caption))

    if len(board.times):
        targets = list(board.times.index)
        t_headers = {w: f"{w}: {wl.loc[w, 'target_text']}" for w in targets}
        times, time_bold = grid(lambda w, c: _time_cell(c), targets, best=lambda c: c["time_ratio"] == 1.0)
        time_caption = (
            "Training time (evaluation excluded) until the validation primary metric first reached the workload's "
            "target, named in each column header (the target the task or data set records in summary.json). "
            + ("Median over seeds; (k/n) = k of the n seeds reached it. " if several_seeds else "")
            + f"never = not reached in the run's epochs; {MISSING} = did not run. Bold = fastest. "
            "Times from different machines or loads are not comparable."
        )
        tables.append(BoardTable("Time to target", _with_optimizer(times.rename(columns=t_headers)),
                                 _with_optimizer(time_bold.rename(columns=t_headers), False), time_caption))
    return tables


def _with_optimizer(frame: pd.DataFrame, value=None) -> pd.DataFrame:
    frame = frame.rename_axis("optimizer").reset_index()
    if value is not None:
        frame["optimizer"] = value
    return frame


def workloads_table(board: Leaderboard) -> BoardTable:
    """What each workload is: task, (grid), metric and split, target, runs, sweep."""
    rows = []
    show_grid = bool(board.workloads["grid_label"].astype(bool).any())
    for _, w in board.workloads.iterrows():
        row = {"workload": w["workload"], "task": w["task"]}
        if show_grid:
            row["grid"] = w["grid_label"] or MISSING
        row.update({"metric": f"{w['split']} {board.spec(w['workload']).header()} "
                              f"{'↑' if w['higher_is_better'] else '↓'}",
                    "target": w["target_text"] or "none recorded", "runs": str(w["n_runs"]), "sweep": w["sweeps"]})
        rows.append(row)
    cells = pd.DataFrame(rows)
    return BoardTable("Workloads", cells, pd.DataFrame(False, index=cells.index, columns=cells.columns),
                      text_columns=tuple(c for c in cells.columns if c != "runs"),
                      caption=
                      "A workload is one (task, dataset, model), named dataset/model, plus any grid value the sweep "
                      "varied. metric = the primary metric and the split it is read on (↑ higher is better, "
                      "↓ lower is better). "
                      "target = the validation value whose first crossing times the run (none recorded: "
                      "the task and data set declare none, e.g. perplexities of different corpora).")


def to_markdown(table: BoardTable) -> str:
    """A pipe table with **bold** marks and a `Table:` caption."""
    def cell(text, bold):
        text = str(text).replace("|", "\\|")
        return f"**{text}**" if bold and text != MISSING else text

    headers = list(table.cells.columns)
    lines = ["| " + " | ".join(h.replace("|", "\\|") for h in headers) + " |",
             "|" + "|".join(":---" if h in table.text_columns else "---:" for h in headers) + "|"]
    for i in range(len(table.cells)):
        lines.append("| " + " | ".join(cell(table.cells.iat[i, j], table.bold.iat[i, j])
                                       for j in range(len(headers))) + " |")
    return f"### {table.title}\n\n" + "\n".join(lines) + f"\n\nTable: {table.caption}\n"


def _header_html(header) -> str:
    """An escaped header that may break after a slash (long workload names wrap there, not mid-word)."""
    return html.escape(str(header)).replace("/", "/<wbr>")


def to_html(table: BoardTable, *, table_id: str) -> str:
    """An HTML table with <caption>, escaped text and <strong> marks."""
    esc = html.escape
    out = [f'<table class="results" id="{esc(table_id)}">', f"<caption>{esc(table.caption)}</caption>",
           "<thead><tr>" + "".join(f"<th>{_header_html(h)}</th>" for h in table.cells.columns)
           + "</tr></thead><tbody>"]
    for i in range(len(table.cells)):
        cells = []
        for j, header in enumerate(table.cells.columns):
            text = esc(str(table.cells.iat[i, j]))
            cls = "" if header in table.text_columns else ' class="num"'
            cells.append(f"<td{cls}>{f'<strong>{text}</strong>' if table.bold.iat[i, j] else text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def to_csv(board: Leaderboard) -> str:
    """One row per (workload, optimizer), raw numbers (fractions stay fractions, seconds stay seconds)."""
    frame = board.cells.merge(board.workloads, on="workload", how="left")
    frame = frame.merge(board.optimizers[["optimizer", "mean_rank", "rank_low", "rank_high", "profile_score"]],
                        on="optimizer", how="left")
    frame = frame.rename(columns={"time_s": "time_to_target_median_s", "grid_label": "grid"})
    first = ["workload", "task", "dataset", "model", "grid", "optimizer", "metric", "split", "higher_is_better",
             "n_runs", "n_finite", "seeds", "mean", "ci_low", "ci_high", "rank", "target",
             "time_to_target_median_s", "n_reached", "time_ratio", "mean_rank", "rank_low", "rank_high",
             "profile_score"]
    frame = frame[[c for c in first if c in frame.columns]]
    return frame.to_csv(index=False, lineterminator="\n")


def markdown_report(board: Leaderboard) -> str:
    """leaderboard.md: the opening paragraph, then every table."""
    parts = ["# Leaderboard\n", opening_paragraph(board) + "\n"]
    parts += [to_markdown(t) for t in [*leaderboard_tables(board), workloads_table(board)]]
    return "\n".join(parts)


# ----------------------------------------------------------------------------- figures
def optimizer_colours(names) -> dict:
    """The reports' fixed colour of each optimizer (nbhelpers.report.style); names outside the 16 get tab10."""
    others = sorted({n for n in names if n not in OPTIMIZERS})
    colours = {name: optimizer_colour(name) for name in set(names) if name in OPTIMIZERS}
    colours.update({name: colormaps["tab10"](i % 10) for i, name in enumerate(others)})
    return colours


_STYLES = ("-", "--", "-.", ":")


def profile_figure(board: Leaderboard) -> FigureWithCaption:
    """The performance profiles: rho_s(tau) for tau from 1 to TAU_MAX on a log x axis (thin lines: single seeds)."""
    taus = np.geomspace(1.0, TAU_MAX, 400)
    profile = performance_profile(board.times, taus)
    figure = Figure(figsize=(8, 4.8))
    ax = figure.add_subplot()
    colours = optimizer_colours(board.optimizers["optimizer"])
    bands = [performance_profile(t, taus) for t in board.seed_times.values()]
    scores = board.optimizers.set_index("optimizer")["profile_score"]
    order = list(board.optimizers.sort_values(["profile_score", "mean_rank"], ascending=[False, True])["optimizer"])
    for i, name in enumerate(order):
        if name not in profile:
            continue
        colour = colours[name]
        for band in bands:  # thin lines: the profile of each single seed
            ax.step(taus, band[name], where="post", color=colour, linewidth=0.8, alpha=0.35)
        ax.step(taus, profile[name], where="post", color=colour, linestyle=_STYLES[(i // 10) % len(_STYLES)],
                linewidth=1.8, label=f"{name} ({scores[name]:.2f})")
    ax.set_xscale("log")
    ax.set_xlim(1.0, TAU_MAX)
    ticks = [1, 1.5, 2, 3, 4]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("τ: time to target within this factor of the fastest optimizer (log scale)")
    ax.set_ylabel("fraction of workloads")
    ax.set_title(f"Performance profiles over {len(board.times)} workloads with a target")
    ax.grid(True, alpha=0.3)
    ax.legend(title="optimizer (profile score)", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small",
              frameon=False)
    seeds_note = (f" Thick lines use each workload's median time over seeds; the thin lines of the same colour "
                  f"are the profiles of the {len(bands)} single seeds, so their spread shows the seed-to-seed "
                  "variation." if bands else
                  " Times are medians over seeds where a workload has several." if (board.cells["n_runs"] > 1).any()
                  else "")
    caption = (
        f"Performance profiles (AlgoPerf, Dahl et al. 2023): for each optimizer, the fraction of the "
        f"{len(board.times)} workloads with a target ({', '.join(board.times.index)}) on which it reached the "
        f"target within a factor τ of the fastest optimizer's training time on that workload, for τ from 1 to "
        f"{TAU_MAX:g}. At τ = 1 the line is the share of workloads on which it was fastest; a line that stays low "
        "never reached the target (infinite time) or was much slower. Higher and further left is better; the "
        f"legend gives the area under each line divided by {TAU_MAX - 1:g}." + seeds_note
    )
    return FigureWithCaption("performance_profile", figure, caption)


def rank_figure(board: Leaderboard) -> FigureWithCaption:
    """Mean rank per optimizer (best at the top), its bootstrap interval, and every workload's rank as a dot."""
    summary = board.optimizers
    n = len(summary)
    figure = Figure(figsize=(8, max(2.4, 0.42 * n + 1.4)))
    ax = figure.add_subplot()
    colours = optimizer_colours(summary["optimizer"])
    positions = np.arange(n)
    rng = np.random.default_rng(0)  # jitter only, so that equal ranks stay visible
    for y, (_, row) in zip(positions, summary.iterrows(), strict=True):
        ranks = board.cells.loc[board.cells["optimizer"] == row["optimizer"], "rank"].to_numpy()
        ax.scatter(ranks, y + rng.uniform(-0.15, 0.15, ranks.size), s=14, color="0.6", zorder=2)
        if np.isfinite(row["rank_low"]):
            ax.hlines(y, row["rank_low"], row["rank_high"], color=colours[row["optimizer"]], linewidth=3, zorder=3)
        ax.scatter([row["mean_rank"]], [y], s=60, color=colours[row["optimizer"]], edgecolor="black", zorder=4)
    ax.set_yticks(positions, list(summary["optimizer"]))
    ax.invert_yaxis()
    ax.set_xlabel("rank (1 = best)")
    ax.set_xlim(0.5, max(n, 1) + 0.5)
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(f"Mean rank over {len(board.workloads)} workloads")
    caption = (
        f"Mean rank of each optimizer over the {len(board.workloads)} workloads (large dot, best at the top) and "
        "its rank on each workload (grey dots, jittered vertically). Ranks are by the final primary metric "
        "(test, else validation), in the metric's own direction; ties share the average rank."
        + (" The bar is the 95% percentile bootstrap interval of the mean rank, resampling each workload's seeds."
           if np.isfinite(summary["rank_low"]).any() else "")
    )
    return FigureWithCaption("mean_rank", figure, caption)


def leaderboard_figures(board: Leaderboard) -> list[FigureWithCaption]:
    """The rank figure, and the performance profile when some workload has a target.

    Each FigureWithCaption's `filename` is a stem: save it as `.png` and `.svg` (plots.figure_bytes).
    """
    figures = [rank_figure(board)]
    if len(board.times):
        figures.append(profile_figure(board))
    return figures
