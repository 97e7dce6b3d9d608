"""Image classification: cross-entropy with label smoothing 0.1, accuracy."""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from nbhelpers.registry import TASKS
from nbhelpers.tasks.base import Task, TaskSpec


class ImageClassification(Task):
    spec = TaskSpec(
        name="image_classification",
        description="classify an image into one of N classes (accuracy)",
        primary_metric="accuracy",
        higher_is_better=True,
        metrics=("accuracy",),
        offline_dataset="digits",
        scheduler="cosine",
        max_grad_norm=None,         # the seed guide leaves clipping off for images
        early_stopping_patience=10,
        label_smoothing=0.1,
        target=0.99,                # the 'epochs to 99%' column of the MNIST report
        defaults={"model": "cnn_scratch", "epochs": 20, "batch_size": 128},
    )

    def forward(self, model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images, labels = batch
        logits = model(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        n = labels.shape[0]
        stats = {
            "loss_sum": loss.detach().float() * n,
            "correct": (logits.detach().argmax(dim=1) == labels).sum(),
            "count": torch.tensor(n, device=labels.device),
        }
        return loss, stats

    def summarize(self, totals: Mapping[str, float]) -> dict[str, float]:
        count = max(float(totals["count"]), 1.0)
        return {"loss": float(totals["loss_sum"]) / count, "accuracy": float(totals["correct"]) / count}


TASKS.add("image_classification", ImageClassification, description=ImageClassification.spec.description,
          spec=ImageClassification.spec)
