"""What a task is: its loss, its evaluation, its metric facts and its training defaults.

The Trainer knows nothing of a particular task. It talks to a task through three calls
(docs/adding_a_task.md walks through them with an example):

- `train_step(model, batch) -> (loss, stats)`: per training batch, the mean loss to
  backpropagate and statistics as tensors of any shape (a count, a confusion matrix), kept on
  the device so no step waits for a host copy. The Trainer sums them element-wise over the
  epoch and hands the sums to `summarize(totals) -> metrics`.
- `evaluate(model, loader, split) -> Evaluation`: a full evaluation of a split. The default
  sums `eval_step` statistics and keeps one record per example; a task that decodes (beam
  search, Viterbi, answer spans) overrides it and computes corpus metrics on the decoded text.
- `evaluate_loss(model, loader)`: loss-only validation between full evaluations (RunConfig's
  `eval_every`), for tasks whose decoding is expensive.

During evaluation the model is in eval mode, gradients are off, autocast is on when AMP is,
and every batch the loader yields is already on the model's device.

A task declares its metrics as facts (`MetricSpec`): label, direction, unit and display
scale. Every run's summary.json carries them, and the report and notebooks read them
instead of guessing from names or value ranges.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from nbhelpers.metric_spec import LOSS_SPEC, MetricSpec

__all__ = ["ACCURACY", "LOSS_SPEC", "ClassificationTask", "Evaluation", "MetricSpec", "Task", "TaskSpec",
           "add_stats"]

if TYPE_CHECKING:  # the data layer imports nothing from tasks; this is for type checkers only
    from nbhelpers.data.base import DataBundle

FAMILIES = ("vision", "text")


@dataclass(frozen=True)
class TaskSpec:
    """A task's name, metric facts and the defaults that `auto` resolves to."""

    name: str
    description: str
    family: str                            # "vision" or "text": per-family LR and SAM-base defaults
    metrics: Mapping[str, MetricSpec]      # every metric evaluate() returns besides "loss"
    primary_metric: str                    # one key of `metrics`: best epoch, ranking, target
    offline_dataset: str
    scheduler: str                         # what --scheduler auto means
    max_grad_norm: float | None            # None: no clipping
    early_stopping_patience: int
    label_smoothing: float = 0.0
    target: float | None = None            # validation primary metric for "time to target"
    defaults: Mapping[str, Any] = field(default_factory=dict)  # model, epochs, batch_size for the task

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"task {self.name!r}: family must be one of {FAMILIES}, not {self.family!r}")
        if self.primary_metric not in self.metrics:
            raise ValueError(f"task {self.name!r}: primary metric {self.primary_metric!r} is not declared")

    @property
    def higher_is_better(self) -> bool:
        return self.metrics[self.primary_metric].higher_is_better

    @property
    def primary(self) -> MetricSpec:
        return self.metrics[self.primary_metric]

    def metric_specs(self) -> dict[str, dict[str, Any]]:
        """Every declared metric plus the loss, as the JSON that summary.json carries."""
        return {name: spec.to_dict() for name, spec in {**self.metrics, "loss": LOSS_SPEC}.items()}


@dataclass
class Evaluation:
    """What a full evaluation of one split gives: metrics (with "loss") and one record per example."""

    metrics: dict[str, float]
    records: list[dict[str, Any]] = field(default_factory=list)


def add_stats(totals: dict[str, torch.Tensor], stats: Mapping[str, torch.Tensor]) -> None:
    """Add a batch's statistics into running totals, element-wise, without a host sync."""
    for key, value in stats.items():
        value = value.detach()
        totals[key] = totals[key] + value if key in totals else value.clone()


class Task(abc.ABC):
    """Base class: subclasses set `spec` and implement train_step() and summarize()."""

    spec: TaskSpec

    def __init__(self, *, data: "DataBundle | None" = None, label_smoothing: float | None = None):
        # The live bundle, not a copy of its facts: a model builder may install another
        # tokenizer (distilbert_sentiment's WordPiece), and the task must decode with that one.
        self.data = data
        self.label_smoothing = self.spec.label_smoothing if label_smoothing is None else label_smoothing

    # -- training -------------------------------------------------------------------------
    @abc.abstractmethod
    def train_step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean loss of the batch (to backpropagate) and additive statistics (tensors, any shape)."""

    @abc.abstractmethod
    def summarize(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Metrics, including "loss", from statistics summed over an epoch or a split."""

    def batch_size(self, batch: Any) -> int:
        """Number of examples in a batch (for examples per second)."""
        first = batch[0] if isinstance(batch, (tuple, list)) else next(iter(batch.values()))
        return int(first.shape[0])

    # -- evaluation -----------------------------------------------------------------------
    def eval_step(self, model: nn.Module, batch: Any) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
        """Statistics (as train_step's) and one record per example; the default keeps no records."""
        _, stats = self.train_step(model, batch)
        return stats, []

    def evaluate(self, model: nn.Module, loader: Iterable, split: str) -> Evaluation:
        """Evaluate a split: sum eval_step statistics, summarize them, gather the records.

        Records get an "id" (the example's position in the split, in loader order) when the
        task did not give one. Override to decode and score decoded outputs.
        """
        totals: dict[str, torch.Tensor] = {}
        records: list[dict[str, Any]] = []
        for batch in loader:
            stats, batch_records = self.eval_step(model, batch)
            add_stats(totals, stats)
            for record in batch_records:
                records.append({"id": len(records), **record})
        return Evaluation(self.summarize(totals), records)

    def evaluate_loss(self, model: nn.Module, loader: Iterable) -> dict[str, float]:
        """Loss-only validation (no decoding): summed train_step statistics, summarized."""
        totals: dict[str, torch.Tensor] = {}
        for batch in loader:
            _, stats = self.train_step(model, batch)
            add_stats(totals, stats)
        return self.summarize(totals)

    # -- facts ----------------------------------------------------------------------------
    def class_names(self) -> list[str] | None:
        """Names of the classes, from the live data facts (None when unknown)."""
        return None if self.data is None else self.data.class_names


class ClassificationTask(Task):
    """Cross-entropy with label smoothing and accuracy, for one label per example or per pixel.

    Logits are (batch, classes) with labels (batch,), or dense (batch, classes, H, W) with
    labels (batch, H, W); labels equal to `ignore_index` (255 by default, the segmentation
    convention for borders and "other") count neither in the loss nor in the accuracy.
    """

    ignore_index = 255

    @abc.abstractmethod
    def logits_and_labels(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's logits for the batch and the true labels."""

    def _ignore_index(self) -> int:
        data_value = None if self.data is None else self.data.ignore_index
        return self.ignore_index if data_value is None else int(data_value)

    def _loss_and_stats(self, logits: torch.Tensor, labels: torch.Tensor):
        ignore = self._ignore_index()
        # float(): under autocast the logits may be half precision; the loss should not be.
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing, ignore_index=ignore)
        valid = labels != ignore
        count = valid.sum()
        predictions = logits.detach().argmax(dim=1)
        stats = {
            "loss_sum": loss.detach() * count,
            "correct": ((predictions == labels) & valid).sum(),
            "count": count,
        }
        return loss, stats, predictions

    def train_step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, labels = self.logits_and_labels(model, batch)
        loss, stats, _ = self._loss_and_stats(logits, labels)
        return loss, stats

    def eval_step(self, model: nn.Module, batch: Any) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
        logits, labels = self.logits_and_labels(model, batch)
        _, stats, predictions = self._loss_and_stats(logits, labels)
        if predictions.ndim > 1:  # dense outputs: per-image counts, not a mask per record
            valid = labels != self._ignore_index()
            flat = lambda t: t.reshape(t.shape[0], -1).sum(dim=1).tolist()  # noqa: E731
            records = [{"correct": c, "count": n}
                       for c, n in zip(flat((predictions == labels) & valid), flat(valid), strict=True)]
            return stats, records
        names = self.class_names()
        name = (lambda i: names[i]) if names else (lambda i: i)
        records = [{"prediction": name(p), "reference": name(r)}
                   for p, r in zip(predictions.tolist(), labels.tolist(), strict=True)]
        return stats, records

    def summarize(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        count = max(float(totals["count"]), 1.0)
        return {"loss": float(totals["loss_sum"]) / count, "accuracy": float(totals["correct"]) / count}


ACCURACY = MetricSpec("accuracy", higher_is_better=True, unit="%", scale=100.0, proportion=True)
