"""Image classification: cross-entropy with label smoothing 0.1, accuracy."""

from __future__ import annotations

import torch
from torch import nn

from nbhelpers.registry import TASKS
from nbhelpers.tasks.base import ACCURACY, ClassificationTask, TaskSpec


class ImageClassification(ClassificationTask):
    spec = TaskSpec(
        name="image_classification",
        description="classify an image into one of N classes (accuracy)",
        family="vision",
        metrics={"accuracy": ACCURACY},
        primary_metric="accuracy",
        offline_dataset="digits",
        scheduler="cosine",
        max_grad_norm=None,         # the seed guide leaves clipping off for images
        early_stopping_patience=10,
        label_smoothing=0.1,
        target=0.99,                # the 'epochs to 99%' column of the MNIST report
        defaults={"model": "cnn_scratch", "epochs": 20, "batch_size": 128},
    )

    def logits_and_labels(self, model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = batch
        return model(images), labels


TASKS.add("image_classification", ImageClassification, description=ImageClassification.spec.description,
          spec=ImageClassification.spec)
