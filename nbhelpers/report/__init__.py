"""Reports of one sweep: run directories in; tables, figures and HTML out.

`report/` reads only run directories (docs/run_directory.md), never a live
Trainer. The usual entry point is `build_report(sweep_dir)`, which writes
`<sweep_dir>/report/`; the pieces below serve the report notebook and anyone
who wants the numbers in pandas.

    runs = load_runs(sweep_dir)            # one row per run
    histories = load_histories(sweep_dir)  # one row per run and epoch
    tables = results_tables(runs)          # one per (task, dataset): sorted, seeds aggregated, best in bold
    to_markdown(tables[0]); to_latex(tables[0]); to_html(tables[0]); to_csv(tables[0])
    metric_spec(runs, "accuracy")          # the metric facts the runs declared (label, unit, scale)
    for fig in make_figures(runs, histories): png_bytes(fig.figure), fig.caption
"""

import importlib

# Each public name and its module, imported on first use (PEP 562): a task notebook that
# needs only plots.run_curves_figure must not import nbconvert, nbformat and jsonschema
# (several seconds of every papermill run; benchmarks/papermill_overhead.py).
_MODULES = {
    "build": ("build_report", "write_atomic"),
    "html": ("index_page", "notebook_to_html"),
    "load": ("find_sweep_dir", "load_histories", "load_runs"),
    "plots": ("FigureWithCaption", "curves_figure", "figure_bytes", "make_figures", "memory_figure", "png_bytes",
              "ranking_figure", "use_log_scale"),
    "tables": ("ResultsTable", "format_metric", "human_bytes", "human_count", "human_duration", "metric_spec",
               "metric_specs", "primary_metric", "reported_metrics", "results_table", "results_tables",
               "sort_runs", "to_csv", "to_html", "to_latex", "to_markdown", "verdict"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_WHERE])


__all__ = [
    "FigureWithCaption",
    "ResultsTable",
    "build_report",
    "curves_figure",
    "find_sweep_dir",
    "format_metric",
    "human_bytes",
    "human_count",
    "human_duration",
    "index_page",
    "load_histories",
    "load_runs",
    "make_figures",
    "memory_figure",
    "metric_spec",
    "metric_specs",
    "notebook_to_html",
    "png_bytes",
    "figure_bytes",
    "ranking_figure",
    "verdict",
    "primary_metric",
    "reported_metrics",
    "results_table",
    "results_tables",
    "sort_runs",
    "to_csv",
    "to_html",
    "to_latex",
    "to_markdown",
    "use_log_scale",
    "write_atomic",
]
