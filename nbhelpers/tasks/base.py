"""What a task is: its loss, its metrics, and its training defaults.

The Trainer knows nothing of a particular task. Per batch it calls `task.forward(model,
batch)`, which returns the loss to minimise and a dict of *sums* (tensors, kept on the
device so no step waits for a host copy); per epoch it adds those sums up and calls
`task.summarize(totals)` to turn them into metrics such as accuracy or perplexity.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TaskSpec:
    """A task's name, primary metric and the defaults that `auto` resolves to."""

    name: str
    description: str
    primary_metric: str
    higher_is_better: bool
    metrics: tuple[str, ...]               # every metric summarize() returns besides "loss"
    offline_dataset: str
    scheduler: str                         # what --scheduler auto means
    max_grad_norm: float | None            # None: no clipping
    early_stopping_patience: int
    label_smoothing: float = 0.0
    target: float | None = None            # validation primary metric for "time to target"
    defaults: Mapping[str, Any] = field(default_factory=dict)  # model, epochs, batch_size for the task


class Task(abc.ABC):
    """Base class: subclasses set `spec` and implement forward() and summarize()."""

    spec: TaskSpec

    def __init__(self, *, label_smoothing: float | None = None, info: Mapping[str, Any] | None = None):
        self.label_smoothing = self.spec.label_smoothing if label_smoothing is None else label_smoothing
        self.info = dict(info or {})

    @abc.abstractmethod
    def forward(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean loss of the batch (to backpropagate) and additive statistics (sums)."""

    @abc.abstractmethod
    def summarize(self, totals: Mapping[str, float]) -> dict[str, float]:
        """Metrics, including "loss", from statistics summed over an epoch."""

    def batch_size(self, batch: Any) -> int:
        """Number of samples in a batch (for samples per second)."""
        first = batch[0] if isinstance(batch, (tuple, list)) else next(iter(batch.values()))
        return int(first.shape[0])


class ClassificationTask(Task):
    """Cross-entropy with label smoothing and accuracy; subclasses say where logits come from."""

    @abc.abstractmethod
    def logits_and_labels(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's logits for the batch and the true labels."""

    def forward(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, labels = self.logits_and_labels(model, batch)
        # float(): under autocast the logits may be half precision; the loss should not be.
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        n = labels.shape[0]
        stats = {
            "loss_sum": loss.detach() * n,
            "correct": (logits.detach().argmax(dim=1) == labels).sum(),
            "count": torch.tensor(n, device=labels.device),
        }
        return loss, stats

    def summarize(self, totals: Mapping[str, float]) -> dict[str, float]:
        count = max(float(totals["count"]), 1.0)
        return {"loss": float(totals["loss_sum"]) / count, "accuracy": float(totals["correct"]) / count}
