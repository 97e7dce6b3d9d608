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
# # Semantic segmentation: one optimizer, one run
#
# This notebook trains one model that labels every pixel of an image with its class, with
# one optimizer, and writes a run directory that the sweep report reads. It walks through
# the data and their masks, the model, the loss (cross-entropy plus soft Dice), one training
# step by hand, training, the curves, the test metrics (mIoU, pixel accuracy, Dice), the
# predicted masks, each class's IoU and the confusion matrix. Papermill executes one copy of
# it per optimizer (`python -m nbhelpers sweep params/semantic_segmentation/...`); in
# JupyterLab it runs as it is on the offline `shapes` scenes in a few minutes on a CPU.
#
# Every step calls the same `nbhelpers` code as `python -m nbhelpers run`, so the notebook
# and the command line give the same numbers for the same settings.

# %% tags=["parameters"]
task: str = "semantic_segmentation"  # the task (this notebook is for semantic segmentation)
dataset: str = "shapes"  # shapes (offline, generated), oxford_iiit_pet or ade20k
model: str = "unet"  # unet or deeplabv3_resnet50
optimizer: str = "adamw"  # any of the 16: python -m nbhelpers list optimizers
epochs: int = 10  # maximum number of epochs (early stopping may end sooner)
batch_size: int = 16  # training batch size (evaluation too)
lr: float = None  # learning rate; None: decided by lr_policy
lr_policy: str = "per_opt"  # per_opt: the optimizer's researched default; fixed: one LR for all
lr_overrides: str = ""  # per-optimizer LRs in the --lr-overrides format
weight_decay: float = None  # None: the optimizer family's heuristic
scheduler: str = "auto"  # auto (cosine for segmentation), plateau, step, onecycle, ...
scheduler_kwargs: dict = {}  # e.g. {"factor": 0.5, "patience": 1} for plateau
warmup_epochs: float = 0.0  # linear LR warm-up before the schedule
max_grad_norm: float = None  # None: task default (1.0); 0 or less: off
early_stopping_patience: int = None  # None: task default (5); 0 or less: off
label_smoothing: float = None  # None: task default (0)
max_samples: int = None  # cap on the training split (and on validation/test)
val_max_samples: int = None  # a further cap on the validation split
eval_every: int = 1  # epochs between full validations (loss-only in between)
dataset_kwargs: dict = {}  # dataset knobs, e.g. {"scale_range": [0.5, 2.0]}
task_kwargs: dict = {}  # the loss knobs, e.g. {"dice_weight": 0.5, "class_balanced": True}
num_workers: int = 0  # DataLoader worker processes
seed: int = 0  # random seed (weights, shuffling, augmentation)
device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
amp: str = "off"  # off, bf16 or fp16 mixed precision
model_kwargs: dict = {"width": 16}  # model knobs: unet width/depth/bilinear; deeplabv3_resnet50 pretrained_backbone
optimizer_kwargs: dict = {}  # optimizer knobs, e.g. {"rho": 0.1} for sam
sam_base: str = None  # base optimizer of sam/gsam; None: sgd_momentum for vision tasks
target: float = None  # validation mIoU for 'time to target'; None: the dataset's (shapes: 0.80)
data_dir: str = None  # cache of real datasets; None: ~/.cache/nbhelpers
output_dir: str = "executed/notebook"  # the run directory goes to <output_dir>/runs/<run_id>/
grid: dict = {}  # grid values that name this run (set by sweeps)
experiment: int = None  # the run's experiment number in its params file (set by sweeps)
resume: bool = False  # continue from last.pt when the run directory has one
progress: bool = True  # show progress bars

# %%

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from nbhelpers.config import RunConfig
from nbhelpers.optim.equations import update_rule
from nbhelpers.report.plots import run_curves_figure
from nbhelpers.tasks.semantic_segmentation import (
    class_balanced_weights, confusion_from_records, cross_entropy, metric_key, segmentation_metrics,
    soft_dice_loss, split_output)
