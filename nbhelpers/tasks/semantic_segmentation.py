"""Semantic segmentation: cross-entropy + soft Dice per pixel; mIoU from a summed confusion matrix.

A batch is (images (B, 3, H, W), masks (B, H, W) int64), masks holding class ids and the
ignore label 255 (nbhelpers/data/segmentation.py). A model returns the logits (B, C, H, W) or,
like torchvision's segmentation models, a dict with "out" (the logits) and, in training,
"aux" (an auxiliary head's logits, weighted AUX_WEIGHT = 0.4 in the loss).

The loss (seed guide): cross-entropy ignoring 255, plus `dice_weight` (0.5) x the soft Dice
loss. Cross-entropy scores each pixel on its own, so on a background-heavy image the few
pixels of a small object barely move it; Dice scores each class's overlap as a whole, so a
small object counts as much as the background. With `class_balanced` (on) the cross-entropy
weighs each class by ENet's 1 / ln(1.02 + p), p being the class's share of the batch's
labelled pixels: rare classes weigh up to ~50 times more than a class that fills the batch.
Both are task knobs: `task_kwargs: {dice_weight: 0.3, class_balanced: false}` in a params
file, `--task-kwargs dice_weight=0.3` on the command line.

Statistics are the loss summed over images and a C x C confusion matrix (rows: true class,
columns: predicted) summed over every labelled pixel of the split. From it: mIoU, the mean
over classes of TP / (TP + FP + FN) (a class absent from both the ground truth and the
predictions has no IoU and is left out), pixel accuracy (trace / total) and the mean Dice
2 TP / (2 TP + FP + FN) over the same classes. Records of a full evaluation hold each image's
sparse confusion counts, [[true, predicted, pixels], ...], whose sum is the split's matrix.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nbhelpers.errors import UserInputError
from nbhelpers.registry import TASKS
from nbhelpers.tasks.base import Evaluation, MetricSpec, Task, TaskSpec, add_stats

IGNORE_INDEX = 255
AUX_WEIGHT = 0.4        # torchvision's reference recipe for the auxiliary FCN head
DICE_SMOOTH = 1.0       # added to numerator and denominator: a class with no pixels is not 0/0
ENET_C = 1.02           # ENet's class weighting constant: weights lie between ~1 and 1/ln(1.02)


def split_output(output: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(main logits, auxiliary logits or None) from a tensor or a {"out", "aux"} dict."""
    if isinstance(output, Mapping):
        return output["out"], output.get("aux")
    return output, None


