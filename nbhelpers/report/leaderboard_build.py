"""build_leaderboard(): several sweeps in, one leaderboard folder out.

`python -m nbhelpers leaderboard SWEEP_DIR... [--output-dir DIR]` calls it. The folder gets
index.html (self-contained: inline CSS, relative links, no scripts), leaderboard.csv and
leaderboard.md, every figure as PNG (200 dpi) and SVG, and notebooks/leaderboard.py executed
with papermill into leaderboard.ipynb and exported to leaderboard.html. The sweeps are only
read. Every file is written atomically (build.write_atomic).
"""

from __future__ import annotations

import html
from pathlib import Path


import nbhelpers
from nbhelpers.report.build import execute_notebook, write_atomic
from nbhelpers.report.html import BASE_CSS
from nbhelpers.report.leaderboard import (TAU_MAX, Leaderboard, leaderboard, leaderboard_figures,
                                          leaderboard_tables, load_sweeps, markdown_report, opening_paragraph, to_csv,
                                          to_html, workloads_table)
from nbhelpers.report.plots import figure_bytes

DEFAULT_OUTPUT_DIR = Path("executed") / "leaderboard"
LEADERBOARD_NOTEBOOK = Path(nbhelpers.__file__).resolve().parent.parent / "notebooks" / "leaderboard.py"


def write_leaderboard_files(board: Leaderboard, output_dir: str | Path) -> list:
    """leaderboard.csv, leaderboard.md and each figure as .png and .svg in `output_dir`; returns the figures."""
    output_dir = Path(output_dir)
    write_atomic(output_dir / "leaderboard.csv", to_csv(board))
    write_atomic(output_dir / "leaderboard.md", markdown_report(board))
    figures = leaderboard_figures(board)
    for item in figures:
        for fmt in ("png", "svg"):
            write_atomic(output_dir / f"{item.filename}.{fmt}", figure_bytes(item.figure, fmt))
    return figures




# Workload headers are long ("digits/mnist_tiny: test accuracy (%) ↑"): let them wrap so that
# the tables fit the page width without scrolling sideways.
_BOARD_CSS = """
.opening { max-width: 1000px; }
table.results th { white-space: normal; overflow-wrap: break-word; max-width: 13rem; vertical-align: bottom; }
"""


def index_page(board: Leaderboard, *, figures: list, notebook_href: str | None) -> str:
    """The leaderboard's landing page; every text that comes from run files is escaped."""
    esc = html.escape
    n_workloads, n_sweeps = len(board.workloads), len(board.sweeps)
    title = f"Optimizer leaderboard: {n_workloads} workload{'s' if n_workloads != 1 else ''}"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{esc(title)}</title><style>{BASE_CSS}{_BOARD_CSS}</style></head><body>",
             f"<h1>{esc(title)}</h1>",
             f'<p class="subtitle">{n_sweeps} sweep{"s" if n_sweeps != 1 else ""}: {esc(", ".join(board.sweeps))} · '
             f"{int(board.cells['n_runs'].sum())} runs · {len(board.optimizers)} optimizers</p>",
             f'<p class="verdict opening" id="opening">{esc(opening_paragraph(board))}</p>']
    links = ([f'<a href="{esc(notebook_href)}">executed leaderboard notebook</a>'] if notebook_href else [])
    links += [f'<a href="{name}">{name}</a>' for name in ("leaderboard.csv", "leaderboard.md")]
    parts.append("<p>" + " · ".join(links) + "</p>")
    for number, table in enumerate([*leaderboard_tables(board), workloads_table(board)], start=1):
        parts += [f"<h2>{esc(table.title)}</h2>",
                  f'<div class="table-wrap">{to_html(table, table_id=f"board-{number}")}</div>']
    parts.append("<h2>Figures</h2>")
    for number, item in enumerate(figures, start=1):
        png, svg = f"{item.filename}.png", f"{item.filename}.svg"
        parts.append(f'<figure><img src="{esc(png)}" alt="Figure {number}: {esc(item.caption)}">'
                     f"<figcaption><strong>Figure {number}.</strong> {esc(item.caption)} "
                     f'<a href="{esc(svg)}">SVG</a></figcaption></figure>')
    parts += [
        "<h2>How the leaderboard is computed</h2><ul>",
        "<li>A <em>workload</em> is one (task, dataset, model), plus any grid value its sweep varied.</li>",
        "<li>Ranks use each workload's final primary metric (test, else validation) in the direction the task "
        "declares; ties share the average rank (scipy.stats.rankdata); runs without a finite value rank last.</li>",
        "<li>Intervals: 95% Student-t over seeds for a metric; 95% percentile bootstrap over seeds for a mean "
        "rank. One seed gives no interval.</li>",
        f"<li>Performance profile (Dahl et al. 2023, AlgoPerf): the share of workloads on which an optimizer's "
        f"time to target is within τ times the fastest one's, τ from 1 to {TAU_MAX:g}; never reaching the target "
        "counts as an infinite time; with seeds, each workload's median time is used.</li>",
        "</ul></body></html>",
    ]
    return "\n".join(parts) + "\n"


def build_leaderboard(sweep_dirs, output_dir: str | Path = DEFAULT_OUTPUT_DIR, *,
                      execute_notebook_too: bool = True) -> Path:
    """Write the leaderboard of `sweep_dirs` into `output_dir` and return that folder.

    Raises UserInputError (before writing anything) for a folder that does not exist or
    holds no runs.
    """
    runs = load_sweeps(sweep_dirs)
    board = leaderboard(runs)
    output_dir = Path(output_dir).expanduser().resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    figures = write_leaderboard_files(board, output_dir)

    error = None
    if execute_notebook_too:
        sweeps = [str(Path(p).expanduser().resolve()) for p in sweep_dirs]
        try:
            execute_notebook(LEADERBOARD_NOTEBOOK, output_dir / "leaderboard.ipynb",
                             parameters={"sweep_dirs": sweeps, "output_dir": ""}, title="Optimizer leaderboard",
                             hide_parameters=True)
        except Exception as exc:  # still write index.html, then report the failure
            error = exc
    notebook = "leaderboard.html" if (output_dir / "leaderboard.html").is_file() and execute_notebook_too else None
    write_atomic(output_dir / "index.html", index_page(board, figures=figures, notebook_href=notebook))
    if error is not None:
        raise error
    return output_dir
