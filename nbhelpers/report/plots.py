"""Figures of a sweep: learning curves and memory, each with its caption.

Figures are built as `matplotlib.figure.Figure` objects and rendered with the
Agg canvas, never through pyplot: pyplot keeps global state and switching its
backend would break a notebook's inline backend. `make_figures()` returns
figures and captions; the caller saves them (`png_bytes()`) or shows them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from nbhelpers.metric_spec import MetricSpec
from nbhelpers.report.style import FAMILIES, OTHER_FAMILY, family_of, optimizer_colour
from nbhelpers.report.tables import grid_keys, metric_spec, primary_metric, sort_runs, table_groups

DPI = 200  # PNG resolution; SVG and PDF are vector (for LaTeX)
_PROBLEM_STATUSES = ("diverged", "failed")


@dataclass(frozen=True)
class FigureWithCaption:
    """A rendered-on-demand figure, the file name it is saved under, and what it shows."""

    filename: str
    figure: Figure
    caption: str


def use_log_scale(values, *, higher_is_better: bool) -> bool:
    """Log y-axis for a lower-is-better quantity (perplexity, loss) whose finite positive values span > 1 decade.

    Accuracy-like metrics (higher is better, bounded) stay linear: a log axis
    would stretch the uninteresting low end.
    """
    if higher_is_better:
        return False
    array = pd.to_numeric(pd.Series(values, dtype="float64"), errors="coerce").to_numpy()
    array = array[np.isfinite(array)]
    if array.size == 0 or (array <= 0).any():
        return False
    return float(array.max()) / float(array.min()) > 10.0


def figure_bytes(figure: Figure, fmt: str = "png") -> bytes:
    """The figure as PNG (at the report's resolution), SVG or PDF bytes."""
    FigureCanvasAgg(figure)  # attach an Agg canvas explicitly: no pyplot, no backend switch
    buffer = io.BytesIO()
    # Fixed metadata keeps SVG and PDF files byte-identical from one report to the next.
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}.get(fmt)
    figure.savefig(buffer, format=fmt, dpi=DPI, bbox_inches="tight", metadata=metadata)
    return buffer.getvalue()


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes at the report's resolution."""
    return figure_bytes(figure, "png")


def _colours(n: int) -> list:
    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        # tab20 comes in dark/light pairs; all dark shades first keeps neighbours distinct.
        order = list(range(0, 20, 2)) + list(range(1, 20, 2))
        return [colormaps["tab20"](i) for i in order[:n]]
    return [colormaps["turbo"](x) for x in np.linspace(0.05, 0.95, n)]


def _label(run: pd.Series) -> str:
    status = str(run.get("status", ""))
    return f"{run['run_id']} ({status})" if status in _PROBLEM_STATUSES else str(run["run_id"])


def _describe(runs: pd.DataFrame) -> str:
    """'gpt_small, lstm_lm on ptb_text_only (text_generation)'."""

    def values(column: str) -> str:
        found = sorted({str(v) for v in runs.get(column, []) if isinstance(v, str) and v})
        return ", ".join(found) or "unknown"

    return f"{values('model')} on {values('dataset')} ({values('task')})"


def _empty_axes_note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _finite(series: pd.Series) -> pd.Series:
    """Infinite values become NaN: matplotlib then leaves a gap instead of ruining the axis limits."""
    return pd.to_numeric(series, errors="coerce").replace([np.inf, -np.inf], np.nan)


def _configuration(runs: pd.DataFrame) -> pd.Series:
    """A label per run that its seeds share: optimizer, plus model/layers/grid when they vary."""
    parts = [runs["optimizer"].astype(str)]
    columns = ["model", "layers"] + [f"grid.{k}" for k in grid_keys(runs)]
    for column in columns:
        if column in runs and runs[column].astype(str).nunique() > 1:
            prefix = "layers " if column == "layers" else (column[5:] + "=" if column.startswith("grid.") else "")
            parts.append(prefix + runs[column].map(lambda v: "" if pd.isna(v) else f"{v:g}" if isinstance(v, float)
                                                   else str(v)))
    label = parts[0]
    for part in parts[1:]:
        label = label + ", " + part
    return label