from nbhelpers.training import Experiment
from nbhelpers.training.rundir import read_jsonl

cfg = RunConfig(**{name: value for name, value in globals().items() if name in RunConfig.__dataclass_fields__})
exp = Experiment(cfg)
print(f"run {exp.cfg.run_id} on {exp.device}; run directory: {exp.run.path}")

# %% [markdown]
# ## The data
#
# Each item is an image (3 x H x W, normalized with the ImageNet mean and std) and a mask
# (H x W) holding a class id per pixel; pixels labelled 255 (the pets' border band, ADE20K's
# "other", padding from augmentation) count neither in the loss nor in the metrics. The
# splits are fixed: every optimizer is scored on the same validation and test images.

# %%
data = exp.load_data()
classes = data.class_names
ignore = data.ignore_index
mean, std = torch.tensor(data.info["mean"]).view(3, 1, 1), torch.tensor(data.info["std"]).view(3, 1, 1)
print(data.description)
print(f"\n{len(classes)} classes; train {len(data.train):,}, validation {len(data.val):,}, "
      f"test {len(data.test):,} images of {data.info['image_size']}x{data.info['image_size']}")

# One colour per class (tab20 cycles), ignored pixels black.
palette = (plt.get_cmap("tab20")(np.arange(len(classes)) % 20)[:, :3] * 255).astype(np.uint8)


