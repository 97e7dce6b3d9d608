# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Optimizer leaderboard
#
# Several sweeps (tasks, datasets, models) read back from their run directories and put
# side by side: each optimizer's rank on each *workload*, its mean rank, its time to each
# workload's target, and the performance profiles of AlgoPerf. `python -m nbhelpers
# leaderboard SWEEP_DIR...` executes this notebook with papermill into its output folder;
# opened by hand, it reads the sweeps named below, or every sweep under `executed/` when
# `sweep_dirs` is left empty.

# %% tags=["parameters"]
sweep_dirs: list = []  # folders of sweeps (each holds runs/); empty means every sweep under executed/
output_dir: str = ""  # also save leaderboard.csv, .md and the figures in this folder; empty saves nothing

# %%
from pathlib import Path

from IPython.display import HTML, SVG, Markdown, display

from nbhelpers.report.leaderboard import (find_sweep_dirs, leaderboard, leaderboard_figures, leaderboard_tables,
                                          load_sweeps, opening_paragraph, to_html, workloads_table)
from nbhelpers.report.plots import figure_bytes

sweeps = [Path(p) for p in sweep_dirs] or find_sweep_dirs()
runs = load_sweeps(sweeps)
board = leaderboard(runs)
print(f"{len(runs)} runs from {len(sweeps)} sweeps ({', '.join(board.sweeps)}), "
      f"{len(board.workloads)} workloads, {len(board.optimizers)} optimizers")

# %% [markdown]
# ## In one paragraph

# %% tags=["remove-input"]
display(Markdown(opening_paragraph(board)))

# %% [markdown]
# ## What a workload is, and what is compared
#
# A **workload** is one task on one dataset with one model (plus any grid value its sweep
# varied, such as the number of layers). Metrics of different workloads do not share a scale
# (accuracy in percent, perplexity in nats per token), so they are never averaged: each
# workload ranks its optimizers, and the ranks are averaged.
#
# - **Rank**: 1 is the best final primary metric on the workload (the test value of the
#   checkpoint with the best validation value), in the direction the task declares
#   (accuracy: higher is better; perplexity: lower). Equal values share the average rank
#   (`scipy.stats.rankdata`); a run that diverged or failed ranks last.
# - **Intervals**: with several seeds, a metric is shown as mean [95% Student-t interval]
#   and a mean rank as [95% percentile bootstrap interval], resampling each workload's seeds.
#   One seed gives no interval: the ranks may then be decided by noise.
# - **Time to target**: training seconds (evaluation excluded) until the validation
#   primary metric first reached the workload's target, which each column names.

# %% tags=["remove-input"]
for number, table in enumerate([*leaderboard_tables(board), workloads_table(board)], start=1):
    display(Markdown(f"### {table.title}"))
    display(HTML(to_html(table, table_id=f"board-{number}")))

# %% [markdown]
# ## Performance profiles
#
# For optimizer $s$ on workload $w$ let $t_{s,w}$ be its time to the target (infinite when it
# never reached it or did not run) and $r_{s,w} = t_{s,w} / \min_{s'} t_{s',w}$ its ratio to
# the fastest optimizer. The profile
#
# $$\rho_s(\tau) = \frac{1}{|W|}\,\bigl|\{w : r_{s,w} \le \tau\}\bigr|$$
#
# is the fraction of workloads on which $s$ was within a factor $\tau$ of the fastest
# (Dahl et al. 2023, *Benchmarking Neural Network Training Algorithms*, the AlgoPerf
# benchmark). At $\tau = 1$ it is the share of workloads on which $s$ was fastest; as $\tau$
# grows it counts slower successes too; a workload whose target $s$ never reached never
# counts. The profile score is the area under $\rho_s$ from 1 to 4 divided by 3 (AlgoPerf's
# benchmark score). With seeds, each workload's median time over seeds is used and a band
# shows the profiles of the single seeds. Wall-clock times are only comparable between runs
# on the same hardware and load.

# %% tags=["remove-input"]
for number, item in enumerate(leaderboard_figures(board), start=1):
    display(SVG(data=figure_bytes(item.figure, "svg")))
    display(Markdown(f"**Figure {number}.** {item.caption}"))

# %%
if output_dir:
    from nbhelpers.report.leaderboard_build import write_leaderboard_files
    write_leaderboard_files(board, output_dir)
    print(f"saved leaderboard.csv, leaderboard.md and the figures in {Path(output_dir).name}/")
