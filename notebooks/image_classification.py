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
# # Image classification: one optimizer, one run
#
# This notebook trains one image classifier with one optimizer and writes a run
# directory that the sweep report reads. It walks through the run step by step:
# the data, the model, the optimizer and its update rule, training, the curves and
# the test metrics. Papermill executes one copy of it per optimizer
# (`python -m nbhelpers sweep ...`); in JupyterLab you can run it as it is, on the
# offline `digits` data, in well under a minute.
#
# Every step calls the same `nbhelpers` code as `python -m nbhelpers run`, so the
# notebook and the command line give the same numbers for the same settings.

# %% tags=["parameters"]
task: str = "image_classification"  # the task (this notebook is for image classification)
dataset: str = "digits"  # digits (offline, bundled with scikit-learn), mnist or cifar10
model: str = "cnn_scratch"  # cnn_scratch, resnet18 or mnist_tiny
optimizer: str = "adamw"  # any of the 16: python -m nbhelpers list optimizers
epochs: int = 10  # maximum number of epochs
batch_size: int = 64  # training batch size
lr: float = None  # learning rate; None: decided by lr_policy
lr_policy: str = "per_opt"  # per_opt: the optimizer's researched default; fixed: one LR for all
lr_overrides: str = ""  # per-optimizer LRs in the --lr-overrides format
weight_decay: float = None  # None: the optimizer family's heuristic
scheduler: str = "auto"  # auto (cosine for images), cosine, plateau, step, onecycle, ...
scheduler_kwargs: dict = {}  # e.g. {"milestones": [30, 60]} for multistep
warmup_epochs: float = 0.0  # linear LR warm-up before the schedule
max_grad_norm: float = None  # None: task default (off for images); 0 or less: off
early_stopping_patience: int = None  # None: task default (10); 0 or less: off
label_smoothing: float = None  # None: task default (0.1)
max_samples: int = None  # cap on the training split (and on validation/test)
val_max_samples: int = None  # a further cap on the validation split
eval_every: int = 1  # epochs between full validations (loss-only in between)
dataset_kwargs: dict = {}  # dataset knobs, e.g. {"bptt": 128} for language models
task_kwargs: dict = {}  # task knobs (semantic_segmentation has its loss knobs here)
num_workers: int = 0  # DataLoader worker processes
seed: int = 0  # random seed (weights, shuffling, augmentation)
device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
amp: str = "off"  # off, bf16 or fp16 mixed precision
model_kwargs: dict = {}  # model knobs, e.g. {"width": 2}
optimizer_kwargs: dict = {}  # optimizer knobs, e.g. {"rho": 0.1} for sam
sam_base: str = None  # base optimizer of sam/gsam; None: sgd_momentum for images
target: float = None  # validation accuracy for 'time to target'; None: 0.99
data_dir: str = None  # cache of real datasets; None: ~/.cache/nbhelpers
output_dir: str = "executed/notebook"  # the run directory goes to <output_dir>/runs/<run_id>/
grid: dict = {}  # grid values that name this run (set by sweeps)
experiment: int = None  # the run's number in its params file (set by sweeps)
resume: bool = False  # continue from last.pt when the run directory has one
progress: bool = True  # show progress bars

# %%
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from nbhelpers.config import RunConfig
from nbhelpers.optim.equations import update_rule
from nbhelpers.report.plots import run_curves_figure
from nbhelpers.training import Experiment

cfg = RunConfig(**{name: value for name, value in globals().items() if name in RunConfig.__dataclass_fields__})
exp = Experiment(cfg)
print(f"run {exp.cfg.run_id} on {exp.device}; run directory: {exp.run.path}")

# %% [markdown]
# ## The data
#
# The splits are fixed (they do not move with the seed), so every optimizer is scored
# on the same validation and test images. The training split carries the augmentation,
# if the dataset has any; validation and test never do.

# %%
data = exp.load_data()
print(data.description)
print(f"train {len(data.train)}, validation {len(data.val)}, test {len(data.test)} images")

images, labels = zip(*(data.val[i] for i in range(min(16, len(data.val)))))
fig, axes = plt.subplots(2, 8, figsize=(10, 3))
for ax, image, label in zip(axes.flat, images, labels):
    picture = image.permute(1, 2, 0).squeeze(-1)
    picture = (picture - picture.min()) / (picture.max() - picture.min() + 1e-8)
    ax.imshow(picture, cmap="gray" if image.shape[0] == 1 else None)
    ax.set_title(data.info.get("classes", list(range(10)))[int(label)], fontsize=9)
    ax.axis("off")
