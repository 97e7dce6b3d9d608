"""build_report(): one sweep's run directories in, `<sweep_dir>/report/` out.

Everything is written under report/ and nothing else: runs/ and notebooks/
belong to the sweep and are only read. Every file is written to a temporary
name in the same folder and moved into place with os.replace, so a report
interrupted at any instant leaves each file either old or new.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from pathlib import Path

import nbformat
import pandas as pd

import nbhelpers
from nbhelpers.training.rundir import write_bytes
from nbhelpers.report.html import FigureEntry, RunEntry, index_page, notebook_to_html
from nbhelpers.report.load import load_histories, load_runs
from nbhelpers.report.lr_grid import load_lr_protocol, sensitivity_figure
from nbhelpers.report.plots import figure_bytes, make_figures
from nbhelpers.report.tables import (combined_csv, combined_html, combined_latex, combined_markdown, results_tables,
                                     sort_runs, verdict)

REPORT_NOTEBOOK = Path(nbhelpers.__file__).resolve().parent.parent / "notebooks" / "report.py"


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write `data` to `path` atomically, with the user's umask (training/rundir.py's mechanism)."""
    path = Path(path)
    write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _export_run_notebooks(sweep_dir: Path, report_dir: Path, run_ids: list[str]) -> dict[str, str]:
    """run_id -> relative href of its notebook HTML, for runs whose executed notebook exists."""
    hrefs = {}
    for run_id in run_ids:
        source = sweep_dir / "notebooks" / f"{run_id}.ipynb"
        if not source.is_file():
            continue  # runs made with `python -m nbhelpers run` have no notebook
        try:
            page = notebook_to_html(source, title=run_id)
        except Exception as exc:  # one unreadable notebook must not sink the report
            warnings.warn(f"cannot export {source} to HTML: {exc}", stacklevel=2)
            continue
        write_atomic(report_dir / "notebooks" / f"{run_id}.html", page)
        hrefs[run_id] = f"notebooks/{run_id}.html"
    return hrefs


@contextlib.contextmanager
def _package_importable_by_kernel():
    """Let the kernel import this same nbhelpers, installed or not, via PYTHONPATH for its lifetime."""
    root = str(Path(nbhelpers.__file__).resolve().parent.parent)
    old = os.environ.get("PYTHONPATH")
    paths = old.split(os.pathsep) if old else []
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def execute_notebook(source: Path, output: Path, *, parameters: dict, title: str,
                     hide_parameters: bool = False) -> bool:
    """Execute a percent-format notebook with papermill into `output` (.ipynb) and export it beside it (.html).

    Returns False (with a warning) when the source is not there, as in an installation
    without the repository. papermill saves after every cell, so it runs into a temporary
    name and `output` is always whole. With `hide_parameters`, the HTML leaves out the cell
    papermill injects (it holds this machine's paths). A failing notebook is still saved
    and exported, so its error is readable, before the error is raised again.
    """
    if not source.is_file():
        warnings.warn(f"notebook {source} not found; skipping {output.name} and its HTML", stacklevel=3)
        return False
    import papermill  # imported here: only this step needs the notebook tool chain

    from nbhelpers.sweep.notebooks import kernel_logged_to, read_notebook
    fd, tmp = tempfile.mkstemp(prefix=f".{output.stem}.", suffix=".ipynb", dir=output.parent)
    os.close(fd)
    error = None
    try:
        # The kernel's own stderr (ipykernel's TCP warning, ...) goes to a log beside the output.
        with _package_importable_by_kernel(), kernel_logged_to(output.with_suffix(".kernel.log")) as quiet:
            papermill.execute_notebook(read_notebook(source), tmp, parameters=parameters,
                                       kernel_name="python3", progress_bar=False, **quiet)
    except papermill.PapermillExecutionError as exc:
        error = exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.replace(tmp, output)
    executed = nbformat.read(output, as_version=4)
    if hide_parameters:
        for cell in executed.cells:
            tags = cell.metadata.get("tags", [])
            if "injected-parameters" in tags:
                cell.metadata["tags"] = [*tags, "remove-cell"]
    write_atomic(output.with_suffix(".html"), notebook_to_html(executed, title=title))
    if error is not None:
        raise error
    return True


