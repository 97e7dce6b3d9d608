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
# # Sweep report
#
# One sweep, read back from its run directories: the results table, the learning
# curves and the memory use of every run. `python -m nbhelpers report <sweep>`
# executes this notebook with papermill into `<sweep>/report/report.ipynb`;
# opened by hand, it reads the sweep named below, or the newest one under
# `executed/` when `sweep_dir` is left empty.

# %% tags=["parameters"]
sweep_dir: str = ""  # folder of one sweep (holds runs/)

# %%
from IPython.display import HTML, Image, Markdown, display

from nbhelpers.report import (
    find_sweep_dir,
    load_histories,
    load_runs,
    make_figures,
    png_bytes,
    results_tables,
    to_html,
    verdict,
)
from nbhelpers.report.lr_grid import load_lr_protocol, sensitivity_figure

sweep = find_sweep_dir(sweep_dir)
all_runs = load_runs(sweep)
histories = load_histories(sweep)
print(f"{sweep}: {len(all_runs)} runs, {len(histories)} epochs recorded")
# A sweep made with --lr-grid: tables, figures and the verdict use only the runs at each
# optimizer's selected LR; the other grid runs show in the LR-sensitivity figure alone.
protocol = load_lr_protocol(sweep)
runs = protocol.selected_runs(all_runs) if protocol else all_runs
if protocol:
    histories = histories[histories["run_id"].isin(set(runs["run_id"]))]

# %% [markdown]
# ## Results

# %% tags=["remove-input"]
# One table per data set: metrics of different data sets are not comparable.
tables = results_tables(runs)
display(Markdown("**In words.** " + " ".join(verdict(table) for table in tables)))
for number, table in enumerate(tables, start=1):
    display(HTML(to_html(table, table_id=f"results-{number}")))

# %% [markdown]
# ## The learning-rate protocol
#
# With `--lr-grid` every optimizer first trains at each LR of the grid on the first
# seed; the LR with the best *validation* value of the primary metric is selected (the
# test split is never looked at), and only that LR runs the other seeds. The figure shows
# how much each optimizer's result depends on its LR. Without `--lr-grid` each optimizer
# ran at its one default LR and this section is empty.

# %% tags=["remove-input"]
if protocol:
    display(Markdown(protocol.sentences(all_runs)))
    item = sensitivity_figure(all_runs, protocol)
    display(Image(data=png_bytes(item.figure), format="png"))
    display(Markdown(f"**LR sensitivity.** {item.caption}"))
else:
    display(Markdown("This sweep ran without an LR grid: each optimizer trained at its default LR."))

# %% [markdown]
# ## How to read the table
#
# - **One table per data set, one row per configuration** (model, layers, optimizer
#   and any other grid value). Rows are sorted by architecture, then layers, then
#   optimizer; `#` is the experiment's number in the params file, so "experiment 3"
#   means the same run in the params file, the table and the figures.
# - **Every metric the task declares** gets columns, shown as the task declares it
#   (accuracy in percent, BLEU on its 0-100 scale, perplexity with 4 significant digits).
# - **train / val / test** are read at the *best epoch*, the epoch with the best
#   validation value of the primary metric; test numbers come from the checkpoint
#   saved at that epoch. A large gap between train and val means overfitting.
# - **Bold** marks the best configuration of each architecture on each data set (on test when a
#   test split was evaluated, else on validation), respecting whether higher or
#   lower is better.
# - With several seeds a cell reads *mean ± the half-width of its 95% t-interval*
#   and `n` counts the seeds; with one seed an accuracy shows its 95% Wilson
#   interval from the number of test examples (how wide one example is).
# - *Italic* cells are **tied** with the bold one: a paired t-test over seeds (or,
#   with one seed, overlapping Wilson intervals) cannot tell them apart at 95%.
# - **ep. to / time to** the target say how fast a run first reached the task's
#   target on validation; *never* means it did not.
# - **status** flags runs to treat with care: *diverged* (the loss became NaN or
#   infinite, numbers are from before that) and *failed* (an error; no numbers).
#
# The caption under the table defines every abbreviation.

# %% [markdown]
# ## Curves and memory
#
# Solid lines are training values, dashed lines validation values; each run has
# one colour. Compare optimizers along the **epoch** axis for sample efficiency
# and along the **training time** axis for cost: an optimizer that wins per
# epoch can lose per second when its steps are more expensive (SAM and GSAM take
# two passes per step). Perplexity-like metrics switch to a logarithmic axis
# when runs differ by more than a factor of ten. A curve that stops early
# belongs to a run that diverged or stopped early. A widening gap between the
# solid and dashed line of one colour is overfitting.

# %% tags=["remove-input"]
for number, item in enumerate(make_figures(runs, histories), start=1):
    display(Image(data=png_bytes(item.figure), format="png"))
    display(Markdown(f"**Figure {number}.** {item.caption}"))