fig.suptitle(f"{exp.cfg.dataset}: validation images (normalized for display)")
plt.show()

# %% [markdown]
# ## The model

# %%
model = exp.build_model()
n_params = sum(p.numel() for p in model.parameters())
print(model)
print(f"{exp.cfg.model}: {n_params:,} parameters")

# %% [markdown]
# ## The optimizer and its update rule
#
# Weight decay applies only to tensors with two or more dimensions (weights of
# convolutions and linear layers); biases and BatchNorm scales are not decayed.

# %%
optimizer = exp.build_optimizer()
display(Markdown(update_rule(exp.cfg.optimizer)))
print(f"lr {exp.choice.lr:g}, weight decay {exp.choice.weight_decay:g} ({exp.choice.decay_style}), "
      f"other settings {exp.choice.kwargs}" + (f", base {exp.choice.base}" if exp.choice.base else ""))

# %% [markdown]
# ## One training step by hand
#
# Before the Trainer takes over, here is the step it repeats for every batch: the forward
# pass and the task's loss, the backward pass, the optimizer's step, and what the step
# changed. It runs on a copy of the model with its own optimizer, so the run below is
# exactly what it would be without this cell.

# %%
from nbhelpers.training.walkthrough import (batch_loss, isolated_rng, optimizer_step, practice_copy, snapshot,
                                            update_sizes)

with isolated_rng():  # the dropout drawn here must not move the run's random numbers
    practice_model, practice_optimizer, batch = practice_copy(exp)
    before, loss_before = snapshot(practice_model), batch_loss(exp.task, practice_model, batch)
    practice_optimizer.zero_grad(set_to_none=True)
    loss, stats = exp.task.train_step(practice_model, batch)  # forward pass and the task's loss
    loss.backward()  # gradients of the batch's mean loss
    optimizer_step(practice_optimizer, lambda: exp.task.train_step(practice_model, batch)[0])
    loss_after = batch_loss(exp.task, practice_model, batch)
print(f"{exp.cfg.optimizer}: loss on this batch {loss_before:.4f} before the step, {loss_after:.4f} after")
display(update_sizes(before, practice_model))

# %% [markdown]
# The Trainer repeats exactly this for every batch of every epoch, and adds what a real
# run needs: gradient clipping (`max_grad_norm`) between the backward pass and the step,
# mixed precision (`amp`; fp16 with a gradient scaler), the second forward/backward pass of
# SAM and GSAM at the perturbed weights (the closure `optimizer_step` passes above), the LR
# schedule, and a check that the loss stays finite.

# %% [markdown]
# ## Training
#
# The Trainer evaluates on the validation split after every epoch, keeps the weights of
# the best epoch, stops early when validation accuracy has not improved for `patience`
# epochs, and writes `history.jsonl`, `best_model.pt` and `last.pt` as it goes.
# Its clock counts training only, not evaluation.

# %%
trainer = exp.build_trainer()
fit = exp.fit()
print(f"{fit.status} after {len(fit.history)} epochs, {fit.train_time_s:.1f} s of training; "
      f"best validation {exp.task_spec.primary.label} {fit.best_val} in epoch {fit.best_epoch}")

# %% [markdown]
# ## Learning curves
#
# Solid lines are the training split (running average over the epoch, with
# augmentation and dropout on), dashed lines the validation split after the epoch.

# %%
fig = run_curves_figure(fit.history, exp.task_spec.primary_metric, spec=exp.task_spec.primary,
                        loss_label="cross-entropy (smoothed labels)",
                        title=f"{exp.cfg.model} with {exp.cfg.optimizer} on {exp.cfg.dataset}")
plt.show()

# %% [markdown]
# ## Test metrics
#
# The test split is evaluated once, with the weights of the best validation epoch.

# %%
summary = exp.finish()
print(f"status: {summary['status']}")
print(f"test: {summary['test']}")
print(f"epochs to {summary['target']:.0%} validation accuracy: {summary['epochs_to_target']}")
print(f"optimizer state: {summary['optimizer_state_bytes']:,} bytes")
print((exp.run.path / "details.txt").read_text())