def _execute_report_notebook(sweep_dir: Path, report_dir: Path) -> bool:
    """Execute notebooks/report.py into report/report.ipynb and export it to report.html."""
    return execute_notebook(REPORT_NOTEBOOK, report_dir / "report.ipynb", parameters={"sweep_dir": str(sweep_dir)},
                            title=f"Report: {sweep_dir.name}")


def _values(runs: pd.DataFrame, column: str) -> str:
    return ", ".join(sorted({str(v) for v in runs.get(column, []) if isinstance(v, str) and v})) or "unknown"


def _title(sweep_dir: Path, runs: pd.DataFrame) -> str:
    return f"{sweep_dir.name}: {_values(runs, 'task')} on {_values(runs, 'dataset')}"


def _subtitle(runs: pd.DataFrame) -> str:
    return (f"Optimizer comparison · models: {_values(runs, 'model')} · "
            f"optimizers: {_values(runs, 'optimizer')} · {len(runs)} runs")


def build_report(sweep_dir: Path, *, execute_notebook: bool = True) -> Path:
    """Write `<sweep_dir>/report/` (index.html, results.csv/.md/.tex, PNG figures, notebook HTML) and return it.

    With `execute_notebook`, notebooks/report.py is also executed with papermill
    into report/report.ipynb and exported to report/report.html.
    Raises UserInputError when the sweep has no runs.
    """
    sweep_dir = Path(sweep_dir).expanduser().resolve()
    all_runs = load_runs(sweep_dir)
    histories = load_histories(sweep_dir)
    # With --lr-grid only the runs at each optimizer's selected LR enter tables, figures and
    # the verdict; the others show in the LR-sensitivity figure alone (report/lr_grid.py).
    protocol = load_lr_protocol(sweep_dir)
    runs = protocol.selected_runs(all_runs) if protocol else all_runs
    if protocol:
        histories = histories[histories["run_id"].isin(set(runs["run_id"]))].reset_index(drop=True)
    report_dir = sweep_dir / "report"
    report_dir.mkdir(exist_ok=True)

    tables = results_tables(runs)  # one per (task, dataset)
    write_atomic(report_dir / "results.csv", combined_csv(tables))
    write_atomic(report_dir / "results.md", combined_markdown(tables))
    write_atomic(report_dir / "results.tex", combined_latex(tables))

    figures = []
    made = make_figures(runs, histories)
    if protocol:  # after the ranking: first who won, then how much the LR mattered
        made.insert(1, sensitivity_figure(all_runs, protocol))
    for item in made:
        stem = item.filename.rsplit(".", 1)[0]
        for fmt in ("png", "svg", "pdf"):
            write_atomic(report_dir / f"{stem}.{fmt}", figure_bytes(item.figure, fmt))
        figures.append(FigureEntry(item.filename, item.caption, (f"{stem}.svg", f"{stem}.pdf")))

    ordered = sort_runs(all_runs)  # every run's notebook, the grid's too
    notebook_hrefs = _export_run_notebooks(sweep_dir, report_dir, list(ordered["run_id"]))

    error = None
    if execute_notebook:
        try:
            _execute_report_notebook(sweep_dir, report_dir)
        except Exception as exc:  # still write index.html, then report the failure
            error = exc

    entries = []
    for _, run in ordered.iterrows():
        details_path = Path(run["run_dir"]) / "details.txt"
        details = details_path.read_text(encoding="utf-8", errors="replace") if details_path.is_file() else None
        entries.append(RunEntry(str(run["run_id"]), str(run.get("status", "unknown")),
                                notebook_hrefs.get(run["run_id"]), details))
    page = index_page(
        title=_title(sweep_dir, runs),
        subtitle=_subtitle(all_runs),
        table_html=combined_html(tables),
        figures=figures,
        runs=entries,
        report_notebook_href="report.html" if (report_dir / "report.html").is_file() else None,
        downloads=["results.csv", "results.md", "results.tex"],
        skipped=runs.attrs.get("skipped"),
        opening=" ".join([verdict(t) for t in tables] + ([protocol.sentences(all_runs)] if protocol else [])),
    )
    write_atomic(report_dir / "index.html", page)
    if error is not None:
        raise error
    return report_dir
