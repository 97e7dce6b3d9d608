"""The results table: one row per configuration, in four formats.

Rows are sorted by architecture (model), then layers, then optimizer, then any
other grid value; several seeds of one configuration become one row holding
mean ± standard deviation. `results_table()` computes the numbers once, and the
writers (`to_csv`, `to_markdown`, `to_latex`, `to_html`) only change markup, so
the four files always agree.
"""

from __future__ import annotations

import html
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nbhelpers.metric_spec import LOSS_SPEC, MetricSpec
from nbhelpers.report.stats import Interval, t_interval, tied_with_best, wilson_interval

MISSING = "–"  # shown where a value does not exist (a failed run has no test loss)


# ----------------------------------------------------------------------------- metrics
def metric_specs(runs: pd.DataFrame) -> dict[str, MetricSpec]:
    """The metric facts the runs declared in summary.json ("metric_specs"), first run first."""
    specs: dict[str, MetricSpec] = {}
    for declared in runs.get("metric_specs", []):
        if not isinstance(declared, dict):
            continue
        for name, facts in declared.items():
            if name not in specs and isinstance(facts, dict):
                try:
                    specs[name] = MetricSpec.from_dict(facts)
                except TypeError:
                    warnings.warn(f"ignoring unreadable metric facts for {name!r}: {facts!r}", stacklevel=2)
    return specs


def metric_spec(runs: pd.DataFrame, name: str) -> MetricSpec:
    """The declared facts of one metric; a metric no run declared is shown as stored.

    Runs written before metric facts existed declare none: their values are shown unscaled
    with 4 significant digits, and the direction is what summary.json says of the primary
    metric. Nothing is guessed from the values.
    """
    declared = metric_specs(runs).get(name)
    if declared is not None:
        return declared
    if name == "loss":
        return LOSS_SPEC
    return MetricSpec(name, higher_is_better=_higher_is_better(runs, name), digits=None)


def _is_finite(value) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def format_metric(value, spec: MetricSpec, std=None) -> str:
    """`value` (and `± std` when given) as the metric's spec displays it; MISSING when not finite."""
    if not _is_finite(value):
        return MISSING
    text = spec.format(value)
    if _is_finite(std):
        text += f" ± {spec.format(std)}"
    return text


# ----------------------------------------------------------------------------- humanizing
def human_count(n) -> str:
    """34_100_000 -> '34.1M', 18_662 -> '18.7k', 950 -> '950'."""
    if not _is_finite(n):
        return MISSING
    n = float(n)
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size * 0.9995:  # so 999_999 prints as 1.0M, not 1000.0k
            return f"{n / size:.1f}{suffix}"
    return f"{n:.0f}"


def human_bytes(n) -> str:
    """Binary units: 1536 -> '1.5 KiB'."""
    if not _is_finite(n):
        return MISSING
    n = float(n)
    for size, suffix in ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
        if abs(n) >= size:
            return f"{n / size:.1f} {suffix}"
    return f"{n:.0f} B"


def human_duration(seconds) -> str:
    """12.34 -> '12.3 s', 725 -> '12m 05s', 7384 -> '2h 03m'."""
    if not _is_finite(seconds):
        return MISSING
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)}m {int(round(s % 60)):02d}s"
    return f"{int(s // 3600)}h {int(round(s % 3600 / 60)):02d}m"


def _plain(value) -> str:
    """A grid or layers value: integers without '.0'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# ----------------------------------------------------------------------------- sorting
def grid_keys(runs: pd.DataFrame) -> list[str]:
    """Grid keys other than layers (which has its own column), in name order."""
    return sorted(c[len("grid.") :] for c in runs.columns if c.startswith("grid.") and c != "grid.layers")


def _sortable(column: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column):
        return column
    return column.map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))


def sort_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs in report order: model, layers, optimizer, other grid values, dataset, task, seed."""
    order = ["model", "layers", "optimizer"] + [f"grid.{k}" for k in grid_keys(runs)]
    order += ["dataset", "task", "seed", "run_id"]
    order = [c for c in order if c in runs.columns]
    keys = pd.DataFrame({c: _sortable(runs[c]) for c in order}, index=runs.index)
    index = keys.sort_values(order, na_position="last", kind="stable").index
    return runs.loc[index].reset_index(drop=True)


# ----------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class ResultsTable:
    """One results table: raw numbers for CSV and formatted cells for the markup writers."""

    numbers: pd.DataFrame  # one row per configuration; means, `<q>_std`, counts; no markup
    cells: pd.DataFrame  # same rows, display headers, formatted strings
    bold: pd.DataFrame  # same shape as `cells`; True where a cell is the best of its model
    tied: pd.DataFrame  # same shape; True where a cell cannot be told apart from that best at 95%
    numeric_columns: tuple[str, ...]  # display columns to align right
    main_columns: tuple[str, ...]  # the columns of the compact table (index.html, the LaTeX main table)
    caption: str
    primary_metric: str
    higher_is_better: bool
    specs: dict = field(default_factory=dict)  # metric name -> MetricSpec, for every reported metric
    grid_keys: tuple[str, ...] = ()


# Quantities averaged over seeds, besides the split metrics.
_RUN_QUANTITIES = (
    "epochs_run",
    "best_epoch",
    "epochs_to_target",
    "time_to_target_s",
    "params_total",
    "params_trainable",
    "optimizer_state_bytes",
    "train_time_s",
    "total_time_s",
    "mem_peak_mb",
    "mem_steady_mb",
)
_IDENTITY = ("task", "dataset", "model", "layers", "optimizer", "grid_label")


def _mode(values, default):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return Counter(values).most_common(1)[0][0] if values else default


def _with_defaults(runs: pd.DataFrame) -> pd.DataFrame:
    runs = runs.copy()
    for column, default in (
        ("task", ""), ("dataset", ""), ("model", ""), ("optimizer", ""), ("grid_label", ""),
        ("status", "unknown"), ("seed", math.nan), ("layers", math.nan), ("target", math.nan),
    ):
        if column not in runs:
            runs[column] = default
    for column in ("task", "dataset", "model", "optimizer", "grid_label"):
        runs[column] = runs[column].fillna("").astype(str)
    return runs