def to_rgb(image: torch.Tensor) -> np.ndarray:
    """A normalized image tensor back to an H x W x 3 array in [0, 1]."""
    return (image.cpu() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()


def colour(mask: torch.Tensor) -> np.ndarray:
    mask = mask.cpu().numpy()
    out = palette[np.where(mask == ignore, 0, mask)]
    out[mask == ignore] = 0
    return out


def overlay(image: torch.Tensor, mask: torch.Tensor, alpha: float = 0.5) -> np.ndarray:
    return (1 - alpha) * to_rgb(image) + alpha * colour(mask) / 255


shown = [data.val[i] for i in range(min(6, len(data.val)))]
fig, axes = plt.subplots(2, len(shown), figsize=(2.2 * len(shown), 4.6), squeeze=False)
for column, (image, mask) in enumerate(shown):
    axes[0, column].imshow(to_rgb(image))
    axes[1, column].imshow(overlay(image, mask))
for ax in axes.ravel():
    ax.axis("off")
axes[0, 0].set_title("image", loc="left")
axes[1, 0].set_title("ground truth", loc="left")
fig.suptitle(f"validation images of {exp.cfg.dataset} and their masks")
fig.tight_layout()
plt.show()

# Class shares among the labelled pixels of (up to) 300 validation images (drawn like the
# training images, but read without augmentation): the imbalance the loss has to live with.
counts = np.zeros(len(classes), dtype=np.int64)
for i in range(min(300, len(data.val))):
    mask = data.val[i][1].numpy()
    counts += np.bincount(mask[mask != ignore].ravel(), minlength=len(classes))[:len(classes)]
shares = pd.Series(counts / max(counts.sum(), 1), index=classes).sort_values(ascending=False)
display(shares.head(15).to_frame("share of labelled pixels").style.format("{:.1%}"))

# %% [markdown]
# ## The model
#
# * `unet` (Ronneberger et al., 2015): an encoder of (3x3 conv, BatchNorm, ReLU) x 2 blocks
#   with four 2x2 max-pool downsamplings, each doubling the channels, and a decoder that
#   upsamples (bilinear) and concatenates the encoder's features of the same resolution
#   (the skip connections) before its own conv blocks, so fine detail from the early layers
#   meets context from the deep ones; a 1x1 conv gives the per-pixel logits.
# * `deeplabv3_resnet50` (torchvision): a ResNet-50 whose last two stages use dilated
#   convolutions (output stride 8), an ASPP head that looks at the features at several
#   dilation rates plus a global average, logits upsampled bilinearly to the input size; an
#   auxiliary FCN head on the third stage adds 0.4 x its loss in training. Its backbone starts
#   from ImageNet weights when torch's cache has them, else from random weights (with a
#   warning).
#
# BatchNorm layers are everywhere in both: they normalize with the batch's statistics in
# training and with running averages in evaluation, and optimizers that rescale updates per
# parameter (Adam-style) treat their scales and shifts like any other weight (no decay).

# %%
model = exp.build_model()
n_params = sum(p.numel() for p in model.parameters())
print(model if n_params < 1_000_000 else type(model).__name__)
print(f"{exp.cfg.model}: {n_params:,} parameters")
task = exp.task
# Validation images: reading training images would draw augmentation from the random state
# that training uses, and the run would no longer match `python -m nbhelpers run`.
images, masks = (torch.stack(t) for t in zip(*[data.val[i] for i in range(min(4, len(data.val)))]))
model.eval()
with torch.no_grad():
    logits, _ = split_output(model(images.to(exp.device)))
print(f"a batch: images {tuple(images.shape)} -> logits {tuple(logits.shape)}; masks {tuple(masks.shape)}")

# %% [markdown]
# ## The loss: cross-entropy plus soft Dice
#
# **Cross-entropy** scores each labelled pixel on its own,
# $\mathrm{CE} = -\frac{1}{\sum_i w_{y_i}} \sum_i w_{y_i} \log p_{i, y_i}$. On an image that is
# mostly background, a small object's few pixels barely move it: a model can reach a low
# cross-entropy while missing small objects. The class weights $w_c$ (on by default,
# `class_balanced`) are recomputed on every batch with ENet's rule $w_c = 1/\ln(1.02 + s_c)$,
# $s_c$ being class $c$'s share of the batch's labelled pixels: a class that fills the batch
# weighs about 1.4, a rare one up to 50.
#
# **Soft Dice** scores each class's overlap as a whole,
# $\mathrm{Dice}_c = \frac{2 \sum_i p_{i,c} g_{i,c} + 1}{\sum_i p_{i,c} + \sum_i g_{i,c} + 1}$
# with softmax probabilities $p$ and one-hot labels $g$, averaged over the classes present
# in the batch; $1 - \overline{\mathrm{Dice}}$ is the loss. A small object counts as much as
# the background, which is what mIoU rewards. Dice alone gives weak, noisy gradients early
# on (when the overlaps are near zero), so the two are added: loss = CE + 0.5 x (1 - Dice),
# as the seed guide recommends (`dice_weight`).

# %%
labels = masks.to(exp.device)
weights = class_balanced_weights(labels, len(classes), ignore)
parts = {
    "cross-entropy (plain)": float(cross_entropy(logits, labels, ignore_index=ignore)),
    "cross-entropy (class-balanced)": float(cross_entropy(logits, labels, weight=weights, ignore_index=ignore)),
    "1 - soft Dice": float(soft_dice_loss(logits, labels, ignore_index=ignore)),
    f"the task's loss (dice_weight {task.dice_weight}, class_balanced {task.class_balanced})":
        float(task.criterion(logits, labels)),
}
display(pd.Series(parts).to_frame("on 4 validation images, untrained model").style.format("{:.4f}"))
present = weights > 0
display(pd.Series(weights[present].cpu().numpy(), index=[classes[i] for i in torch.nonzero(present).ravel()])
        .to_frame("this batch's class weight").style.format("{:.2f}"))

# %% [markdown]
# ## The optimizer and its update rule
#
# Weight decay applies only to tensors with two or more dimensions (convolution weights);
# biases and BatchNorm scales and shifts are not decayed.

# %%
optimizer = exp.build_optimizer()
display(Markdown(update_rule(exp.cfg.optimizer)))
print(f"lr {exp.choice.lr:g}, weight decay {exp.choice.weight_decay:g} ({exp.choice.decay_style}), "
      f"other settings {exp.choice.kwargs}" + (f", base {exp.choice.base}" if exp.choice.base else ""))

# %% [markdown]
# ## One training step by hand
#
# What the Trainer does for every batch, written out once: forward pass, the task's loss
# (`task.train_step`), backward pass, the optimizer's step; then the loss on the same batch
# again, and how far the step moved each layer's weights. It runs on a copy of the model
# with its own optimizer, inside a forked random state, so this cell changes nothing that
# follows.

# %%
from nbhelpers.training.walkthrough import (batch_loss, isolated_rng, optimizer_step, practice_copy, snapshot,
                                            update_sizes)

with isolated_rng():  # the augmentation and dropout drawn here must not move the run's random numbers
    practice_model, practice_optimizer, batch = practice_copy(exp)
    before, loss_before = snapshot(practice_model), batch_loss(task, practice_model, batch)
    practice_optimizer.zero_grad(set_to_none=True)
    loss, stats = task.train_step(practice_model, batch)  # forward + CE + 0.5 Dice (+ 0.4 aux for DeepLabV3)
    loss.backward()
    optimizer_step(practice_optimizer, lambda: task.train_step(practice_model, batch)[0])
    loss_after = batch_loss(task, practice_model, batch)
print(f"loss on this batch: {loss_before:.4f} before the step, {loss_after:.4f} after")
display(update_sizes(before, practice_model))

# %% [markdown]
# The Trainer repeats exactly this for every batch of every epoch, and adds what a real run
# needs: it clips the global gradient norm at 1.0 before the step, runs the forward pass
# under autocast when AMP is on (with a gradient scaler for fp16), lets SAM and GSAM take
# their second pass through a closure with BatchNorm's running statistics frozen, steps the
# cosine learning-rate schedule, and sums the statistics (loss, confusion matrix) for the
# epoch's metrics.

# %% [markdown]
# ## Training
#
# The Trainer keeps the weights of the best validation mIoU and stops early after
# `patience` epochs without a better one. It writes `history.jsonl`, `best_model.pt` and
# `last.pt` as it goes; its clock counts training only.

# %%
trainer = exp.build_trainer()
fit = exp.fit()
print(f"{fit.status} after {len(fit.history)} epochs, {fit.train_time_s:.1f} s of training; "
      f"best validation mIoU {fit.best_val} in epoch {fit.best_epoch}")

# %% [markdown]
# ## Learning curves
#
# Solid lines are the training split (a running average over the epoch, augmentation on,
# BatchNorm in training mode), dashed lines the validation split after each epoch.

# %%
fig = run_curves_figure(fit.history, exp.task_spec.primary_metric, spec=exp.task_spec.primary,
                        loss_label="CE + 0.5 (1 - Dice)",
                        title=f"{exp.cfg.model} with {exp.cfg.optimizer} on {exp.cfg.dataset}")
plt.show()

# %% [markdown]
# ## Test metrics
#
# The test split is evaluated once, with the weights of the best validation epoch. mIoU
# comes from one confusion matrix summed over every labelled test pixel: per class,
# IoU = TP / (TP + FP + FN), averaged over the classes that occur in the ground truth or the
# predictions. Pixel accuracy is the share of labelled pixels predicted right (dominated by
# the large classes); Dice = 2 TP / (2 TP + FP + FN) per class, averaged the same way.

# %%
summary = exp.finish()
test = summary["test"] or {}
print(f"status: {summary['status']}")
print(f"test mIoU {test.get('miou', float('nan')):.4f}, pixel accuracy "
      f"{test.get('pixel_accuracy', float('nan')):.4f}, Dice {test.get('dice', float('nan')):.4f}, "
      f"loss {test.get('loss', float('nan')):.4f}")
if summary["target"] is not None:
    print(f"epochs to a validation mIoU of {summary['target']:.2f}: {summary['epochs_to_target']}")
print(f"optimizer state: {summary['optimizer_state_bytes']:,} bytes")
print((exp.run.path / "details.txt").read_text())

# %% [markdown]
# ## Predicted masks
#
# Test images with the ground truth and the best checkpoint's prediction overlaid.

# %%
model.eval()
shown = [data.test[i] for i in range(min(6, len(data.test)))]
with torch.no_grad():
    predicted = split_output(model(torch.stack([im for im, _ in shown]).to(exp.device)))[0].argmax(1).cpu()
fig, axes = plt.subplots(3, len(shown), figsize=(2.2 * len(shown), 6.8), squeeze=False)
for column, ((image, mask), prediction) in enumerate(zip(shown, predicted)):
    axes[0, column].imshow(to_rgb(image))
    axes[1, column].imshow(overlay(image, mask))
    axes[2, column].imshow(overlay(image, prediction))
for ax in axes.ravel():
    ax.axis("off")
for row, title in enumerate(("image", "ground truth", "prediction")):
    axes[row, 0].set_title(title, loc="left")
handles = [plt.Rectangle((0, 0), 1, 1, color=palette[i] / 255) for i in range(min(len(classes), 20))]
fig.legend(handles, classes[:20], loc="lower center", ncol=min(len(classes), 10), fontsize=8)
fig.tight_layout(rect=(0, 0.06, 1, 1))
plt.show()

# %% [markdown]
# ## Each class's IoU and the confusion matrix
#
# Both come from `predictions_test.jsonl`, where each test image's record holds its sparse
# confusion counts `[true class, predicted class, pixels]`: summed over the images they give
# the split's confusion matrix, and the mIoU recomputed from it equals the one in
# `summary.json`.

# %%
records = read_jsonl(exp.run.predictions("test"))
confusion = confusion_from_records(records, len(classes))
recomputed = segmentation_metrics(confusion)
print(f"{len(records)} test records; mIoU recomputed from them {recomputed['miou']:.6f} "
      f"(summary.json: {test.get('miou', float('nan')):.6f})")
iou = pd.Series(recomputed["per_class_iou"], index=classes).dropna().sort_values()
shown_iou = iou if len(iou) <= 30 else pd.concat([iou.head(15), iou.tail(15)])
fig, ax = plt.subplots(figsize=(7, 0.3 * len(shown_iou) + 1.2))
ax.barh(shown_iou.index, shown_iou.values, color=[palette[classes.index(c)] / 255 for c in shown_iou.index])
ax.axvline(recomputed["miou"], color="black", linestyle="--", label=f"mIoU {recomputed['miou']:.3f}")
ax.set(xlabel="IoU on the test split", xlim=(0, 1),
       title="per-class IoU" + (" (15 worst and 15 best classes)" if len(iou) > 30 else ""))
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()
assert all(abs(test[metric_key(c)] - v) < 1e-9 for c, v in iou.items() if metric_key(c) in test)

# Rows are the true class, normalized to 1: the diagonal is each class's recall. With many
# classes (ADE20K), only the 20 with the most pixels are shown.
order = np.argsort(-confusion.sum(axis=1))[:20]
sub = confusion[np.ix_(order, order)].astype(float)
rows = sub / np.maximum(sub.sum(axis=1, keepdims=True), 1)
fig, ax = plt.subplots(figsize=(0.45 * len(order) + 3, 0.45 * len(order) + 2.5))
shown_image = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
names = [classes[i] for i in order]
ax.set_xticks(range(len(order)), names, rotation=60, ha="right")
ax.set_yticks(range(len(order)), names)
if len(order) <= 10:
    for r in range(len(order)):
        for c in range(len(order)):
            ax.text(c, r, f"{rows[r, c]:.2f}", ha="center", va="center",
                    color="white" if rows[r, c] > 0.5 else "black", fontsize=8)
ax.set(xlabel="predicted class", ylabel="true class",
       title="confusion matrix of the best checkpoint (test, rows sum to 1)")
fig.colorbar(shown_image, ax=ax, fraction=0.046)
fig.tight_layout()
plt.show()