def class_balanced_weights(labels: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Per-class CE weights for one batch: 1 / ln(1.02 + share of labelled pixels), 0 if absent.

    Computed on the device without a host sync (no boolean indexing, no .item()).
    """
    valid = labels != ignore_index
    index = torch.where(valid, labels, num_classes).reshape(-1)
    counts = torch.zeros(num_classes + 1, device=labels.device).scatter_add_(
        0, index, torch.ones_like(index, dtype=torch.float32))[:num_classes]
    share = counts / counts.sum().clamp_min(1.0)
    return torch.where(counts > 0, 1.0 / torch.log(ENET_C + share), torch.zeros_like(share))


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, *, weight: torch.Tensor | None = None,
                  ignore_index: int = IGNORE_INDEX, label_smoothing: float = 0.0) -> torch.Tensor:
    """Weighted mean per-pixel cross-entropy over labelled pixels (0, not NaN, when there are none).

    Equals F.cross_entropy(logits, labels, weight, ignore_index) when that is defined; written
    out so that a batch whose pixels are all ignored gives 0 without a host-side check.
    """
    valid = labels != ignore_index
    safe = torch.where(valid, labels, 0)
    log_p = F.log_softmax(logits.float(), dim=1)
    nll = -log_p.gather(1, safe.unsqueeze(1)).squeeze(1)
    if label_smoothing > 0:
        nll = (1 - label_smoothing) * nll - label_smoothing * log_p.mean(dim=1)
    pixel_weight = valid.float() if weight is None else weight[safe] * valid
    return (nll * pixel_weight).sum() / pixel_weight.sum().clamp_min(1e-12)


def soft_dice_loss(logits: torch.Tensor, labels: torch.Tensor, *, ignore_index: int = IGNORE_INDEX,
                   smooth: float = DICE_SMOOTH) -> torch.Tensor:
    """1 - mean soft Dice over the classes present in the batch's labels (softmax probabilities).

    Per class c over the batch's labelled pixels: (2 sum p_c g_c + s) / (sum p_c + sum g_c + s),
    with g the one-hot labels. Built with scatter_add instead of a one-hot tensor, which for
    150 classes at 256x256 would cost hundreds of megabytes.
    """
    num_classes = logits.shape[1]
    valid = labels != ignore_index
    safe = torch.where(valid, labels, 0)
    probs = torch.softmax(logits.float(), dim=1) * valid.unsqueeze(1)
    index = torch.where(valid, labels, num_classes).reshape(-1)
    true_prob = probs.gather(1, safe.unsqueeze(1)).reshape(-1)
    zeros = torch.zeros(num_classes + 1, device=logits.device)
    overlap = zeros.scatter_add(0, index, true_prob)[:num_classes]
    truth = zeros.scatter_add(0, index, torch.ones_like(true_prob))[:num_classes]
    predicted = probs.sum(dim=(0, 2, 3))
    dice = (2 * overlap + smooth) / (predicted + truth + smooth)
    present = (truth > 0).float()
    return 1 - (dice * present).sum() / present.sum().clamp_min(1.0)


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """C x C int64 counts over labelled pixels: rows true class, columns predicted class."""
    valid = labels != ignore_index
    index = torch.where(valid, labels * num_classes + predictions, num_classes * num_classes).reshape(-1)
    counts = torch.zeros(num_classes * num_classes + 1, dtype=torch.int64, device=labels.device)
    counts.scatter_add_(0, index, torch.ones_like(index))
    return counts[:-1].reshape(num_classes, num_classes)


def per_image_confusions(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int,
                         ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """(B, C, C) confusion matrices, one per image."""
    batch = labels.shape[0]
    valid = labels != ignore_index
    cells = num_classes * num_classes
    index = torch.where(valid, labels * num_classes + predictions, cells).reshape(batch, -1)
    counts = torch.zeros(batch, cells + 1, dtype=torch.int64, device=labels.device)
    counts.scatter_add_(1, index, torch.ones_like(index))
    return counts[:, :-1].reshape(batch, num_classes, num_classes)


def segmentation_metrics(confusion: np.ndarray | torch.Tensor) -> dict[str, Any]:
    """mIoU, pixel accuracy, mean Dice and the per-class IoU (NaN where undefined) of a matrix.

    A class absent from both ground truth and predictions (row and column empty) has no IoU
    and no Dice, and is left out of the means.
    """
    matrix = np.asarray(confusion.cpu() if isinstance(confusion, torch.Tensor) else confusion,
                        dtype=np.float64)
    tp = np.diag(matrix)
    truth, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    union = truth + predicted - tp
    seen = union > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(seen, tp / union, np.nan)
        dice = np.where(seen, 2 * tp / (truth + predicted), np.nan)
    total = matrix.sum()
    return {"miou": float(np.nanmean(iou)) if seen.any() else float("nan"),
            "pixel_accuracy": float(tp.sum() / total) if total > 0 else float("nan"),
            "dice": float(np.nanmean(dice)) if seen.any() else float("nan"),
            "per_class_iou": iou}


def confusion_from_records(records: Iterable[Mapping[str, Any]], num_classes: int) -> np.ndarray:
    """The split's confusion matrix, re-summed from the records' sparse per-image counts."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    for record in records:
        for true, predicted, count in record["confusion"]:
            matrix[true, predicted] += count
    return matrix


def metric_key(class_name: str) -> str:
    """"iou_<class>" with the class name made a safe column name ("chest of drawers" -> chest_of_drawers)."""
    return "iou_" + re.sub(r"\W+", "_", class_name.strip().lower()).strip("_")


class SemanticSegmentation(Task):
    spec = TaskSpec(
        name="semantic_segmentation",
        description="label every pixel of an image with its class (mIoU)",
        family="vision",
        metrics={
            "miou": MetricSpec("mIoU", higher_is_better=True, unit="%", scale=100.0),
            "pixel_accuracy": MetricSpec("pixel accuracy", higher_is_better=True, unit="%", scale=100.0),
            "dice": MetricSpec("Dice", higher_is_better=True, unit="%", scale=100.0),
        },
        primary_metric="miou",
        offline_dataset="shapes",
        scheduler="cosine",
        max_grad_norm=1.0,          # seed guide: clipping 1.0 for segmentation
        early_stopping_patience=5,
        label_smoothing=0.0,        # the guide: possible (0.05) but rarely needed
        target=None,                # a dataset may set its own (shapes: 0.80, info["target"])
        defaults={"model": "unet", "epochs": 20, "batch_size": 8},
    )

    def __init__(self, *, data=None, label_smoothing: float | None = None,
                 dice_weight: float | None = None, class_balanced: bool | None = None):
        super().__init__(data=data, label_smoothing=label_smoothing)
        if dice_weight is not None and not (math.isfinite(dice_weight) and dice_weight >= 0):
            raise UserInputError(f"task knob dice_weight must be a number >= 0, got {dice_weight!r}")
        self.dice_weight = 0.5 if dice_weight is None else float(dice_weight)
        self.class_balanced = True if class_balanced is None else bool(class_balanced)

    # -- facts from the live data ---------------------------------------------------------

    @property
    def ignore_index(self) -> int:
        value = None if self.data is None else self.data.ignore_index
        return IGNORE_INDEX if value is None else int(value)

    # -- loss -----------------------------------------------------------------------------
    def criterion(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """CE (class-balanced when on) + dice_weight x soft Dice, for one head's logits."""
        ignore = self.ignore_index
        weight = class_balanced_weights(labels, logits.shape[1], ignore) if self.class_balanced else None
        loss = cross_entropy(logits, labels, weight=weight, ignore_index=ignore,
                             label_smoothing=self.label_smoothing)
        if self.dice_weight > 0:
            loss = loss + self.dice_weight * soft_dice_loss(logits, labels, ignore_index=ignore)
        return loss

    def _forward(self, model: nn.Module, batch: Any):
        images, labels = batch
        logits, aux = split_output(model(images))
        loss = self.criterion(logits, labels)
        if aux is not None:
            loss = loss + AUX_WEIGHT * self.criterion(aux, labels)
        predictions = logits.detach().argmax(dim=1)
        stats = {"loss_sum": loss.detach() * labels.shape[0],
                 "images": torch.tensor(labels.shape[0], device=labels.device),
                 "confusion": confusion_matrix(predictions, labels, logits.shape[1], self.ignore_index)}
        return loss, stats, predictions, labels

    def train_step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, stats, _, _ = self._forward(model, batch)
        return loss, stats

    def eval_step(self, model: nn.Module, batch: Any) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
        _, stats, predictions, labels = self._forward(model, batch)
        num_classes = stats["confusion"].shape[0]
        records = []
        for matrix in per_image_confusions(predictions, labels, num_classes, self.ignore_index).cpu():
            true, predicted = np.nonzero(matrix.numpy())
            counts = matrix.numpy()[true, predicted]
            records.append({"pixels": int(counts.sum()), "correct": int(matrix.diagonal().sum()),
                            "confusion": [[int(t), int(p), int(n)] for t, p, n in zip(true, predicted, counts)]})
        return stats, records

    # -- metrics --------------------------------------------------------------------------
    def summarize(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        images = max(float(totals["images"]), 1.0)
        metrics = segmentation_metrics(totals["confusion"])
        return {"loss": float(totals["loss_sum"]) / images, "miou": metrics["miou"],
                "pixel_accuracy": metrics["pixel_accuracy"], "dice": metrics["dice"]}

    def per_class_iou(self, confusion: np.ndarray | torch.Tensor) -> dict[str, float]:
        """{"iou_<class>": IoU} for every class that has one."""
        names = self.class_names() or [str(i) for i in range(len(confusion))]
        iou = segmentation_metrics(confusion)["per_class_iou"]
        return {metric_key(name): float(value) for name, value in zip(names, iou) if not math.isnan(value)}

    def evaluate(self, model: nn.Module, loader: Iterable, split: str) -> Evaluation:
        """The default evaluation; the test split's metrics also carry each class's IoU.

        Per-class IoUs go to the test metrics only (summary.json's "test"), not into every
        validation row of history.jsonl, where 150 ADE20K columns per epoch would drown it.
        """
        totals: dict[str, torch.Tensor] = {}
        records: list[dict[str, Any]] = []
        for batch in loader:
            stats, batch_records = self.eval_step(model, batch)
            add_stats(totals, stats)
            start = len(records)
            records.extend({"id": start + i, **r} for i, r in enumerate(batch_records))
        metrics = self.summarize(totals)
        if split == "test" and "confusion" in totals:
            metrics.update(self.per_class_iou(totals["confusion"]))
        return Evaluation(metrics, records)


TASKS.add("semantic_segmentation", SemanticSegmentation,
          description=SemanticSegmentation.spec.description, spec=SemanticSegmentation.spec)