def _plain_log_axis(axis) -> None:
    """A log axis whose ticks read 4, 10, 200 rather than 4x10^0."""
    axis.axes.set_yscale("log") if axis.axis_name == "y" else axis.axes.set_xscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axis.set_major_formatter(plain)

    def minor(value, _) -> str:
        # 2s and 5s between the decades help on a short axis and collide on a long one.
        low, high = sorted(axis.get_view_interval())
        if low <= 0 or high / low > 100:
            return ""
        return f"{value:g}" if f"{value:g}"[0] in "25" else ""

    axis.set_minor_formatter(FuncFormatter(minor))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and np.isfinite(value)


def _saturates(values: pd.Series, spec: MetricSpec) -> bool:
    """A higher-is-better percentage whose best values pass 90%: its error (100% - value) reads better on a log axis."""
    finite = values.dropna()
    return spec.unit == "%" and spec.higher_is_better and not finite.empty and float(finite.max()) > 0.9


def curves_figure(runs: pd.DataFrame, histories: pd.DataFrame, *, quantity: str = "metric",
                  x: str = "epoch") -> FigureWithCaption:
    """Validation (solid) and training (thin, faded) curves in small multiples, one panel per optimizer family.

    quantity: "metric" (the task's primary metric) or "loss"; x: "epoch" or "wall_s". Each
    optimizer keeps its colour (report/style.py); seeds of one configuration are drawn as
    their mean with a band from the lowest to the highest seed. A percentage that saturates
    (best above 90%) is drawn as its error, 100% - value, on a log axis.
    """
    runs = sort_runs(runs)
    metric, higher = primary_metric(runs)
    name = metric if quantity == "metric" else "loss"
    spec = metric_spec(runs, name) if name != "loss" else metric_spec(runs, "loss")
    if name == "loss":
        higher = False
    columns = [f"val_{name}", f"train_{name}"]
    present = histories[histories["run_id"].isin(runs["run_id"])] if "run_id" in histories else histories
    all_values = pd.concat([_finite(present[c]) for c in columns if c in present] or [pd.Series(dtype=float)])
    as_error = _saturates(_finite(present[columns[0]]) if columns[0] in present else pd.Series(dtype=float), spec)
    log = as_error or use_log_scale(all_values, higher_is_better=higher)

    runs = runs.assign(_config=_configuration(runs), _family=runs["optimizer"].map(family_of))
    families = [f for f in (*FAMILIES, OTHER_FAMILY) if f in set(runs["_family"])]
    cols = min(3, max(1, len(families)))
    rows = -(-len(families) // cols) if families else 1
    figure = Figure(figsize=(4.6 * cols + 1.2, 3.4 * rows + 0.6))
    axes = [figure.add_subplot(rows, cols, i + 1) for i in range(max(1, len(families)))]
    without_history, drawn, styles = [], 0, ("-", (0, (5, 2)), (0, (1, 1)), (0, (3, 1, 1, 1)))
    for ax, family in zip(axes, families or [None], strict=False):
        members = runs[runs["_family"] == family] if family else runs.iloc[0:0]
        seen_per_optimizer: dict[str, int] = {}
        for config, group in members.groupby("_config", sort=False):
            optimizer = str(group["optimizer"].iloc[0])
            style = styles[seen_per_optimizer.get(optimizer, 0) % len(styles)]
            seen_per_optimizer[optimizer] = seen_per_optimizer.get(optimizer, 0) + 1
            colour = optimizer_colour(optimizer)
            frames = [present[present["run_id"] == r].sort_values("epoch") for r in group["run_id"]]
            for run_id, frame in zip(group["run_id"], frames, strict=True):
                if frame.empty:
                    without_history.append(str(run_id))
            frames = [f for f in frames if not f.empty]
            if not frames:
                continue
            problem = sorted({str(s) for s in group.get("status", []) if s in _PROBLEM_STATUSES})
            label = str(config) + (f" ({', '.join(problem)})" if problem else "")
            for column, width, alpha in ((columns[0], 1.8, 1.0), (columns[1], 0.9, 0.35)):
                if not any(column in f for f in frames):
                    continue
                stacked = pd.concat([pd.DataFrame({"x": _finite(f[x]).to_numpy(), "y": _finite(f[column]).to_numpy()},
                                                  index=f["epoch"].to_numpy()) for f in frames if column in f])
                by_epoch = stacked.groupby(level=0)
                xs, ys = by_epoch["x"].mean(), by_epoch["y"].mean()
                low, high = by_epoch["y"].min(), by_epoch["y"].max()
                if as_error:
                    ys, low, high = 1 - ys, 1 - high, 1 - low
                ys, low, high = ys * spec.scale, low * spec.scale, high * spec.scale
                if log:
                    ys, low, high = ys.where(ys > 0), low.where(low > 0), high.where(high > 0)
                marker = "o" if len(ys) <= 30 else None
                ax.plot(xs, ys, linestyle=style, color=colour, linewidth=width, alpha=alpha, marker=marker,
                        markersize=3.0, label=label if column == columns[0] else None)
                if len(frames) > 1 and column == columns[0]:
                    ax.fill_between(xs, low, high, color=colour, alpha=0.18, linewidth=0)
            drawn += 1
        ax.set_title(family or "no runs", fontsize="medium")
        if log:
            _plain_log_axis(ax.yaxis)
        if x == "epoch":
            ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(True, which="major", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small", frameon=False, loc="best")
    shown = ("validation error" if as_error else spec.header()) + (" (%)" if as_error else "")
    ylabel = shown + (" (log scale)" if log else "")
    xlabel = "epoch" if x == "epoch" else "training time (s, evaluation excluded)"
    for ax in axes:
        ax.set_xlabel(xlabel, fontsize="small")
        ax.set_ylabel(ylabel, fontsize="small")
    if not drawn:
        _empty_axes_note(axes[0], "no epoch was recorded by any run")
    title_x = "epochs" if x == "epoch" else "training time"
    figure.suptitle(f"{shown[:1].upper() + shown[1:]} over {title_x}", fontsize="large")
    figure.tight_layout()

    what = (f"validation error (100% - {spec.label}) on a log axis, because the best runs pass 90% and the "
            "ranking is decided near the top" if as_error else spec.header())
    caption = (
        f"{what[:1].upper() + what[1:]} over "
        f"{'epochs' if x == 'epoch' else 'cumulative training time in seconds (evaluation excluded)'} for "
        f"{drawn} configurations of {_describe(runs)}, one panel per optimizer family "
        f"({', '.join(f for f in families)}). Validation solid (thick), training faded (thin, a running average "
        "over the epoch); each optimizer has the same colour in every figure; configurations that share an "
        "optimizer differ by line style. Several seeds: their mean, with a band from the lowest to the highest "
        f"seed. {'Lower' if not higher or as_error else 'Higher'} is better"
        + ("; the y-axis is logarithmic." if log else ".")
        + " Diverged runs are drawn up to their last finite value."
    )
    if without_history:
        caption += f" Not shown (no epoch recorded): {', '.join(without_history)}."
    filename = {("metric", "epoch"): "curves_epochs.png", ("metric", "wall_s"): "curves_wallclock.png",
                ("loss", "epoch"): "loss_epochs.png", ("loss", "wall_s"): "loss_wallclock.png"}[(quantity, x)]
    return FigureWithCaption(filename, figure, caption)


def ranking_figure(runs: pd.DataFrame) -> FigureWithCaption:
    """One row per configuration: the primary metric's mean with its 95% interval, best at the top.

    One panel per model. The interval is the t-interval over seeds, or for one seed of a
    proportion the Wilson interval of the split; none otherwise (a dot alone).
    """
    from nbhelpers.report.tables import interval_of, results_table

    table = results_table(runs)
    numbers = table.numbers
    metric = table.primary_metric
    spec = metric_spec(runs, metric)
    split = "test" if f"test_{metric}" in numbers and np.isfinite(numbers[f"test_{metric}"]).any() else "val"
    column = f"{split}_{metric}"
    models = list(dict.fromkeys(numbers["model"]))
    heights = [max(1, int(np.isfinite(numbers.loc[numbers["model"] == m, column]).sum())) for m in models]
    figure = Figure(figsize=(8, 0.3 * sum(heights) + 1.0 * len(models) + 0.3))
    grid = figure.add_gridspec(len(models), 1, height_ratios=heights)
    keys = grid_keys(runs)

    def label(row) -> str:
        text = str(row["optimizer"])
        if "layers" in row and _is_number(row["layers"]) and numbers["layers"].nunique() > 1:
            text += f", layers {row['layers']:g}"
        return text + "".join(f", {k}={row[k]}" for k in keys)

    for position, model in enumerate(models):
        ax = figure.add_subplot(grid[position])
        group = numbers[(numbers["model"] == model) & np.isfinite(numbers[column])]
        group = group.sort_values(column, ascending=not spec.higher_is_better)
        for row_number, (index, row) in enumerate(group.iterrows()):
            interval = interval_of(row.to_dict(), column, spec)
            colour = optimizer_colour(row["optimizer"])
            if interval.method != "none":
                ax.errorbar(interval.mean * spec.scale, row_number,
                            xerr=[[(interval.mean - interval.low) * spec.scale], [(interval.high - interval.mean) * spec.scale]],
                            fmt="o", color=colour, capsize=3)
            else:
                ax.plot(interval.mean * spec.scale, row_number, "o", color=colour)
            weight = "bold" if row["best_in_model"] else "normal"
            style = "italic" if row["tied_with_best"] else "normal"
            ax.text(1.01, row_number, "best" if row["best_in_model"] else ("tied" if row["tied_with_best"] else ""),
                    transform=ax.get_yaxis_transform(), va="center", fontsize="x-small", fontweight=weight,
                    fontstyle=style)
        ax.set_yticks(range(len(group)), [label(r) for _, r in group.iterrows()], fontsize="small")
        ax.invert_yaxis()
        ax.set_title(model, fontsize="medium")
        if use_log_scale(group[column] * spec.scale, higher_is_better=spec.higher_is_better):
            _plain_log_axis(ax.xaxis)
        ax.grid(True, axis="x", alpha=0.3)
        ax.set_xlabel(f"{split} {spec.header()}", fontsize="small")
    figure.tight_layout()
    caption = (f"Ranking of the configurations of {_describe(runs)} by {split} {spec.header()} "
               f"({'higher' if spec.higher_is_better else 'lower'} is better), best at the top, one panel per model. "
               "Bars: 95% t-interval over seeds; with one seed, a proportion shows its 95% Wilson interval from "
               "the split's size; a dot alone has no interval. 'tied' = cannot be told apart from the best at 95% "
               "(see the table's caption).")
    return FigureWithCaption("ranking.png", figure, caption)


def memory_figure(runs: pd.DataFrame) -> FigureWithCaption:
    """What each run holds and what training cost: exact bytes of parameters, gradients and
    optimizer state (stacked), and the measured peak above the pre-training baseline."""
    runs = sort_runs(runs)
    n = len(runs)
    figure = Figure(figsize=(10, max(2.5, 0.38 * n + 1.6)))
    exact, measured = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    positions = np.arange(n)
    mib = 2**20
    left = np.zeros(n)
    parts = (("params_bytes", "parameters", "0.55"), ("grads_bytes", "gradients", "0.8"),
             ("optimizer_state_bytes", "optimizer state", None))
    for column, label, colour in parts:
        values = _finite(runs.get(column, pd.Series(np.nan, index=runs.index))).fillna(0).to_numpy() / mib
        colours = [optimizer_colour(o) for o in runs["optimizer"]] if colour is None else colour
        exact.barh(positions, values, left=left, color=colours, label=label, edgecolor="white", linewidth=0.5)
        left = left + values
    above = _finite(runs.get("mem_peak_above_baseline_mb", pd.Series(np.nan, index=runs.index)))
    measured.barh(positions, above.fillna(0), color=[optimizer_colour(o) for o in runs["optimizer"]])
    for i in positions:
        if pd.isna(above.iloc[i]):
            measured.text(0, i, " n/a", va="center", fontsize="small", color="0.4")
    labels = [_label(r) for _, r in runs.iterrows()]
    exact.set_yticks(positions, labels, fontsize="small")
    measured.set_yticks(positions, [""] * n)
    for ax in (exact, measured):
        ax.invert_yaxis()  # first run of the table at the top
        ax.grid(True, axis="x", alpha=0.3)
    exact.set_xlabel("MiB (exact)")
    exact.set_title("Parameters, gradients, optimizer state", fontsize="medium")
    exact.legend(loc="lower right", fontsize="x-small")
    measured.set_xlabel("MB above the pre-training baseline")
    measured.set_title("Measured peak during training", fontsize="medium")
    figure.tight_layout()
    devices = sorted({str(d) for d in runs.get("device", []) if isinstance(d, str) and d}) or ["unknown"]
    caption = (
        f"Memory of each of the {n} runs of {_describe(runs)} (device {', '.join(devices)}). Left: exact sizes in "
        "MiB (1024² bytes) of the parameters (dark grey), their gradients (light grey) and the optimizer's state "
        "(in the optimizer's colour), which is what differs between optimizers: none for plain SGD, one copy of "
        "the parameters for momentum methods and Lion, two for Adam-like methods, a row and a column per "
        "matrix for Adafactor. Right: the measured peak minus what the process held before training began "
        "(CUDA: memory allocated to tensors; CPU: resident set size, which also counts the allocator's caches). "
        "n/a = not recorded (runs written before these figures existed)."
    )
    return FigureWithCaption("memory.png", figure, caption)


def _figures_of(runs: pd.DataFrame, histories: pd.DataFrame) -> list[FigureWithCaption]:
    figures = [
        curves_figure(runs, histories, quantity="metric", x="epoch"),
        curves_figure(runs, histories, quantity="metric", x="wall_s"),
    ]
    metric, _ = primary_metric(runs)
    if metric != "loss":
        figures.append(curves_figure(runs, histories, quantity="loss", x="epoch"))
    figures.insert(0, ranking_figure(runs))
    figures.append(memory_figure(runs))
    return figures


def _with_task_column(runs: pd.DataFrame) -> pd.DataFrame:
    return runs if "task" in runs else runs.assign(task="")


def make_figures(runs: pd.DataFrame, histories: pd.DataFrame) -> list[FigureWithCaption]:
    """The report's figures, in the order they appear: metric over epochs and over time, loss, memory.

    A sweep over several data sets (or tasks) gets these figures once per (task, dataset), their
    file names suffixed with the dataset (curves_epochs-mnist.png), since their metrics do not share an axis.
    """
    groups = table_groups(runs)
    if len(groups) <= 1:
        return _figures_of(runs, histories)
    figures = []
    for group in groups:
        first = group.iloc[0]
        several_tasks = _with_task_column(runs)["task"].nunique() > 1
        suffix = f"{first['task']}-{first['dataset']}" if several_tasks else str(first["dataset"])
        for item in _figures_of(group, histories):
            stem, dot, ext = item.filename.rpartition(".")
            figures.append(FigureWithCaption(f"{stem}-{suffix}.{ext}", item.figure, item.caption))
    return figures


def run_curves_figure(history: list[dict] | pd.DataFrame, metric: str, *, spec: MetricSpec,
                      title: str, loss_label: str = "loss", reference: float | None = None,
                      reference_label: str = "best possible") -> Figure:
    """One run's curves for a notebook: metric over epochs and over training time, and loss.

    `spec` is the task's MetricSpec for `metric` (label, unit, scale, direction), e.g.
    `exp.task_spec.primary`. Training split solid (a running average over the epoch),
    validation dashed; the metric's y-axis turns logarithmic when it spans more than a decade
    and lower is better. Epochs validated on the loss alone (eval_every > 1) have no metric
    point. Made with pyplot, unlike the report's figures, so that `plt.show()` displays it.
    """
    import matplotlib.pyplot as plt

    history = pd.DataFrame(history)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    train, val = f"train_{metric}", f"val_{metric}"
    if train in history or val in history:
        shown = {c: _finite(history[c]) * spec.scale for c in (train, val) if c in history}
        log_y = use_log_scale(pd.concat(list(shown.values())), higher_is_better=spec.higher_is_better)
        for ax, x, xlabel in ((axes[0], "epoch", "epoch"), (axes[1], "wall_s", "training time (s, evaluation excluded)")):
            for column, style, label in ((train, "-", "train"), (val, "--", "validation")):
                if column in shown:
                    ok = shown[column].notna()
                    ax.plot(history[x][ok], shown[column][ok], style, marker="o", label=label)
            if reference is not None:
                shown_reference = reference * spec.scale
                ax.axhline(shown_reference, color="grey", linestyle=":",
                           label=f"{reference_label} ({shown_reference:.2f})")
            if log_y:
                ax.set_yscale("log")
            ax.set(xlabel=xlabel, ylabel=spec.header())
    for column, style, label in (("train_loss", "-", "train"), ("val_loss", "--", "validation")):
        if column in history:
            axes[2].plot(history["epoch"], history[column], style, marker="o", label=label)
    axes[0].set_title(f"{spec.label} over epochs")
    axes[1].set_title(f"{spec.label} over training time")
    axes[2].set(xlabel="epoch", ylabel=loss_label, title="loss")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig
