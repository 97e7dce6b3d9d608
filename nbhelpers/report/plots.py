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
from matplotlib.lines import Line2D

from nbhelpers.metric_spec import MetricSpec
from nbhelpers.report.tables import metric_spec, primary_metric, sort_runs, table_groups

DPI = 120
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


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes at the report's resolution."""
    FigureCanvasAgg(figure)  # attach an Agg canvas explicitly: no pyplot, no backend switch
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


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


def curves_figure(runs: pd.DataFrame, histories: pd.DataFrame, *, quantity: str = "metric",
                  x: str = "epoch") -> FigureWithCaption:
    """Train (solid) and validation (dashed) curves, one colour per run.

    quantity: "metric" (the task's primary metric) or "loss"; x: "epoch" or "wall_s".
    """
    runs = sort_runs(runs)
    metric, higher = primary_metric(runs)
    name = metric if quantity == "metric" else "loss"
    if name == "loss":
        higher = False
    spec = metric_spec(runs, name)
    columns = [f"train_{name}", f"val_{name}"]
    present = histories[histories["run_id"].isin(runs["run_id"])] if "run_id" in histories else histories
    all_values = pd.concat([_finite(present[c]) for c in columns if c in present] or [pd.Series(dtype=float)])
    scale = spec.scale
    log = use_log_scale(all_values, higher_is_better=higher)

    figure = Figure(figsize=(9, 5.2))
    ax = figure.add_subplot()
    handles, plotted, without_history = [], [], []
    for run, colour in zip((r for _, r in runs.iterrows()), _colours(len(runs)), strict=True):
        history = present[present["run_id"] == run["run_id"]].sort_values("epoch")
        if history.empty or not any(c in history for c in columns):
            without_history.append(str(run["run_id"]))
            continue
        xs = _finite(history[x]) if x in history else pd.Series(np.nan, index=history.index)
        for column, style in zip(columns, ("-", "--"), strict=True):
            if column not in history:
                continue
            ys = _finite(history[column]) * scale
            if log:
                ys = ys.where(ys > 0)
            ok = xs.notna() & ys.notna()
            # Markers make a one-epoch run (a single point, no line) and short runs visible.
            marker = "o" if ok.sum() <= 30 else None
            ax.plot(xs, ys, linestyle=style, color=colour, marker=marker, markersize=3.5, linewidth=1.6)
        handles.append(Line2D([], [], color=colour, linewidth=2, label=_label(run)))
        plotted.append(run)

    ylabel = spec.header() + (" (log scale)" if log else "")
    xlabel = "epoch" if x == "epoch" else "training time (s, evaluation excluded)"
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    if x == "epoch":
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, which="major", alpha=0.3)
    title_x = "epochs" if x == "epoch" else "training time"
    ax.set_title(f"{spec.label[:1].upper() + spec.label[1:]} over {title_x}")
    if plotted:
        style_handles = [
            Line2D([], [], color="0.2", linestyle="-", label="train"),
            Line2D([], [], color="0.2", linestyle="--", label="validation"),
        ]
        ax.legend(handles=handles + style_handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  fontsize="small", frameon=False, ncol=1 if len(handles) <= 24 else 2)
    else:
        _empty_axes_note(ax, "no epoch was recorded by any run")

    caption = (
        f"Training (solid lines) and validation (dashed lines) {spec.header()} "
        f"over {'epochs' if x == 'epoch' else 'cumulative training time in seconds (evaluation excluded)'} "
        f"for {len(plotted)} runs of {_describe(runs)}; one colour per run, named by its run id "
        f"(model-optimizer-grid values-seed). {'Lower' if not higher else 'Higher'} is better"
        + ("; the y-axis is logarithmic because the values span more than a factor of ten." if log else ".")
        + " Diverged runs are drawn up to their last finite value."
    )
    if without_history:
        caption += f" Not shown (no epoch recorded): {', '.join(without_history)}."
    filename = {("metric", "epoch"): "curves_epochs.png", ("metric", "wall_s"): "curves_wallclock.png",
                ("loss", "epoch"): "loss_epochs.png", ("loss", "wall_s"): "loss_wallclock.png"}[(quantity, x)]
    return FigureWithCaption(filename, figure, caption)


def memory_figure(runs: pd.DataFrame) -> FigureWithCaption:
    """Horizontal bars of peak and steady-state memory (MB) per run."""
    runs = sort_runs(runs)
    n = len(runs)
    figure = Figure(figsize=(9, max(2.5, 0.38 * n + 1.5)))
    ax = figure.add_subplot()
    positions = np.arange(n)
    height = 0.38
    peak = _finite(runs.get("mem_peak_mb", pd.Series(np.nan, index=runs.index)))
    steady = _finite(runs.get("mem_steady_mb", pd.Series(np.nan, index=runs.index)))
    ax.barh(positions - height / 2, peak.fillna(0), height, label="peak", color="tab:red")
    ax.barh(positions + height / 2, steady.fillna(0), height, label="steady", color="tab:blue")
    for i in positions:
        if pd.isna(peak.iloc[i]) and pd.isna(steady.iloc[i]):
            ax.text(0, i, " n/a", va="center", fontsize="small", color="0.4")
    ax.set_yticks(positions, [_label(r) for _, r in runs.iterrows()], fontsize="small")
    ax.invert_yaxis()  # first run of the table at the top
    ax.set_xlabel("memory (MB)")
    ax.set_title("Peak and steady-state memory per run")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    devices = sorted({str(d) for d in runs.get("device", []) if isinstance(d, str) and d}) or ["unknown"]
    caption = (
        f"Peak (red) and mean steady-state (blue) memory in MB of each of the {n} runs of {_describe(runs)}, "
        f"on device {', '.join(devices)}. On CUDA these are bytes allocated to tensors (peak: maximum over "
        "the run; steady: mean over the steady part of each epoch); on CPU they are the resident set size of "
        "the process. n/a = not recorded."
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