def _status_text(statuses: list[str]) -> str:
    counts = Counter(str(s) for s in statuses)
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def _aggregate(group: pd.DataFrame, quantities: list[str]) -> dict:
    """Mean, standard deviation, 95% t-interval and count over the seeds of one configuration."""
    row: dict = {}
    for q in quantities:
        values = pd.to_numeric(group[q], errors="coerce") if q in group else pd.Series(dtype="float64")
        values = values[np.isfinite(values)]
        interval = t_interval(list(values))
        row[q] = interval.mean
        row[f"{q}_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
        row[f"{q}_ci_low"], row[f"{q}_ci_high"], row[f"{q}_n"] = interval.low, interval.high, interval.n
    return row


def _wilson_for_one_seed(row: dict, group: pd.DataFrame, metrics: list[str], specs: dict[str, MetricSpec]) -> None:
    """One seed of a proportion metric: the interval from the split's size (Wilson)."""
    for name in metrics:
        if not specs[name].proportion:
            continue
        for split in ("val", "test"):
            column, examples = f"{split}_{name}", f"examples_{split}"
            if row.get(f"{column}_n") == 1 and examples in group:
                count = pd.to_numeric(group[examples], errors="coerce").iloc[0]
                if _is_finite(count):
                    interval = wilson_interval(float(row[column]), int(count))
                    row[f"{column}_ci_low"], row[f"{column}_ci_high"] = interval.low, interval.high


def interval_of(row: dict, column: str, spec: MetricSpec) -> Interval:
    """The interval stored in a numbers row: t over seeds, Wilson for one seed, or none."""
    n = int(row.get(f"{column}_n") or 0)
    low, high = row.get(f"{column}_ci_low", math.nan), row.get(f"{column}_ci_high", math.nan)
    method = "t" if n > 1 else ("wilson" if _is_finite(low) else "none")
    return Interval(row.get(column, math.nan), low, high, n, method)


def format_interval(interval: Interval, spec: MetricSpec) -> str:
    """'98.14 ± 0.41' (t over seeds), '98.14 (96.03–99.20)' (Wilson), '98.14' (one value)."""
    if not _is_finite(interval.mean):
        return MISSING
    text = spec.format(interval.mean)
    if interval.method == "t" and _is_finite(interval.half_width):
        text += f" ± {spec.format(interval.half_width)}"
    elif interval.method == "wilson":
        text += f" ({spec.format(interval.low)}–{spec.format(interval.high)})"
    return text


def _numbers(runs: pd.DataFrame, metrics: list[str], keys: list[str], specs: dict[str, MetricSpec]) -> pd.DataFrame:
    quantities = [f"{s}_{m}" for m in metrics for s in ("train", "val", "test")]
    quantities += list(_RUN_QUANTITIES)
    rows = []
    for _, group in runs.groupby(list(_IDENTITY), sort=False, dropna=False):
        first = group.iloc[0]
        # "#" is the experiment's number in its params file (what sweeps record), so that the
        # table's numbers match the params file and the seeds' reports; else the row number.
        experiment = _mode(list(group.get("experiment", [])), None)
        row = {"exp": int(experiment) if _is_finite(experiment) else len(rows) + 1}
        for column in ("task", "dataset", "model", "layers"):
            row[column] = first[column]
        for key in keys:
            row[key] = first.get(f"grid.{key}")
        row["optimizer"] = first["optimizer"]
        row["primary_metric"] = metrics[0]
        row["n_runs"] = len(group)
        row["seeds"] = " ".join(_plain(s) for s in group["seed"])
        row["run_ids"] = " ".join(group["run_id"].astype(str))
        row["status"] = _status_text(list(group["status"]))
        row["target"] = _mode(list(group["target"]), math.nan)
        row.update(_aggregate(group, quantities))
        _wilson_for_one_seed(row, group, metrics, specs)
        for setting in ("lr", "weight_decay", "scheduler"):
            row[setting] = _mode(list(group.get(f"config.{setting}", [])), math.nan)
        if "lr_edge" in group:  # an LR-grid sweep (report/lr_grid.py): "low"/"high" when selected at an edge
            row["lr_edge"] = _mode([e for e in group["lr_edge"] if e], "")
        reached = pd.to_numeric(group["epochs_to_target"], errors="coerce") if "epochs_to_target" in group else []
        row["n_reached_target"] = int(np.isfinite(reached).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def _best_mask(numbers: pd.DataFrame, metric: str, higher_is_better: bool) -> tuple[pd.Series, set[str]]:
    """Rows that hold the best result of their (task, dataset, model), and the splits used to rank."""
    best = pd.Series(False, index=numbers.index)
    splits_used: set[str] = set()
    for _, group in numbers.groupby(["task", "dataset", "model"], sort=False):
        test = group[f"test_{metric}"]
        split = "test" if np.isfinite(test).any() else "val"
        values = group[f"{split}_{metric}"]
        values = values[np.isfinite(values)]
        if values.empty:
            continue
        target = values.max() if higher_is_better else values.min()
        best.loc[values.index[values == target]] = True
        splits_used.add(split)
    return best, splits_used


def _per_seed(runs: pd.DataFrame, run_ids: str, column: str) -> dict[int, float]:
    chosen = runs[runs["run_id"].astype(str).isin(run_ids.split())]
    values = pd.to_numeric(chosen[column], errors="coerce") if column in chosen else []
    return {int(seed): float(v) for seed, v in zip(chosen["seed"], values, strict=True)
            if _is_finite(seed) and _is_finite(v)}


def _tied_mask(runs: pd.DataFrame, numbers: pd.DataFrame, metric: str, splits_used: set[str],
               spec: MetricSpec) -> pd.Series:
    """Configurations that cannot be told apart from their model's best at 95% (see report/stats.py)."""
    tied = pd.Series(False, index=numbers.index)
    split = "test" if "test" in splits_used else "val"
    column = f"{split}_{metric}"
    if column not in numbers:
        return tied
    for _, group in numbers.groupby(["task", "dataset", "model"], sort=False):
        best = group.index[group["best_in_model"]]
        if len(best) == 0:
            continue
        per_seed = {str(i): _per_seed(runs, numbers.at[i, "run_ids"], column) for i in group.index}
        intervals = {str(i): interval_of(numbers.loc[i].to_dict(), column, spec) for i in group.index}
        names = tied_with_best(per_seed, str(best[0]), intervals=intervals)
        for i in group.index:
            tied.at[i] = str(i) in names and not numbers.at[i, "best_in_model"]
    return tied


def _target_text(target, spec: MetricSpec) -> str:
    return f"{spec.label} {spec.format(target)}{'%' if spec.unit == '%' else ''}"


def _higher_is_better(runs: pd.DataFrame, metric: str) -> bool:
    """The direction summary.json records for `metric` as a primary metric (higher when none does)."""
    if "higher_is_better" not in runs or "primary_metric" not in runs:
        return True
    values = runs.loc[runs["primary_metric"] == metric, "higher_is_better"]
    return bool(_mode(list(values), True))


def primary_metric(runs: pd.DataFrame) -> tuple[str, bool]:
    """The sweep's primary metric (the most common one) and whether higher is better."""
    metric = str(_mode(list(runs.get("primary_metric", [])), "loss"))
    return metric, metric_spec(runs, metric).higher_is_better if metric != "loss" else False


def reported_metrics(runs: pd.DataFrame) -> list[str]:
    """The primary metric, the other declared metrics that some run measured, then the loss."""
    primary, _ = primary_metric(runs)
    measured = {c.split("_", 1)[1] for c in runs.columns
                if c.startswith(("train_", "val_", "test_")) and np.isfinite(pd.to_numeric(runs[c], errors="coerce")).any()}
    others = [m for m in metric_specs(runs) if m not in (primary, "loss") and m in measured]
    return [primary] + others + ([] if primary == "loss" else ["loss"])


def table_groups(runs: pd.DataFrame) -> list[pd.DataFrame]:
    """The runs split by (task, dataset): one results table each, in order of appearance."""
    runs = _with_defaults(runs)
    return [group for _, group in runs.groupby(["task", "dataset"], sort=False)]


def results_tables(runs: pd.DataFrame) -> list["ResultsTable"]:
    """One results table per (task, dataset) of the sweep."""
    return [results_table(group) for group in table_groups(runs)]


def results_table(runs: pd.DataFrame) -> ResultsTable:
    """Build the results table from `load_runs()` output (one row per run) of one task and dataset.

    Runs of several datasets still give one table (bold stays per task, dataset and model);
    `results_tables()` gives one per dataset, as the report does.
    """
    runs = sort_runs(_with_defaults(runs))
    metric, higher_is_better = primary_metric(runs)
    metrics = reported_metrics(runs)
    specs = {m: metric_spec(runs, m) for m in metrics}
    keys = grid_keys(runs)
    numbers = _numbers(runs, metrics, keys, specs)
    numbers["best_in_model"], splits_used = _best_mask(numbers, metric, higher_is_better)
    numbers["tied_with_best"] = _tied_mask(runs, numbers, metric, splits_used, specs[metric])

    primary = specs[metric]
    test_columns = [f"test_{m}" for m in metrics if f"test_{m}" in numbers]
    has_test = any(np.isfinite(numbers[c]).any() for c in test_columns)
    splits = ("train", "val", "test") if has_test else ("train", "val")
    show_dataset = numbers["dataset"].nunique() > 1
    show_task = numbers["task"].nunique() > 1
    show_layers = bool(np.isfinite(pd.to_numeric(numbers["layers"], errors="coerce")).any())
    show_n = bool((numbers["n_runs"] > 1).any())
    targets = numbers["target"][[_is_finite(t) for t in numbers["target"]]]
    show_target = not targets.empty

    columns: dict[str, list[str]] = {}
    bold: dict[str, list[bool]] = {}
    tied: dict[str, list[bool]] = {}
    numeric: list[str] = []
    main: list[str] = []

    def add(header: str, values: list[str], *, is_numeric: bool = True, bold_rows=None, tied_rows=None,
            in_main: bool = False) -> None:
        columns[header] = values
        bold[header] = list(bold_rows) if bold_rows is not None else [False] * len(values)
        tied[header] = list(tied_rows) if tied_rows is not None else [False] * len(values)
        if is_numeric:
            numeric.append(header)
        if in_main:
            main.append(header)

    records = numbers.to_dict("records")
    add("#", [str(r["exp"]) for r in records], in_main=True)
    if show_task:
        add("task", [r["task"] for r in records], is_numeric=False, in_main=True)
    if show_dataset:
        add("dataset", [r["dataset"] for r in records], is_numeric=False, in_main=True)
    add("model", [r["model"] for r in records], is_numeric=False, in_main=True)
    if show_layers:
        add("layers", [_plain(r["layers"]) for r in records], in_main=True)
    add("optimizer", [r["optimizer"] for r in records], is_numeric=False, in_main=True)
    for key in keys:
        add(key, [_plain(r[key]) for r in records], is_numeric=False, in_main=True)
    if show_n:
        add("n", [str(r["n_runs"]) for r in records], in_main=True)
    best = list(numbers["best_in_model"])
    is_tied = list(numbers["tied_with_best"])
    for name in metrics:
        spec = specs[name]
        for split in splits:
            column = f"{split}_{name}"
            if column not in numbers or (name != metric and not np.isfinite(numbers[column]).any()):
                continue  # a secondary metric that was never measured on this split
            rank = name == metric and split in splits_used
            add(f"{split} {spec.header()}",
                [format_interval(interval_of(r, column, spec), spec) for r in records],
                bold_rows=[b and rank and _is_finite(r[column]) for b, r in zip(best, records, strict=True)],
                tied_rows=[t and rank and _is_finite(r[column]) for t, r in zip(is_tied, records, strict=True)],
                in_main=name == metric and split in ("val", "test"))
    lr_grid = "lr_edge" in numbers
    add("LR", [_plain(r["lr"]) + (f" (edge: {r['lr_edge']})" if lr_grid and r["lr_edge"] else "") for r in records],
        in_main=True)
    add("weight decay", [_plain(r["weight_decay"]) for r in records])
    add("schedule", [_plain(r["scheduler"]) for r in records], is_numeric=False)
    add("epochs / best", [f"{_count(r['epochs_run'])} / {_count(r['best_epoch'])}" for r in records], in_main=True)
    if show_target:
        label = _target_text(targets.iloc[0], primary) if targets.nunique() == 1 else "target"
        add(f"ep. to {label}", [_reached(r, "epochs_to_target", _count) for r in records])
        add(f"time to {label}", [_reached(r, "time_to_target_s", human_duration) for r in records], in_main=True)
    add("params", [human_count(r["params_total"]) for r in records])
    add("trainable", [human_count(r["params_trainable"]) for r in records])
    add("opt. state", [human_bytes(r["optimizer_state_bytes"]) for r in records])
    add("train time", [_with_std(r, "train_time_s", human_duration) for r in records], in_main=True)
    add("peak MB", [_with_std(r, "mem_peak_mb", lambda v: f"{float(v):.1f}") for r in records])
    add("steady MB", [_with_std(r, "mem_steady_mb", lambda v: f"{float(v):.1f}") for r in records])
    add("status", [r["status"] for r in records], is_numeric=False, in_main=True)

    caption = _caption(
        runs=runs, numbers=numbers, metric=metric, specs=specs, higher_is_better=higher_is_better,
        splits=splits, splits_used=splits_used, show_layers=show_layers, keys=keys, show_n=show_n,
        target_label=(f"ep. to {label}", f"time to {label}") if show_target else None,
        target_values=sorted({_target_text(t, primary) for t in targets}),
        show_dataset=show_dataset, show_task=show_task, lr_grid=lr_grid,
    )
    return ResultsTable(
        numbers=numbers,
        cells=pd.DataFrame(columns),
        bold=pd.DataFrame(bold),
        tied=pd.DataFrame(tied),
        numeric_columns=tuple(numeric),
        main_columns=tuple(main),
        specs=specs,
        grid_keys=tuple(keys),
        caption=caption,
        primary_metric=metric,
        higher_is_better=higher_is_better,
    )


def _count(value) -> str:
    """Epoch counts: integers as such, seed means with one decimal."""
    if not _is_finite(value):
        return MISSING
    return f"{round(float(value), 1):g}"


def _reached(row: dict, column: str, fmt) -> str:
    if not _is_finite(row["target"]) or not _is_finite(row["epochs_run"]) or row["epochs_run"] == 0:
        return MISSING  # no target, or a run that never finished an epoch
    if row["n_reached_target"] == 0:
        return "never"
    text = fmt(row[column])
    if row["n_reached_target"] < row["n_runs"]:
        text += f" ({row['n_reached_target']}/{row['n_runs']})"
    return text


def _with_std(row: dict, column: str, fmt) -> str:
    text = fmt(row[column]) if _is_finite(row[column]) else MISSING
    if text != MISSING and _is_finite(row.get(f"{column}_std")):
        std = fmt(row[f"{column}_std"])
        text += f" ± {std}"
    return text


def _metric_phrase(spec: MetricSpec) -> str:
    unit = {"%": " in percent", "": ""}.get(spec.unit, f" ({spec.unit})") if spec.unit.lower() != spec.label.lower() else ""
    return f"{spec.label}{unit}, {'higher' if spec.higher_is_better else 'lower'} is better"


def _caption(*, runs, numbers, metric, specs, higher_is_better, splits, splits_used, show_layers, keys,
             show_n, target_label, target_values, show_dataset, show_task, lr_grid=False) -> str:
    primary = specs[metric]
    tasks = ", ".join(sorted(set(runs["task"]) - {""})) or "unknown task"
    datasets = ", ".join(sorted(set(runs["dataset"]) - {""})) or "unknown dataset"
    split_names = {"train": "training", "val": "validation", "test": "test"}
    parts = [
        f"Results of {len(runs)} runs ({len(numbers)} configurations) of {tasks} on {datasets}, "
        f"sorted by architecture (model), then {'number of layers, then ' if show_layers else ''}optimizer.",
        "# = the experiment's number in the params file.",
    ]
    if show_task:
        parts.append("task = the task the run trained for.")
    if show_dataset:
        parts.append("dataset = the data set the run trained and was evaluated on.")
    if show_layers:
        parts.append("layers = number of layers of the model.")
    if keys:
        parts.append(", ".join(keys) + (" = grid values" if len(keys) > 1 else " = grid value")
                     + " varied by the sweep, part of the configuration.")
    if show_n:
        parts.append("n = number of seeds; a metric reads mean ± the half-width of its 95% t-interval over the "
                     "n seeds (Student's t, n - 1 degrees of freedom); other quantities mean ± standard deviation.")
    if any(specs[m].proportion for m in specs):
        parts.append("With one seed, a proportion such as accuracy shows its 95% Wilson interval (low–high) from "
                     "the number of evaluated examples alone: how wide one example is.")
    parts.append(" / ".join(splits) + " = " + ", ".join(split_names[s] for s in splits) + " split.")
    parts.append("Metrics (as the task declares them): "
                 + "; ".join(_metric_phrase(specs[m]) for m in specs if m != "loss")
                 + "; loss = the task's training loss.")
    extreme = "highest" if higher_is_better else "lowest"
    sentence = f"Values are taken at the best epoch (the one with the {extreme} val {primary.label})"
    test_note = "; test values come from the checkpoint saved at that epoch." if "test" in splits else "."
    parts.append(sentence + test_note)
    parts.append(f"epochs / best = epochs run / epoch with the best val {primary.label}.")
    if target_label:
        parts.append(
            f"{target_label[0]} / {target_label[1]} = first epoch / training time at which val {primary.label} "
            f"reached the task's target ({', '.join(target_values)}); never = not reached"
            + ("; (k/n) = only k of the n seeds reached it, the value is their mean." if show_n else ".")
        )
    parts.append("params / trainable = total / trainable parameters (k = thousand, M = million, B = billion).")
    parts.append(
        "opt. state = size of the optimizer's state tensors after training (KiB, MiB, GiB = 1024, 1024², 1024³ bytes)."
    )
    parts.append("train time = training wall-clock time, evaluation excluded (s = seconds, m = minutes, h = hours).")
    parts.append(
        "peak MB / steady MB = peak and mean steady-state memory in megabytes "
        "(CUDA: memory allocated to tensors; CPU: resident set size of the process)."
    )
    parts.append(
        "status: completed, early_stopped (ended by early stopping), diverged (loss became NaN or infinite), "
        "failed (stopped by an error)."
    )
    parts.append(f"{MISSING} = not available.")
    ranked = " or ".join(f"{s} {primary.label}" for s in ("test", "val") if s in splits_used) or f"val {primary.label}"
    parts.append(f"Bold = best {ranked} within each model on this data set "
                 f"({'higher' if higher_is_better else 'lower'} is better); italic = tied with it: the data cannot "
                 "tell them apart at 95% (a paired t-test over seeds, p ≥ 0.05; with one seed, overlapping Wilson "
                 "intervals of a proportion; otherwise no tie is claimed).")
    parts.append("LR / weight decay / schedule = the settings the run trained with.")
    if lr_grid:
        parts.append("LR = the LR selected per optimizer on validation (first seed) from the sweep's LR grid; runs "
                     "at the other LRs of the grid are not in this table. (edge: low / high) = the selected LR is "
                     "the grid's smallest / largest, so the best LR may lie outside the grid.")
    return " ".join(parts)


# ----------------------------------------------------------------------------- writers
def to_csv(table: ResultsTable) -> str:
    """Raw numbers (fractions stay fractions, seconds stay seconds), one row per configuration."""
    return table.numbers.to_csv(index=False, lineterminator="\n")


def _style(table: ResultsTable, i: int, j: int) -> str:
    """"bold", "tied" or "" for one cell."""
    if table.bold.iat[i, j]:
        return "bold"
    if table.tied.iat[i, j]:
        return "tied"
    return ""


def to_markdown(table: ResultsTable) -> str:
    """A GitHub/pandoc pipe table, best cells in **bold**, ties in *italic*, and a `Table:` caption."""

    def cell(text: str, style: str) -> str:
        text = text.replace("|", "\\|")
        if text == MISSING or not style:
            return text
        return f"**{text}**" if style == "bold" else f"*{text}*"

    headers = list(table.cells.columns)
    lines = ["| " + " | ".join(h.replace("|", "\\|") for h in headers) + " |"]
    lines.append("|" + "|".join("---:" if h in table.numeric_columns else ":---" for h in headers) + "|")
    for i in range(len(table.cells)):
        row = (cell(table.cells.iat[i, j], _style(table, i, j)) for j in range(len(headers)))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + f"\n\nTable: {table.caption}\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "±": r"$\pm$", "≤": r"$\leq$", "≥": r"$\geq$", "²": r"$^2$", "³": r"$^3$", "–": "--",
}


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX tabular (underscores, percent signs, ± and friends)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _latex_tabular(table: ResultsTable, headers: list[str], *, caption: str, label: str,
                   latex_suffix: str = "") -> list[str]:
    """One booktabs table; `latex_suffix` is appended to the escaped caption as LaTeX (a \\ref)."""
    spec = "".join("r" if h in table.numeric_columns else "l" for h in headers)
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        r"\small",
        rf"\caption{{{latex_escape(caption)}{latex_suffix}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in headers) + r" \\",
        r"\midrule",
    ]
    positions = [list(table.cells.columns).index(h) for h in headers]
    for i in range(len(table.cells)):
        cells = []
        for j in positions:
            text, style = latex_escape(table.cells.iat[i, j]), _style(table, i, j)
            cells.append(rf"\textbf{{{text}}}" if style == "bold" else rf"\textit{{{text}}}" if style == "tied" else text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return lines


def to_latex(table: ResultsTable, *, label: str = "tab:results") -> str:
    """Two booktabs tables (\\usepackage{booktabs}): the main columns, which fit a page, then every column.

    Best cells in \\textbf, ties in \\textit. The detail table may need
    \\resizebox{\\linewidth}{!}{...} (package graphicx) or a landscape page.
    """
    main = [h for h in table.cells.columns if h in table.main_columns]
    lines = ["% Needs \\usepackage{booktabs}."]
    lines += _latex_tabular(table, main, label=label, caption=f"{table.caption} Main columns; ",
                            latex_suffix=f"Table~\\ref{{{label}-detail}} has every column.")
    lines += _latex_tabular(table, list(table.cells.columns), caption="Every column of ", label=f"{label}-detail",
                            latex_suffix=f"Table~\\ref{{{label}}}.")
    return "\n".join(lines)


def to_html(table: ResultsTable, *, table_id: str = "results", columns: list[str] | None = None,
            caption: str | None = None) -> str:
    """An HTML <table> with <caption>, best cells in <strong>, ties in <em>; no scripts, no external styles.

    `columns` picks a subset (index.html shows the main columns, then every column in a detail table).
    """
    headers = list(table.cells.columns) if columns is None else list(columns)
    positions = [list(table.cells.columns).index(h) for h in headers]

    def cls(header: str) -> str:
        return ' class="num"' if header in table.numeric_columns else ""

    out = [f'<table class="results" id="{html.escape(table_id)}">',
           f"<caption>{html.escape(table.caption if caption is None else caption)}</caption>"]
    out.append("<thead><tr>" + "".join(f"<th{cls(h)}>{html.escape(h)}</th>" for h in headers) + "</tr></thead>")
    out.append("<tbody>")
    for i in range(len(table.cells)):
        cells = []
        for j, header in zip(positions, headers, strict=True):
            text, style = html.escape(table.cells.iat[i, j]), _style(table, i, j)
            if style == "bold":
                text = f"<strong>{text}</strong>"
            elif style == "tied":
                text = f"<em>{text}</em>"
            cells.append(f"<td{cls(header)}>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def to_html_main_and_detail(table: ResultsTable, *, table_id: str = "results") -> str:
    """The main columns (no horizontal scrolling), then every column inside a <details> block."""
    main = [h for h in table.cells.columns if h in table.main_columns]
    return (to_html(table, table_id=table_id, columns=main)
            + f'\n<details class="detail"><summary>All columns ({len(table.cells.columns)})</summary>\n'
            + to_html(table, table_id=f"{table_id}-detail", caption="Every column of the table above.")
            + "\n</details>")


# ----------------------------------------------------------------------------- several tables
def _heading(table: ResultsTable) -> str:
    first = table.numbers.iloc[0] if len(table.numbers) else {}
    return f"{first.get('task', '')} on {first.get('dataset', '')}".strip()


def combined_csv(tables: list[ResultsTable]) -> str:
    """All tables' raw numbers in one CSV (the task and dataset columns tell them apart)."""
    return pd.concat([t.numbers for t in tables], ignore_index=True).to_csv(index=False, lineterminator="\n")


def combined_markdown(tables: list[ResultsTable]) -> str:
    """One markdown table per data set, each under a heading when there are several."""
    if len(tables) == 1:
        return to_markdown(tables[0])
    return "\n".join(f"### {_heading(t)}\n\n{to_markdown(t)}" for t in tables)


def combined_latex(tables: list[ResultsTable]) -> str:
    """One LaTeX table per data set, labelled tab:results, tab:results-2, ..."""
    return "\n".join(to_latex(t, label="tab:results" if i == 0 else f"tab:results-{i + 1}")
                     for i, t in enumerate(tables))


def combined_html(tables: list[ResultsTable]) -> str:
    """One HTML table per data set (main columns, then a detail table), under a heading when there are several."""
    if len(tables) == 1:
        return to_html_main_and_detail(tables[0])
    return "\n".join(f"<h3>{html.escape(_heading(t))}</h3>\n" + to_html_main_and_detail(t, table_id=f"results-{i + 1}")
                     for i, t in enumerate(tables))


# ----------------------------------------------------------------------------- the verdict in words
def _config_name(row: dict, keys: list[str]) -> str:
    text = str(row["optimizer"])
    if _is_finite(row.get("layers")):
        text += f" ({_plain(row['layers'])} layers)"
    return text + "".join(f", {k}={_plain(row.get(k))}" for k in keys if k in row)


def verdict(table: ResultsTable) -> str:
    """The table's outcome in words: who won on each model, by how much, and who is tied with it."""
    numbers = table.numbers
    metric = table.primary_metric
    spec = table.specs[metric]
    split = "test" if f"test_{metric}" in numbers and np.isfinite(numbers[f"test_{metric}"]).any() else "val"
    column = f"{split}_{metric}"
    keys = [k for k in numbers.columns if k in table.grid_keys]
    unit = " points" if spec.unit == "%" else (f" {spec.unit}" if spec.unit and spec.unit != "ppl" else "")
    sentences = []
    for (dataset, model), group in numbers.groupby(["dataset", "model"], sort=False):
        group = group[np.isfinite(group[column])]
        if group.empty:
            sentences.append(f"On {dataset}, no {model} run has a {split} {spec.label}.")
            continue
        group = group.sort_values(column, ascending=not spec.higher_is_better)
        rows = group.to_dict("records")
        best = rows[0]
        text = (f"On {dataset} with {model}, {_config_name(best, keys)} has the best {split} {spec.label}: "
                f"{format_interval(interval_of(best, column, spec), spec)}{'%' if spec.unit == '%' else ''}")
        if len(rows) > 1:
            runner = rows[1]
            gap = abs(spec.display(best[column]) - spec.display(runner[column]))
            text += (f", {gap:.{spec.digits if spec.digits is not None else 2}f}{unit} ahead of "
                     f"{_config_name(runner, keys)} ({spec.format(runner[column])}{'%' if spec.unit == '%' else ''}).")
            # Rows equal to the best are bold too (best_in_model), not "tied": name them all the same.
            tied = [_config_name(r, keys) for r in rows[1:] if r["tied_with_best"] or r["best_in_model"]]
            decidable = best[f"{column}_n"] > 1 or (spec.proportion and _is_finite(best[f"{column}_ci_low"]))
            if tied:
                text += f" Tied with it at 95% (the data cannot tell them apart): {', '.join(tied)}."
            elif decidable:
                text += " No other configuration is tied with it at 95%."
            else:
                text += " With one seed and no interval for this metric, no tie can be tested (use --seeds 3)."
        else:
            text += "."
        sentences.append(text)
    return " ".join(sentences)
