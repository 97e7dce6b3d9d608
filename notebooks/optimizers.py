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
# # The sixteen update rules
#
# Every optimizer in this project, as an equation and as the few lines of PyTorch that
# carry it out, followed by the paths they take on three two-dimensional landscapes.
# Notation: $g$ the gradient, $p$ the parameter, $\eta$ the learning rate (`lr`),
# $\lambda$ the weight decay (`wd`), $t$ the step, $m, v, s, b$ the optimizer's state.
# The package's implementations (`nbhelpers/optim/`) compute the same thing with
# `torch._foreach_*` kernels over whole parameter groups; the tests check them against
# plain references written from these equations.

# %% tags=["parameters"]
steps: int = 200  # optimizer steps per path
tune_lr: bool = True  # pick each optimizer's best LR per landscape from a small grid (slower)
widget: bool = True  # the interactive explorer (JupyterLab); off for batch runs through papermill

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from nbhelpers.optim import TABLE, all_names
from nbhelpers.optim.equations import UPDATE_CODE, update_rule
from nbhelpers.optim.landscapes import LANDSCAPES, best_lr, trace_path

# %% [markdown]
# ## The rules, side by side

# %%
for spec in TABLE:
    display(Markdown(update_rule(spec.name) + "\n\n```python\n" + UPDATE_CODE[spec.name] + "\n```\n\n"
                     + f"Defaults here: lr {spec.default_lr:g}, weight decay {spec.weight_decay:g} "
                       f"({spec.decay_style})."))

# %% [markdown]
# ## Paths on 2-D landscapes
#
# Each optimizer starts from the same point. With `tune_lr`, each gets the LR (from
# 1e-4 to 1) that ends lowest on that landscape, so a path shows the rule at its best
# rather than at one LR that suits only some rules. Weight decay is off. SAM and GSAM
# wrap SGD with momentum, as they do for images by default.

# %%
def contour(ax, land):
    xs = np.linspace(*land.xlim, 200)
    ys = np.linspace(*land.ylim, 200)
    X, Y = np.meshgrid(xs, ys)
    Z = land.f(torch.tensor(X), torch.tensor(Y)).numpy()
    levels = np.quantile(Z, np.linspace(0.0, 0.95, 25))
    ax.contour(X, Y, Z, levels=np.unique(levels), cmap="Greys", linewidths=0.6)
    ax.plot(*land.start, "ko", ms=5)
    if land.minimum:
        ax.plot(*land.minimum, "r*", ms=10)
    ax.set(xlim=land.xlim, ylim=land.ylim, xlabel="x", ylabel="y")


chosen_lr = {}
for land in LANDSCAPES.values():
    fig, axes = plt.subplots(2, 8, figsize=(22, 6), sharex=True, sharey=True)
    for ax, name in zip(axes.flat, all_names()):
        lr = best_lr(name, land.name, steps) if tune_lr else TABLE[all_names().index(name)].default_lr
        chosen_lr[(land.name, name)] = lr
        path = trace_path(name, land.name, lr, steps).numpy()
        contour(ax, land)
        ax.plot(path[:, 0], path[:, 1], "-", color="tab:blue", lw=1.2)
        ax.set_title(f"{name} (lr {lr:g})", fontsize=9)
    fig.suptitle(f"{land.name}: {land.description}; {steps} steps from the black dot, red star = minimum")
    plt.tight_layout()
    plt.show()

# %% [markdown]
# How to read them: sign-based and normalized rules (Lion, LARS, LAMB) take steps of a
# fixed size whatever the gradient's scale, so they cross plateaus quickly but circle
# near a minimum; Adam-like rules divide by a running gradient scale and slow down in
# the flat valley of Rosenbrock's function only a little; plain SGD crawls along it. On
# the saddle the gradient along $y$ starts at almost zero: momentum and adaptive scaling
# decide how fast a rule leaves it.

# %% [markdown]
# ## Explore
#
# Pick an optimizer, a learning rate and a landscape. (This cell needs a live kernel;
# it is left out of the HTML report, which shows the static figures above instead.)

# %% tags=["remove-cell"]
import ipywidgets as widgets


def explore(optimizer="adamw", log10_lr=-2.0, landscape="rosenbrock"):
    land = LANDSCAPES[landscape]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    contour(ax, land)
    path = trace_path(optimizer, landscape, 10 ** log10_lr, steps).numpy()
    ax.plot(path[:, 0], path[:, 1], "-o", ms=2, lw=1)
    ax.set_title(f"{optimizer}, lr {10 ** log10_lr:.2g}: f = {float(land(torch.tensor(path[-1]))):.3g}")
    plt.show()


# Under papermill the interact widget's output capture could leave nbclient waiting forever
# for a reply (seen in test runs); a batch run has no use for the widget, so it can skip it.
if widget:
    explorer = widgets.interactive(
        explore, optimizer=widgets.Dropdown(options=all_names(), value="adamw"),
        log10_lr=widgets.FloatSlider(min=-4, max=0, step=0.25, value=-2, description="log10 lr"),
        landscape=widgets.Dropdown(options=list(LANDSCAPES), value="rosenbrock"))
    # What a page without the live widget shows instead (plain `jupyter nbconvert`, which
    # ignores the remove-cell tag): a sentence, not the widget's Python repr.
    display({**explorer._repr_mimebundle_(),
             "text/plain": "(The interactive explorer: run this cell in JupyterLab to use it.)"}, raw=True)
