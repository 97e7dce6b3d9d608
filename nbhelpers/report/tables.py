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
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

MISSING = "–"  # shown where a value does not exist (a failed run has no test loss)


# ----------------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class MetricInfo:
    """How a metric is named in headers and captions, and how its values print."""

    abbrev: str  # header text, e.g. "acc"
    name: str  # caption text, e.g. "accuracy"
    percent: bool  # stored as a fraction (0..1), shown as a percentage
    decimals: int | None = 2  # None: 4 significant digits (a metric we know nothing about)


_METRICS = {
    "accuracy": MetricInfo("acc", "accuracy", True),
    "pixel_accuracy": MetricInfo("pixel acc", "pixel accuracy", True),
    "perplexity": MetricInfo("PPL", "perplexity", False),
    "f1": MetricInfo("F1", "F1 score", True),
    "macro_f1": MetricInfo("macro-F1", "macro-averaged F1 score", True),
    "miou": MetricInfo("mIoU", "mean intersection over union", True),
    "mean_iou": MetricInfo("mIoU", "mean intersection over union", True),
    "iou": MetricInfo("IoU", "intersection over union", True),
    "dice": MetricInfo("Dice", "Dice coefficient", True),
    "exact_match": MetricInfo("EM", "exact match", True),
    "bleu": MetricInfo("BLEU", "BLEU score", True),
    "rouge1": MetricInfo("ROUGE-1", "ROUGE-1 F-score", True),
    "rouge2": MetricInfo("ROUGE-2", "ROUGE-2 F-score", True),
    "rougeL": MetricInfo("ROUGE-L", "ROUGE-L F-score", True),
    "rouge_l": MetricInfo("ROUGE-L", "ROUGE-L F-score", True),
    "loss": MetricInfo("loss", "loss", False, 4),
}


def metric_info(metric: str) -> MetricInfo:
    """Header abbreviation, caption name and number format of a metric."""
    return _METRICS.get(metric, MetricInfo(metric, metric.replace("_", " "), False, None))


def percent_scale(metric: str, values) -> float:
    """100 when a percent-like metric is stored as fractions (every value within [-1, 1]), else 1.

    Tasks report fractions; the check keeps a metric already stored in percent
    (BLEU from sacrebleu, say) from being multiplied twice.
    """
    if not metric_info(metric).percent:
        return 1.0
    finite = pd.to_numeric(pd.Series(values, dtype="float64"), errors="coerce")
    finite = finite[np.isfinite(finite)]
    return 100.0 if finite.empty or finite.abs().max() <= 1.0 else 1.0


def _is_finite(value) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def format_metric(value, metric: str, scale: float = 1.0, std=None) -> str:
    """`value` (and `± std` when given) in the metric's print format; MISSING when not finite."""
    if not _is_finite(value):
        return MISSING
    info = metric_info(metric)

    def one(x: float) -> str:
        x = float(x) * scale
        return f"{x:.4g}" if info.decimals is None else f"{x:.{info.decimals}f}"

    text = one(value)
    if _is_finite(std):
        text += f" ± {one(std)}"
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
    numeric_columns: tuple[str, ...]  # display columns to align right
    caption: str
    primary_metric: str
    higher_is_better: bool


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
    row: dict = {}
    for q in quantities:
        values = pd.to_numeric(group[q], errors="coerce") if q in group else pd.Series(dtype="float64")
        values = values[np.isfinite(values)]
        row[q] = values.mean() if len(values) else math.nan
        row[f"{q}_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
    return row


def _numbers(runs: pd.DataFrame, metric: str, keys: list[str]) -> pd.DataFrame:
    quantities = [f"{s}_{metric}" for s in ("train", "val", "test")]
    quantities += [f"{s}_loss" for s in ("train", "val", "test") if metric != "loss"]
    quantities += list(_RUN_QUANTITIES)
    rows = []
    for _, group in runs.groupby(list(_IDENTITY), sort=False, dropna=False):
        first = group.iloc[0]
        row = {"exp": len(rows) + 1}
        for column in ("task", "dataset", "model", "layers"):
            row[column] = first[column]
        for key in keys:
            row[key] = first.get(f"grid.{key}")
        row["optimizer"] = first["optimizer"]
        row["primary_metric"] = metric
        row["n_runs"] = len(group)
        row["seeds"] = " ".join(_plain(s) for s in group["seed"])
        row["run_ids"] = " ".join(group["run_id"].astype(str))
        row["status"] = _status_text(list(group["status"]))
        row["target"] = _mode(list(group["target"]), math.nan)
        row.update(_aggregate(group, quantities))
        reached = pd.to_numeric(group["epochs_to_target"], errors="coerce") if "epochs_to_target" in group else []
        row["n_reached_target"] = int(np.isfinite(reached).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def _best_mask(numbers: pd.DataFrame, metric: str, higher_is_better: bool) -> tuple[pd.Series, set[str]]:
    """Rows that hold the best result of their model, and the splits used to rank."""
    best = pd.Series(False, index=numbers.index)
    splits_used: set[str] = set()
    for _, group in numbers.groupby("model", sort=False):
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


def _target_text(target, metric: str, scale: float) -> str:
    info = metric_info(metric)
    if info.percent:
        return f"{float(target) * scale:g}%"
    return f"{info.abbrev} {float(target):.4g}"


def _higher_is_better(runs: pd.DataFrame, metric: str) -> bool:
    """The direction the runs report for `metric`; percent-like metrics rise when unknown."""
    if "higher_is_better" not in runs or "primary_metric" not in runs:
        return metric_info(metric).percent
    values = runs.loc[runs["primary_metric"] == metric, "higher_is_better"]
    return bool(_mode(list(values), metric_info(metric).percent))


def primary_metric(runs: pd.DataFrame) -> tuple[str, bool]:
    """The sweep's primary metric (the most common one) and whether higher is better."""
    metric = str(_mode(list(runs.get("primary_metric", [])), "loss"))
    return metric, _higher_is_better(runs, metric)


def results_table(runs: pd.DataFrame) -> ResultsTable:
    """Build the results table from `load_runs()` output (one row per run)."""
    runs = sort_runs(_with_defaults(runs))
    metric, higher_is_better = primary_metric(runs)
    keys = grid_keys(runs)
    numbers = _numbers(runs, metric, keys)
    numbers["best_in_model"], splits_used = _best_mask(numbers, metric, higher_is_better)

    info = metric_info(metric)
    values = [runs[f"{s}_{metric}"] for s in ("train", "val", "test") if f"{s}_{metric}" in runs]
    scale = percent_scale(metric, pd.concat(values) if values else [])
    unit = " (%)" if scale == 100 else ""
    test_columns = [c for c in (f"test_{metric}", "test_loss") if c in numbers]
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
    numeric: list[str] = []

    def add(header: str, values: list[str], *, is_numeric: bool = True, bold_rows=None) -> None:
        columns[header] = values
        bold[header] = list(bold_rows) if bold_rows is not None else [False] * len(values)
        if is_numeric:
            numeric.append(header)

    records = numbers.to_dict("records")
    add("#", [str(r["exp"]) for r in records])
    if show_task:
        add("task", [r["task"] for r in records], is_numeric=False)
    if show_dataset:
        add("dataset", [r["dataset"] for r in records], is_numeric=False)
    add("model", [r["model"] for r in records], is_numeric=False)
    if show_layers:
        add("layers", [_plain(r["layers"]) for r in records])
    add("optimizer", [r["optimizer"] for r in records], is_numeric=False)
    for key in keys:
        add(key, [_plain(r[key]) for r in records], is_numeric=False)
    if show_n:
        add("n", [str(r["n_runs"]) for r in records])
    best = list(numbers["best_in_model"])
    for split in splits:
        column = f"{split}_{metric}"
        rank_split = split in splits_used
        add(
            f"{split} {info.abbrev}{unit}",
            [format_metric(r[column], metric, scale, r[f"{column}_std"]) for r in records],
            bold_rows=[b and rank_split and _is_finite(r[column]) for b, r in zip(best, records, strict=True)],
        )
    if metric != "loss":
        for split in splits:
            cells = [format_metric(r[f"{split}_loss"], "loss", 1.0, r[f"{split}_loss_std"]) for r in records]
            add(f"{split} loss", cells)
    add("epochs / best", [f"{_count(r['epochs_run'])} / {_count(r['best_epoch'])}" for r in records])
    if show_target:
        label = _target_text(targets.iloc[0], metric, scale) if targets.nunique() == 1 else "target"
        add(f"ep. to {label}", [_reached(r, "epochs_to_target", _count) for r in records])
        add(f"time to {label}", [_reached(r, "time_to_target_s", human_duration) for r in records])
    add("params", [human_count(r["params_total"]) for r in records])
    add("trainable", [human_count(r["params_trainable"]) for r in records])
    add("opt. state", [human_bytes(r["optimizer_state_bytes"]) for r in records])
    add("train time", [_with_std(r, "train_time_s", human_duration) for r in records])
    add("peak MB", [_with_std(r, "mem_peak_mb", lambda v: f"{float(v):.1f}") for r in records])
    add("steady MB", [_with_std(r, "mem_steady_mb", lambda v: f"{float(v):.1f}") for r in records])
    add("status", [r["status"] for r in records], is_numeric=False)

    caption = _caption(
        runs=runs, numbers=numbers, metric=metric, higher_is_better=higher_is_better, percent=scale == 100,
        splits=splits, splits_used=splits_used, show_layers=show_layers, keys=keys, show_n=show_n,
        target_label=(f"ep. to {label}", f"time to {label}") if show_target else None,
        target_values=sorted({_target_text(t, metric, scale) for t in targets}),
        show_dataset=show_dataset, show_task=show_task,
    )
    return ResultsTable(
        numbers=numbers,
        cells=pd.DataFrame(columns),
        bold=pd.DataFrame(bold),
        numeric_columns=tuple(numeric),
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


def _caption(*, runs, numbers, metric, higher_is_better, percent, splits, splits_used, show_layers, keys,
             show_n, target_label, target_values, show_dataset, show_task) -> str:
    info = metric_info(metric)
    tasks = ", ".join(sorted(set(runs["task"]) - {""})) or "unknown task"
    datasets = ", ".join(sorted(set(runs["dataset"]) - {""})) or "unknown dataset"
    better = "higher" if higher_is_better else "lower"
    split_names = {"train": "training", "val": "validation", "test": "test"}
    parts = [
        f"Results of {len(runs)} runs ({len(numbers)} configurations) of {tasks} on {datasets}, "
        f"sorted by architecture (model), then {'number of layers, then ' if show_layers else ''}optimizer.",
        "# = experiment number.",
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
        parts.append("n = number of seeds; mean ± standard deviation over the n seeds (one value when n = 1).")
    parts.append(
        " / ".join(splits) + " = " + ", ".join(split_names[s] for s in splits) + " split"
        + (f"; {info.abbrev} = {info.name}" if info.abbrev != info.name else "")
        + (" in percent" if percent else "")
        + f" ({better} is better); loss = the task's training loss."
    )
    extreme = "highest" if higher_is_better else "lowest"
    sentence = f"Metric and loss are taken at the best epoch (the one with the {extreme} val {info.abbrev})"
    test_note = "; test values come from the checkpoint saved at that epoch." if "test" in splits else "."
    parts.append(sentence + test_note)
    parts.append(f"epochs / best = epochs run / epoch with the best val {info.abbrev}.")
    if target_label:
        parts.append(
            f"{target_label[0]} / {target_label[1]} = first epoch / training time at which val {info.abbrev} "
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
    ranked = " or ".join(f"{s} {info.abbrev}" for s in ("test", "val") if s in splits_used) or f"val {info.abbrev}"
    parts.append(f"Bold = best {ranked} within each model ({better} is better).")
    return " ".join(parts)


# ----------------------------------------------------------------------------- writers
def to_csv(table: ResultsTable) -> str:
    """Raw numbers (fractions stay fractions, seconds stay seconds), one row per configuration."""
    return table.numbers.to_csv(index=False, lineterminator="\n")


def to_markdown(table: ResultsTable) -> str:
    """A GitHub/pandoc pipe table with the best cells in **bold** and a `Table:` caption."""

    def cell(text: str, is_bold: bool) -> str:
        text = text.replace("|", "\\|")
        return f"**{text}**" if is_bold and text != MISSING else text

    headers = list(table.cells.columns)
    lines = ["| " + " | ".join(h.replace("|", "\\|") for h in headers) + " |"]
    lines.append("|" + "|".join("---:" if h in table.numeric_columns else ":---" for h in headers) + "|")
    for i in range(len(table.cells)):
        row = (cell(table.cells.iat[i, j], table.bold.iat[i, j]) for j in range(len(headers)))
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


def to_latex(table: ResultsTable, *, label: str = "tab:results") -> str:
    """A plain `tabular` (no booktabs) in a `table` float, best cells in \\textbf."""
    headers = list(table.cells.columns)
    spec = "".join("r" if h in table.numeric_columns else "l" for h in headers)
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        r"\small",
        rf"\caption{{{latex_escape(table.caption)}}}",
        rf"\label{{{label}}}",
        "% A wide table: wrap the tabular in \\resizebox{\\linewidth}{!}{...} (package graphicx) if it overflows.",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\hline",
        " & ".join(latex_escape(h) for h in headers) + r" \\",
        r"\hline",
    ]
    for i in range(len(table.cells)):
        cells = []
        for j in range(len(headers)):
            text = latex_escape(table.cells.iat[i, j])
            cells.append(rf"\textbf{{{text}}}" if table.bold.iat[i, j] else text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def to_html(table: ResultsTable, *, table_id: str = "results") -> str:
    """An HTML <table> with <caption>, best cells in <strong>; no scripts, no external styles."""
    headers = list(table.cells.columns)

    def cls(header: str) -> str:
        return ' class="num"' if header in table.numeric_columns else ""

    out = [f'<table class="results" id="{html.escape(table_id)}">', f"<caption>{html.escape(table.caption)}</caption>"]
    out.append("<thead><tr>" + "".join(f"<th{cls(h)}>{html.escape(h)}</th>" for h in headers) + "</tr></thead>")
    out.append("<tbody>")
    for i in range(len(table.cells)):
        cells = []
        for j, header in enumerate(headers):
            text = html.escape(table.cells.iat[i, j])
            if table.bold.iat[i, j]:
                text = f"<strong>{text}</strong>"
            cells.append(f"<td{cls(header)}>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)
